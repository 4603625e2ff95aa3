"""Frame metrics on uint8 RGB frames against ground truth."""
from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from controls.camera import rotation_homography  # noqa: F401  (re-exported: the warp baseline's homography)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two images (or stacks of them) of the same shape: uint8 (``peak`` 255) or
    pixels in [-1, 1] (``peak`` 2)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(peak ** 2 / max(mse, peak ** 2 * 1e-15)))


def psnr_per_frame(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(F, H, W, 3) x2 -> (F,) PSNR of each frame; with ``mask`` (F, H, W) bool, over its pixels
    alone (a frame with none: nan)."""
    if mask is None:
        return np.array([psnr(x, y) for x, y in zip(a, b)])
    return np.array([psnr(x[m], y[m]) if m.any() else np.nan for x, y, m in zip(a, b, mask)])


def ssim_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) x2 -> (F,) SSIM (scikit-image, Gaussian window, RGB channels)."""
    return np.array([structural_similarity(x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=255) for x, y in zip(a, b)])


def warp_frame(frame: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Warp a uint8 frame by a pixel homography (centre-of-pixel convention), edges replicated."""
    h, w = frame.shape[:2]
    # our K uses pixel centres at i + 0.5; OpenCV's pixel i sits at coordinate i
    S = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    Hc = np.linalg.inv(S) @ H @ S
    return cv2.warpPerspective(frame, Hc, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ----------------------------------------------------------------------------- what a viewer sees
def _grey(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F, H, W) float64 luma in [0, 255]."""
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def laplacian_variance(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F,) variance of the Laplacian of each grey frame (fine detail)."""
    return np.array([cv2.Laplacian(g, cv2.CV_64F).var() for g in _grey(frames)])


FLAT = 1.0        # grey levels squared: a truth whose Laplacian variance is below it has no detail


def detail_kept(video: np.ndarray, truth: np.ndarray) -> float:
    """Fine detail of ``video`` against the truth's over the same frames: the ratio of their mean
    Laplacian variances. 1 keeps the truth's detail, 0.1 is a soft picture; blotches and noise
    raise it too, so a value above about 1.3 means artifacts, not detail (read it beside FVD-lite).
    Undefined (nan, left out of the means over clips) where the truth has no detail to keep (mean
    variance below ``FLAT``: a camera facing a uniform wall for the whole window), where any
    picture would score hundreds and outweigh every other clip."""
    t = laplacian_variance(truth).mean()
    return float(laplacian_variance(video).mean() / t) if t >= FLAT else float("nan")


VIEW_METRICS = ("detail", "pulse", "mosaic")      # what a viewer sees, per window (the functions below)
STILL = 0.05      # grey levels of mean frame change below which a video counts as standing still


def pulse(video: np.ndarray, fpl: int = 4) -> float:
    """Motion pulse of a video whose latent frames decode to ``fpl`` frames each (frame 0 alone,
    latent k >= 1 covering frames fpl (k - 1) + 1 .. fpl k): the mean absolute change between
    consecutive frames across a latent boundary (frame fpl k to fpl k + 1) over the mean change
    between consecutive frames inside one latent. Smooth motion gives about 1; a viewer sees a
    pulse at 24 / fpl Hz well before 1.5."""
    g = _grey(video)
    d = np.abs(np.diff(g, axis=0)).mean(axis=(1, 2))                    # d[i]: frame i -> i + 1
    i = np.arange(len(d))
    across = d[(i % fpl == 0) & (i > 0)]
    inside = d[i % fpl != 0]
    if not len(across) or not len(inside) or max(across.mean(), inside.mean()) < STILL:
        return float("nan")                                          # no motion: nothing to pulse
    return float(across.mean() / max(inside.mean(), STILL))


def grid_peak(frames: np.ndarray, period: int = 16, band: int = 3) -> float:
    """Spectral power of the grey frames at a ``period``-pixel grid (the 2x2-latent patch grid is
    16 px at 8x spatial compression), over the mean power of the ``band`` nearest frequencies on
    each side: row and column spectra, averaged over rows, columns and frames. A smooth picture
    gives about 1; a mosaic of ``period``-pixel blocks gives a peak well above it."""
    g = _grey(frames)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    ratios = []
    for axis in (2, 1):                                              # spectra along x, then along y
        n = g.shape[axis]
        if n % period or n // period <= band:
            return float("nan")
        p = (np.abs(np.fft.rfft(g, axis=axis)) ** 2).mean(axis=tuple(a for a in (0, 1, 2) if a != axis))
        f = n // period
        near = np.r_[p[f - band:f], p[f + 1:f + band + 1]]
        if near.mean() < 1e-9:                                       # a uniform picture: no spectrum to peak
            return float("nan")
        ratios.append(p[f] / near.mean())
    return float(np.mean(ratios))


def mosaic(video: np.ndarray, truth: np.ndarray, period: int = 16) -> float:
    """The video's grid peak (``grid_peak``) over the truth's on the same frames: about 1 when the
    video has no more of a ``period``-pixel block pattern than the scene itself; nan where the truth
    is uniform (nothing to compare with; left out of the means over clips, like ``detail_kept``)."""
    t = grid_peak(truth, period)
    return float(grid_peak(video, period) / t) if np.isfinite(t) and t > 0 else float("nan")
