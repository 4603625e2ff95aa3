"""Photo pans: any image becomes a virtual camera that turns and zooms inside it, with exact truth.

Model: the photo is the image plane of a level "photo camera" at the origin looking north
(``rotation_c2w(0, 0, 0)``) with a horizontal field of view ``photo_fov_x``. The virtual
camera sits at the same origin and only rotates (yaw, pitch, roll) and zooms, so every frame
is an exact homography of the photo: for an output pixel ``p`` (centres at i + 0.5),
``photo pixel ~ K_photo R_photo^T R_c2w K^-1 p``. The same ``CameraRig`` as the world and the
app integrates the controls; its limits are chosen from the photo's field of view so that the
view never leaves the photo.

Photos come from installed packages and are discovered at run time (never committed):
scikit-image's sample photos, matplotlib's ``grace_hopper.jpg``, Gradio's example photos,
scikit-learn's sample images, Debian's ``opencv-doc`` photos and wallpaper packages, where present.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from controls.camera import CONTROL_DIM, CameraRig, CameraState, RigLimits, intrinsics, rotation_c2w
from data.clip import Clip

# scikit-image's RGB natural photos (chelsea and cat are the same picture; retina is mostly black)
_SKIMAGE = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "rocket")
_PHOTO_EXTS = (".jpg", ".jpeg")
_MIN_SIDE = 200  # smaller files are icons and thumbnails, not photos
# (name prefix, directory) pairs searched for photo files; missing directories are skipped
_SYSTEM_DIRS = (("opencv-doc", Path("/usr/share/doc/opencv-doc")),
                ("backgrounds", Path("/usr/share/backgrounds")),
                ("wallpapers", Path("/usr/share/wallpapers")))
_R_PHOTO = rotation_c2w(0.0, 0.0, 0.0)
# cv2 puts pixel centres at integers, the project at i + 0.5
_TO_INDEX = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------- photo library
def _package_dir(package: str, *sub: str) -> Path | None:
    """A folder inside an installed package, found without importing it (Gradio imports slowly)."""
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*sub)


def _file_photos() -> dict[str, Path]:
    """name -> path of every JPEG photo in the known folders (PNGs there are mostly logos)."""
    dirs = [("gradio", _package_dir("gradio", "media_assets", "images")),
            ("sklearn", _package_dir("sklearn", "datasets", "images"))] + list(_SYSTEM_DIRS)
    found = {}
    for prefix, root in dirs:
        if root is None or not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in _PHOTO_EXTS or not path.is_file():
                continue
            im = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_2)  # cheap size probe
            if im is None or min(im.shape[:2]) * 2 < _MIN_SIDE or _is_gray(im):
                continue
            found[f"{prefix}/{path.relative_to(root).as_posix()}"] = path
    return found


def _is_gray(im: np.ndarray) -> bool:
    """True for greyscale pictures: the sources want RGB photos."""
    spread = im.max(axis=2).astype(np.int16) - im.min(axis=2)
    return float(np.mean(spread > 12)) < 0.05


@functools.lru_cache(maxsize=1)
def _library() -> dict[str, Path | Callable[[], np.ndarray]]:
    """name -> file or loader of every photo on this machine."""
    lib: dict[str, Path | Callable[[], np.ndarray]] = {}
    try:
        import skimage.data

        for name in _SKIMAGE:
            lib[f"skimage/{name}"] = getattr(skimage.data, name)
        lib["skimage/motorcycle_left"] = lambda: skimage.data.stereo_motorcycle()[0]
        lib["skimage/motorcycle_right"] = lambda: skimage.data.stereo_motorcycle()[1]
    except ImportError:
        pass
    try:
        import matplotlib.cbook

        lib["matplotlib/grace_hopper"] = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg",
                                                                               asfileobj=False))
    except (ImportError, OSError):
        pass
    lib.update(_file_photos())
    return lib


def list_photos() -> list[str]:
    """Names of every photo available on this machine, sorted."""
    return sorted(_library())


@functools.lru_cache(maxsize=64)
def load_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo by name (read-only, cached)."""
    src = _library().get(name)
    if src is None:
        raise KeyError(f"unknown photo {name!r}; see data.photo.list_photos()")
    if isinstance(src, Path):
        im = cv2.cvtColor(cv2.imread(str(src), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    else:
        im = np.asarray(src())[..., :3]
    im = np.ascontiguousarray(im, dtype=np.uint8)
    im.setflags(write=False)
    return im


def pick_photo(seed: int, names: list[str] | None = None) -> str:
    """The photo of a seed: rendezvous hashing, so a photo added or missing on some machine
    changes only the seeds that pick it, not the whole seed -> photo mapping."""
    names = list_photos() if names is None else names
    if not names:
        raise RuntimeError("no photos found: install scikit-image or matplotlib")
    key = lambda n: hashlib.blake2b(f"{seed}:{n}".encode(), digest_size=8).digest()  # noqa: E731
    return max(names, key=key)


# ----------------------------------------------------------------------------- geometry
def photo_intrinsics(image_shape: tuple[int, ...], photo_fov_x: float) -> np.ndarray:
    """K of the photo camera for an (H, W, ...) image with horizontal field of view ``photo_fov_x``."""
    return intrinsics(image_shape[1], image_shape[0], photo_fov_x)


def photo_homography(K: np.ndarray, w2c: np.ndarray, K_photo: np.ndarray) -> np.ndarray:
    """3x3 map from output pixel coordinates to photo pixel coordinates (both centre-at-i+0.5)."""
    r_c2w = np.asarray(w2c, np.float64)[:3, :3].T
    return K_photo @ _R_PHOTO.T @ r_c2w @ np.linalg.inv(np.asarray(K, np.float64))


def frame_homography(K0: np.ndarray, w2c0: np.ndarray, K1: np.ndarray, w2c1: np.ndarray) -> np.ndarray:
    """3x3 map from frame-0 pixels to frame-1 pixels of a rotation-only camera (exact at any depth)."""
    R0, R1 = (np.asarray(w, np.float64)[:3, :3] for w in (w2c0, w2c1))
    return np.asarray(K1, np.float64) @ R1 @ R0.T @ np.linalg.inv(np.asarray(K0, np.float64))


def _corners_inside(image_shape: tuple[int, ...], K_photo: np.ndarray, width: int, height: int,
                    tan_half: float, yaws: np.ndarray, pitches: np.ndarray, rolls: np.ndarray) -> bool:
    """True if the output frame's corners land inside the photo for every listed pose."""
    fov = math.degrees(2.0 * math.atan(tan_half))
    K_inv = np.linalg.inv(intrinsics(width, height, fov))
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float).T
    Hp, Wp = image_shape[:2]
    for yaw in yaws:
        for pitch in pitches:
            for roll in rolls:
                d = K_photo @ _R_PHOTO.T @ rotation_c2w(yaw, pitch, roll) @ K_inv @ corners
                if np.any(d[2] <= 1e-6):
                    return False
                x, y = d[0] / d[2], d[1] / d[2]
                if x.min() < 0 or y.min() < 0 or x.max() > Wp or y.max() > Hp:
                    return False
    return True


def _largest(pred: Callable[[float], bool], hi: float, steps: int = 16) -> float:
    """Largest x in [0, hi] with pred(x) for a pred that holds below some point and fails above."""
    if pred(hi):
        return hi
    lo = 0.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if pred(mid) else (lo, mid)
    return lo


def pan_limits(image_shape: tuple[int, ...], photo_fov_x: float, width: int, height: int,
               roll_deg: float = 8.0, cover: float = 0.6, zoom_ratio: float = 2.0) -> RigLimits:
    """Rig limits that keep a (width, height) view inside the photo whatever the controls do.

    The widest view covers ``cover`` of the photo (centred, level); zooming in goes to
    ``zoom_ratio`` times that focal length; yaw and pitch ranges are the largest (in the
    proportion of the free angle on each axis) for which every corner stays inside at every
    combination of the extreme yaw, pitch and roll with the widest view.
    """
    Hp, Wp = image_shape[:2]
    K_p = photo_intrinsics(image_shape, photo_fov_x)
    a, b = Wp / 2.0 / K_p[0, 0], Hp / 2.0 / K_p[1, 1]  # photo half extents on the plane z = 1
    t_max = cover * min(a, b * width / height)         # widest view's half width on that plane
    # a corner's reach grows with |yaw|, |pitch| and |roll|: checking the extremes suffices
    rolls, ends = np.array([-roll_deg, roll_deg]), np.array([-1.0, 1.0])
    fits = lambda t, y, p: _corners_inside(image_shape, K_p, width, height, t, y, p, rolls)  # noqa: E731
    # narrow the widest view if the roll range alone would take it out of the photo
    t_max = _largest(lambda t: fits(t, np.zeros(1), np.zeros(1)), t_max)
    yaw0 = math.degrees(math.atan(a) - math.atan(t_max))  # free angles, ignoring roll and perspective
    pitch0 = math.degrees(math.atan(b) - math.atan(t_max * height / width))
    s = _largest(lambda s: fits(t_max, s * yaw0 * ends, s * pitch0 * ends), 1.0)
    fov_max = math.degrees(2.0 * math.atan(t_max))
    fov_min = math.degrees(2.0 * math.atan(t_max / zoom_ratio))
    return RigLimits(pitch_deg=s * pitch0, roll_deg=roll_deg, fov_min=fov_min, fov_max=fov_max,
                     yaw_range=s * yaw0)


# ----------------------------------------------------------------------------- rendering
class PhotoCamera:
    """Renders views of one photo; keeps the photo pre-shrunk at the levels it needs (anti-aliasing)."""

    LEVELS_PER_OCTAVE = 4

    def __init__(self, image: np.ndarray, photo_fov_x: float):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        self.image = np.ascontiguousarray(image[..., :3])
        self.K_photo = photo_intrinsics(image.shape, photo_fov_x)
        self._levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _level(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(photo shrunk by 2^(-level/LEVELS_PER_OCTAVE), 3x3 scale from full to shrunk pixels)."""
        if level not in self._levels:
            Hp, Wp = self.image.shape[:2]
            s = 2.0 ** (-level / self.LEVELS_PER_OCTAVE)
            w, h = max(1, round(Wp * s)), max(1, round(Hp * s))
            im = self.image if level == 0 else cv2.resize(self.image, (w, h), interpolation=cv2.INTER_AREA)
            self._levels[level] = (im, np.diag([w / Wp, h / Hp, 1.0]))
        return self._levels[level]

    def render(self, K: np.ndarray, w2c: np.ndarray, width: int, height: int) -> np.ndarray:
        """One (height, width, 3) uint8 view for intrinsics K and a rotation-only w2c."""
        Hm = photo_homography(K, w2c, self.K_photo)
        # photo pixels per output pixel at the view centre picks the pre-shrunk level
        c = np.array([[width / 2.0, width / 2.0 + 1.0, width / 2.0],
                      [height / 2.0, height / 2.0, height / 2.0 + 1.0], [1.0, 1.0, 1.0]])
        q = Hm @ c
        q = q[:2] / q[2]
        scale = math.sqrt(abs(np.linalg.det(np.stack([q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]]))))
        level = max(0, int(math.floor(self.LEVELS_PER_OCTAVE * math.log2(max(scale, 1e-6)))))
        im, S = self._level(level)
        M = _TO_INDEX @ S @ Hm @ np.linalg.inv(_TO_INDEX)
        return cv2.warpPerspective(im, M, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT_101)


def _focal(fov_x: float) -> float:
    return 1.0 / math.tan(math.radians(fov_x) / 2.0)


def fold_controls(controls: np.ndarray, start: CameraState, limits: RigLimits) -> np.ndarray:
    """Mirror the yaw, pitch, roll and zoom of ``controls`` (F, CONTROL_DIM) wherever they would
    cross ``limits``: a person panning inside a photo turns back at its edge rather than
    pushing against it (which would give frames that ignore their controls)."""
    out = np.array(controls, dtype=np.float32, copy=True)
    axes = [0, 1, 2, 6]
    lo = np.array([-limits.yaw_range, -limits.pitch_deg, -limits.roll_deg, math.log(_focal(limits.fov_max))])
    hi = np.array([limits.yaw_range, limits.pitch_deg, limits.roll_deg, math.log(_focal(limits.fov_min))])
    x = np.array([start.yaw, start.pitch, start.roll, math.log(_focal(start.fov_x))])
    sign = np.ones(4)
    for f in range(1, len(out)):
        c = out[f, axes] * sign
        cross = (x + c > hi) | (x + c < lo)
        sign[cross] *= -1.0
        c[cross] *= -1.0
        x = np.clip(x + c, lo, hi)
        out[f, axes] = c
    return out


def photo_pan_clip_from_image(image: np.ndarray, controls: np.ndarray, size: int | tuple[int, int],
                              photo_fov_x: float = 70.0, start: CameraState | None = None,
                              limits: RigLimits | None = None, meta: dict | None = None) -> Clip:
    """Pan and zoom inside ``image`` following ``controls`` (F, CONTROL_DIM); frame 0 is ``start``.

    size: an int for square frames or (width, height). start defaults to the centred, level,
    widest view. Only rotation and zoom act (translation entries are ignored), and the rig
    clamps at the photo's edge, so the returned controls are the ones that actually moved
    the camera: re-integrating them with the same rig reproduces ``w2c`` and ``K``.
    """
    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    controls = np.asarray(controls, dtype=np.float32)
    if controls.ndim != 2 or controls.shape[1] != CONTROL_DIM:
        raise ValueError(f"controls must be (F, {CONTROL_DIM}), got {controls.shape}")
    cam = PhotoCamera(image, photo_fov_x)
    limits = limits or pan_limits(cam.image.shape, photo_fov_x, width, height)
    start = start or CameraState(fov_x=limits.fov_max)
    rig = CameraRig(width, height, start, limits)
    F = controls.shape[0]
    frames = np.empty((F, height, width, 3), np.uint8)
    Ks = np.empty((F, 3, 3), np.float32)
    w2cs = np.empty((F, 4, 4), np.float32)
    applied = np.zeros((F, CONTROL_DIM), np.float32)
    for f in range(F):
        if f > 0:
            before = (rig.state.yaw, rig.state.pitch, rig.state.roll, rig.state.fov_x)
            c = controls[f].copy()
            c[3:6] = 0.0
            rig.step(c)
            s = rig.state
            applied[f, :3] = ((s.yaw - before[0] + 180.0) % 360.0 - 180.0, s.pitch - before[1], s.roll - before[2])
            applied[f, 6] = math.log(_focal(s.fov_x) / _focal(before[3]))
        K, w2c = rig.K(), rig.w2c()
        Ks[f], w2cs[f] = K, w2c
        frames[f] = cam.render(K, w2c, width, height)
    info = {"source": "photo", "photo_fov_x": float(photo_fov_x)}
    info.update(meta or {})
    return Clip(frames=frames, controls=applied, K=Ks, w2c=w2cs, meta=info)
