"""Camera kinematics shared by the renderers and the app: control vectors -> camera poses.

Conventions (used everywhere in the project):
- World: x east, y north, z up. Camera frame: OpenCV (x right, y down, z forward).
- ``w2c`` is a 4x4 world-to-camera matrix; ``K`` the 3x3 pinhole intrinsics with pixel
  centres at (i + 0.5).
- A per-frame camera control is 7 numbers (``CONTROL_DIM``):
  [d_yaw, d_pitch, d_roll (degrees per frame; yaw > 0 turns right, pitch > 0 looks up,
   roll > 0 tilts clockwise), forward, strafe (right), up (world units per frame, forward and
   strafe along the horizontal heading), zoom (log focal-length ratio per frame)].
The renderers and the app step the same ``CameraRig``, so a slider in the app moves the
camera exactly as the training data did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

CONTROL_DIM = 7
AXES = ("yaw", "pitch", "roll", "forward", "strafe", "up", "zoom")      # the 7 numbers, in order
# per-frame limits (degrees / world units per frame at 24 fps): the range of the training
# trajectories (data/trajectories.py) and of the app's keys and sliders (controls/camera_input.py)
MAX_YAW, MAX_PITCH, MAX_ROLL = 4.0, 1.5, 1.5
MAX_FORWARD, MAX_STRAFE, MAX_UP, MAX_ZOOM = 0.5, 0.3, 0.12, 0.02
LIMITS = np.array([MAX_YAW, MAX_PITCH, MAX_ROLL, MAX_FORWARD, MAX_STRAFE, MAX_UP, MAX_ZOOM])


def intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """Pinhole K for a horizontal field of view, principal point at the image centre."""
    f = (width / 2.0) / math.tan(math.radians(fov_x_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def rotation_c2w(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Camera-to-world rotation (columns: camera x right, y down, z forward in world axes)."""
    psi, theta, phi = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    fwd = np.array([math.sin(psi) * math.cos(theta), math.cos(psi) * math.cos(theta), math.sin(theta)])
    right0 = np.array([math.cos(psi), -math.sin(psi), 0.0])
    up0 = np.cross(right0, fwd)
    right = math.cos(phi) * right0 - math.sin(phi) * up0
    up = math.sin(phi) * right0 + math.cos(phi) * up0
    return np.stack([right, -up, fwd], axis=1)


def look_w2c(position: np.ndarray, r_c2w: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera from a camera position and its camera-to-world rotation."""
    w2c = np.eye(4)
    w2c[:3, :3] = r_c2w.T
    w2c[:3, 3] = -r_c2w.T @ position
    return w2c


def relative_pose(w2c_prev: np.ndarray, w2c_cur: np.ndarray) -> np.ndarray:
    """4x4 transform taking points from the previous camera frame to the current one."""
    return w2c_cur @ np.linalg.inv(w2c_prev)


@dataclass(frozen=True)
class CameraPose:
    """One frame's camera: ``K`` the 3x3 intrinsics, ``w2c`` the 4x4 world-to-camera matrix."""
    K: np.ndarray
    w2c: np.ndarray


@dataclass
class CameraState:
    """Absolute camera state: position, Euler angles in degrees, horizontal fov in degrees."""
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    fov_x: float = 60.0


@dataclass
class RigLimits:
    """Limits the rig enforces whatever the control says."""
    pitch_deg: float = 80.0       # |pitch| stays below this (no gimbal flip)
    roll_deg: float = 60.0
    fov_min: float = 20.0
    fov_max: float = 100.0
    clearance: float = 1.0        # camera stays this far above ground(x, y)
    ceiling: float = float("inf")  # and below this absolute height
    yaw_range: Optional[float] = None  # |yaw| limit (photo pans); None = free 360
    max_climb: float = float("inf")    # a horizontal move onto ground higher than this above the
                                       # camera's feet is blocked (walls in cities), not climbed


# the app's rig (model/engine.py): look up or down to 85 degrees, roll up to 90; the keys' auto-levelling
# (controls/camera_input.py) integrates pitch and roll within the same limits
APP_PITCH_LIMIT, APP_ROLL_LIMIT = 85.0, 90.0


class CameraRig:
    """Integrates per-frame control vectors into camera poses (the one camera model)."""

    def __init__(self, width: int, height: int, state: CameraState, limits: RigLimits | None = None,
                 ground: Callable[[float, float], float] | None = None):
        self.width, self.height = width, height
        self.state = CameraState(np.asarray(state.position, dtype=np.float64).copy(), state.yaw,
                                 state.pitch, state.roll, state.fov_x)
        self.limits = limits or RigLimits()
        self.ground = ground
        self._clamp()

    def K(self) -> np.ndarray:
        return intrinsics(self.width, self.height, self.state.fov_x)

    def w2c(self) -> np.ndarray:
        s = self.state
        return look_w2c(s.position, rotation_c2w(s.yaw, s.pitch, s.roll))

    def pose(self) -> CameraPose:
        """The current ``K`` and ``w2c`` together."""
        return CameraPose(self.K(), self.w2c())

    def step(self, control: np.ndarray) -> None:
        """Apply one frame's control (CONTROL_DIM,). Non-finite entries are treated as 0."""
        c = np.nan_to_num(np.asarray(control, dtype=np.float64).reshape(CONTROL_DIM), nan=0.0,
                          posinf=0.0, neginf=0.0)
        s = self.state
        s.yaw = (s.yaw + c[0] + 180.0) % 360.0 - 180.0
        s.pitch += c[1]
        s.roll += c[2]
        psi = math.radians(s.yaw)
        heading = np.array([math.sin(psi), math.cos(psi), 0.0])
        right = np.array([math.cos(psi), -math.sin(psi), 0.0])
        new = s.position + c[3] * heading + c[4] * right + np.array([0.0, 0.0, c[5]])
        if self.ground is not None and np.isfinite(self.limits.max_climb):
            feet = s.position[2] - self.limits.clearance
            if self.ground(float(new[0]), float(new[1])) > feet + self.limits.max_climb:
                new[:2] = s.position[:2]                      # blocked by a wall: stay put
        s.position = new
        # zoom in (c[6] > 0) multiplies the focal length by exp(c[6])
        f = 1.0 / math.tan(math.radians(s.fov_x) / 2.0) * math.exp(c[6])
        s.fov_x = math.degrees(2.0 * math.atan(1.0 / f))
        self._clamp()

    def _clamp(self) -> None:
        s, lim = self.state, self.limits
        s.pitch = float(np.clip(s.pitch, -lim.pitch_deg, lim.pitch_deg))
        s.roll = float(np.clip(s.roll, -lim.roll_deg, lim.roll_deg))
        s.fov_x = float(np.clip(s.fov_x, lim.fov_min, lim.fov_max))
        if lim.yaw_range is not None:
            s.yaw = float(np.clip(s.yaw, -lim.yaw_range, lim.yaw_range))
        if self.ground is not None:
            floor = self.ground(float(s.position[0]), float(s.position[1])) + lim.clearance
            s.position[2] = max(s.position[2], floor)
        s.position[2] = min(s.position[2], lim.ceiling)


# ----------------------------------------------------------------------------- model features
PLUCKER_DIR_SCALE = 12.0    # ray-direction change of a few degrees -> order 1 (std about 0.6 on world clips)
PLUCKER_MOMENT_SCALE = 5.0  # translation of a world unit per latent frame -> order 1


def token_centers(width: int, height: int, grid: int) -> np.ndarray:
    """(grid*grid, 3) homogeneous pixel centres of a grid x grid token layout, row-major."""
    ys = (np.arange(grid) + 0.5) * height / grid
    xs = (np.arange(grid) + 0.5) * width / grid
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel(), np.ones(grid * grid)], -1)


def plucker_tokens(K: np.ndarray, w2c: np.ndarray, ref_K: np.ndarray, ref_w2c: np.ndarray, width: int,
                   height: int, grid: int) -> np.ndarray:
    """Plücker rays of video frames relative to a reference frame, at token centres (paper App. G).

    K (n, 3, 3), w2c (n, 4, 4): the n video frames of one latent frame; ref_*: the last frame of
    the latent frame before. Returns (grid*grid, 6n) float32: per frame, the change of the ray
    direction against the unmoved camera and the ray moment o x d, both scaled to order 1;
    a camera that did not move gives zeros.
    """
    pix = token_centers(width, height, grid)                          # (T, 3)
    d_ref = pix @ np.linalg.inv(ref_K).T
    d_ref /= np.linalg.norm(d_ref, axis=-1, keepdims=True)
    feats = []
    for Kf, Wf in zip(K, w2c):
        rel = ref_w2c.astype(np.float64) @ np.linalg.inv(Wf.astype(np.float64))  # frame f -> reference camera
        d = (pix @ np.linalg.inv(Kf).T) @ rel[:3, :3].T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        o = rel[:3, 3]
        feats += [(d - d_ref) * PLUCKER_DIR_SCALE, np.cross(o[None], d) * PLUCKER_MOMENT_SCALE]
    return np.concatenate(feats, -1).astype(np.float32)


def rotation_homography(K_src: np.ndarray, w2c_src: np.ndarray, K_dst: np.ndarray, w2c_dst: np.ndarray) -> np.ndarray:
    """3x3 homography mapping source pixels to destination pixels for the cameras' relative rotation
    (exact for distant scenery, a pure rotation or a zoom; translation is ignored)."""
    R = w2c_dst[:3, :3].astype(np.float64) @ w2c_src[:3, :3].astype(np.float64).T
    return K_dst.astype(np.float64) @ R @ np.linalg.inv(K_src.astype(np.float64))


def reprojection_map(K_src: np.ndarray, w2c_src: np.ndarray, K_dst: np.ndarray, w2c_dst: np.ndarray, width: int,
                     height: int) -> np.ndarray:
    """(3, 3) float32 homography taking normalised destination coordinates to normalised source
    coordinates (x, y in [-1, 1] at the image edges, pixel centres at i + 0.5: the convention of
    ``grid_sample(align_corners=False)``), for the cameras' relative rotation and zoom.

    Resolution-free, so the same map reprojects 128 px frames and their 16 px latents. It is
    what the DiT uses to reproject the recycled latent to the commanded camera (model/dit.py).
    """
    N = np.array([[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]])
    H_inv = np.linalg.inv(rotation_homography(K_src, w2c_src, K_dst, w2c_dst))
    M = N @ H_inv @ np.linalg.inv(N)
    return (M / M[2, 2]).astype(np.float32)


def clip_reprojection_maps(K: np.ndarray, w2c: np.ndarray, width: int, height: int, fpl: int = 4) -> np.ndarray:
    """(1 + k, 3, 3) maps of a clip of 1 + fpl k frames: latent frame j (ending at video frame
    fpl j) from latent frame j - 1 (ending at fpl (j - 1)); latent frame 0 gets the identity."""
    k = (K.shape[0] - 1) // fpl
    out = np.tile(np.eye(3, dtype=np.float32), (1 + k, 1, 1))
    for j in range(1, 1 + k):
        out[j] = reprojection_map(K[fpl * (j - 1)], w2c[fpl * (j - 1)], K[fpl * j], w2c[fpl * j], width, height)
    return out


def clip_frame_maps(K: np.ndarray, w2c: np.ndarray, width: int, height: int, fpl: int = 4) -> np.ndarray:
    """(k, fpl, 3, 3) maps of a clip of 1 + fpl k frames: latent frame j's video frames
    fpl (j - 1) + 1 + i, each to video frame fpl (j - 1), the last frame before them (what a
    reference decoder warps, model/autoencoder.py)."""
    k = (K.shape[0] - 1) // fpl
    out = np.empty((k, fpl, 3, 3), np.float32)
    for j in range(k):
        r = fpl * j
        for i in range(fpl):
            out[j, i] = reprojection_map(K[r], w2c[r], K[r + 1 + i], w2c[r + 1 + i], width, height)
    return out


def clip_camera_tokens(K: np.ndarray, w2c: np.ndarray, width: int, height: int, grid: int, fpl: int = 4) -> np.ndarray:
    """(1 + k, T, 6 fpl) camera tokens of a clip of 1 + fpl k frames; latent frame 0 is zeros."""
    F = K.shape[0]
    k = (F - 1) // fpl
    out = np.zeros((1 + k, grid * grid, 6 * fpl), np.float32)
    for j in range(1, 1 + k):
        r = fpl * (j - 1)
        out[j] = plucker_tokens(K[r + 1:r + 1 + fpl], w2c[r + 1:r + 1 + fpl], K[r], w2c[r], width, height, grid)
    return out
