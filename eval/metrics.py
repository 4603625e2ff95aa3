"""Frame metrics on uint8 RGB frames against ground truth."""
from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from controls.camera import rotation_homography  # noqa: F401  (re-exported: the warp baseline's homography)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (or stacks of them) of the same shape."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def psnr_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) x2 -> (F,) PSNR of each frame."""
    return np.array([psnr(x, y) for x, y in zip(a, b)])


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
