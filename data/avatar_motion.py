"""Avatar motion: the DeepMimic humanoid's skeleton, its mocap clips, and webcam-like performances made from them.

Coordinates are the mocap's: metres, y up; a body at rest faces +x with its right side
towards +z. A pose sequence is a ``Motion``-sampled pair ``root_pos`` (F, 3) and ``rot``
(F, J, 4) local joint rotations as unit quaternions (w, x, y, z), in the joint order of the
DeepMimic motion files (knees and elbows are hinges about their local z axis). The skeleton
offsets are the ones of ``pybullet_data/humanoid/humanoid.urdf`` loaded with
``globalScaling=0.25`` (as DeepMimic does), so ``forward_kinematics`` reproduces pybullet's
link frames exactly (tests check it against ``getLinkState``) without pybullet in the hot path.

A *performance* is what a person in front of a webcam does for ``n_frames``: a chain of
segments (mocap clips, time-warped, mirrored and blended; random smooth reachable poses by
two-bone IK; idle spells; walks out of the frame and back), cross-faded, turned about the
vertical, with small tremor on every joint. ``performance`` returns the root path and local
rotations; the renderer adds the body and the camera.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FPS = 24.0  # frames per second of every clip (as the other sources)
URDF_SCALE = 0.25
JOINTS = ("root", "chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
          "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow")
J = {name: i for i, name in enumerate(JOINTS)}
PARENT = (-1, 0, 1, 0, 3, 4, 1, 6, 0, 8, 9, 1, 11)
HINGES = (J["right_knee"], J["right_elbow"], J["left_knee"], J["left_elbow"])
# joint origins in the parent's frame (humanoid.urdf, before the 0.25 scaling)
_URDF_OFFSETS = ((0, 0, 0), (0, 0.944604, 0), (0, 0.895576, 0),
                 (0, 0, 0.339548), (0, -1.686184, 0), (0, -1.639480, 0),
                 (-0.0962, 0.974, 0.73244), (0, -1.099152, 0),
                 (0, 0, -0.339548), (0, -1.686184, 0), (0, -1.639480, 0),
                 (-0.0962, 0.974, -0.73244), (0, -1.099152, 0))
OFFSETS = np.array(_URDF_OFFSETS) * URDF_SCALE          # (J, 3)
WRIST_OFFSET = np.array([0.0, -1.035788, 0.0]) * URDF_SCALE  # wrist in the elbow's frame (a fixed joint)
MIRROR = tuple(JOINTS.index(n.replace("right", "@").replace("left", "right").replace("@", "left")) for n in JOINTS)

MOTIONS = ("walk", "run", "jump", "dance_a", "dance_b", "punch", "kick", "spin", "spinkick",
           "cartwheel", "backflip", "crawl", "roll", "getup_facedown", "getup_faceup")
STANDING = ("dance_b", "punch")       # upright throughout, feet on the floor, not turning round
BLENDABLE = ("dance_a", "dance_b", "punch")   # partners for blends (a spin's root makes a blend twist)
LOCOMOTION = ("walk", "run")
FLOOR = ("cartwheel", "backflip", "crawl", "roll", "getup_facedown", "getup_faceup")  # need room: a far camera


# ----------------------------------------------------------------------------- quaternions
def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) quaternions (w, x, y, z)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3, 3) rotation matrices."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                    axis=-1).reshape(q.shape[:-1] + (3, 3))


def mat_to_quat(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0."""
    m = R.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # four candidate formulas, each stable where its pivot is largest (Shepperd)
    cand = np.stack([
        np.stack([1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        np.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0],
                  m[:, 0, 2] + m[:, 2, 0]], -1),
        np.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                  m[:, 1, 2] + m[:, 2, 1]], -1),
        np.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                  1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1)], 1)          # (N, 4, 4)
    pivot = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1).argmax(-1)
    q = cand[np.arange(len(m)), pivot]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(R.shape[:-2] + (4,))


def quat_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(..., 3) unit axes and (...) angles in radians -> (..., 4) quaternions."""
    half = 0.5 * np.asarray(angle, np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def quat_yaw(angle: np.ndarray) -> np.ndarray:
    """(...) rotations about +y (radians) -> (..., 4)."""
    return quat_axis_angle(np.array([0.0, 1.0, 0.0]), angle)


def nlerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Normalised linear blend of (..., 4) quaternions with weight w (broadcast over the last axis)."""
    w = np.asarray(w, np.float64)[..., None]
    b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)  # the short way round
    q = (1 - w) * a + w * b
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def heading(q: np.ndarray) -> np.ndarray:
    """Yaw (radians about +y) of the body's forward axis +x for (..., 4) root rotations."""
    return heading_of(quat_to_mat(q))


def heading_of(R: np.ndarray) -> np.ndarray:
    """Yaw (radians about +y) of the forward axis +x of (..., 3, 3) rotations."""
    return np.arctan2(-R[..., 2, 0], R[..., 0, 0])


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


# ----------------------------------------------------------------------------- skeleton
@dataclass
class Skeleton:
    """Bone offsets of one body (an identity scales the DeepMimic humanoid per segment)."""
    offsets: np.ndarray = field(default_factory=lambda: OFFSETS.copy())   # (J, 3)
    wrist: np.ndarray = field(default_factory=lambda: WRIST_OFFSET.copy())  # (3,)

    @property
    def leg_length(self) -> float:
        """Hip to ankle, straight."""
        return float(-self.offsets[J["right_knee"], 1] - self.offsets[J["right_ankle"], 1])


def forward_kinematics(root_pos: np.ndarray, rot: np.ndarray, skeleton: Skeleton | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions (F, J + 2, 3) (the two wrists appended) and rotations (F, J, 3, 3).

    root_pos (F, 3), rot (F, J, 4) local rotations; joint j's frame is its parent's frame moved
    by ``offsets[j]`` and turned by ``rot[:, j]`` (the URDF's joint convention).
    """
    sk = skeleton or Skeleton()
    local = quat_to_mat(rot)                                   # (F, J, 3, 3)
    F = root_pos.shape[0]
    G = np.empty((F, len(JOINTS), 3, 3))
    P = np.empty((F, len(JOINTS) + 2, 3))
    for j, p in enumerate(PARENT):
        if p < 0:
            G[:, j], P[:, j] = local[:, j], root_pos
        else:
            P[:, j] = P[:, p] + G[:, p] @ sk.offsets[j]
            G[:, j] = G[:, p] @ local[:, j]
    P[:, -2] = P[:, J["right_elbow"]] + G[:, J["right_elbow"]] @ sk.wrist
    P[:, -1] = P[:, J["left_elbow"]] + G[:, J["left_elbow"]] @ sk.wrist
    return P, G


# ----------------------------------------------------------------------------- mocap clips
def motion_dir() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions"


@dataclass
class Motion:
    """One DeepMimic clip as key frames."""
    name: str
    times: np.ndarray      # (N,) seconds of each key frame, times[0] = 0
    root_pos: np.ndarray   # (N, 3)
    rot: np.ndarray        # (N, J, 4); rot[:, 0] is the root's world rotation
    loop: bool             # "wrap": the clip repeats, carried on by its own displacement

    @property
    def duration(self) -> float:
        return float(self.times[-1])


@functools.lru_cache(maxsize=None)
def load_motion(name: str) -> Motion:
    """A DeepMimic clip (``humanoid3d_<name>.txt``): rows of duration, root position (3), root
    rotation (w, x, y, z), then chest, neck, right hip, knee (1), ankle, shoulder, elbow (1),
    left hip, knee (1), ankle, shoulder, elbow (1); spherical joints as (w, x, y, z)."""
    data = json.loads((motion_dir() / f"humanoid3d_{name}.txt").read_text())
    a = np.asarray(data["Frames"], np.float64)
    times = np.concatenate([[0.0], np.cumsum(a[:-1, 0])])
    rot = np.empty((len(a), len(JOINTS), 4))
    c = 4
    for j in range(len(JOINTS)):
        if j in HINGES:
            rot[:, j] = quat_axis_angle(np.array([0.0, 0.0, 1.0]), a[:, c + 0])
            c += 1
        else:
            rot[:, j] = a[:, c:c + 4]
            c += 4
    assert c == a.shape[1] == 44, (name, a.shape)
    rot /= np.linalg.norm(rot, axis=-1, keepdims=True)
    return Motion(name, times, a[:, 1:4].copy(), rot, data.get("Loop", "none") == "wrap")


def sample_motion(m: Motion, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poses at times ``t`` (F,) seconds >= 0: (root_pos (F, 3), rot (F, J, 4)).

    A looping clip goes on cycle after cycle, each one turned and moved by the clip's own
    net turn and displacement; a one-shot clip plays forwards then backwards (ping-pong), so
    any length is continuous.
    """
    t = np.asarray(t, np.float64)
    T = m.duration
    k = np.floor(t / T)
    tau = t - k * T
    if not m.loop:
        odd = (k % 2) == 1
        tau = np.where(odd, T - tau, tau)
        k = np.zeros_like(k)
    i = np.clip(np.searchsorted(m.times, tau, side="right") - 1, 0, len(m.times) - 2)
    w = np.clip((tau - m.times[i]) / np.maximum(m.times[i + 1] - m.times[i], 1e-9), 0.0, 1.0)
    pos = (1 - w)[:, None] * m.root_pos[i] + w[:, None] * m.root_pos[i + 1]
    rot = nlerp(m.rot[i], m.rot[i + 1], w[:, None] * np.ones(len(JOINTS)))
    if m.loop and np.any(k > 0):
        # the cycle map C takes the first key frame's root to the last one's (yaw + horizontal shift)
        d_yaw = float(heading(m.rot[-1, 0]) - heading(m.rot[0, 0]))
        Ry = quat_to_mat(quat_yaw(d_yaw))
        shift = m.root_pos[-1] - Ry @ m.root_pos[0]
        shift[1] = 0.0
        for n in np.unique(k[k > 0]).astype(int):
            sel = k == n
            Rn = quat_to_mat(quat_yaw(n * d_yaw))
            off = sum((quat_to_mat(quat_yaw(i * d_yaw)) @ shift for i in range(n)), np.zeros(3))
            pos[sel] = pos[sel] @ Rn.T + off
            rot[sel, 0] = quat_mul(quat_yaw(n * d_yaw), rot[sel, 0])
    return pos, rot


def mirror(root_pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-right mirror image (reflection z -> -z of the mocap frame, sides swapped)."""
    pos = root_pos * np.array([1.0, 1.0, -1.0])
    # S R S with S = diag(1, 1, -1) is the quaternion (w, -x, -y, z)
    q = rot[:, list(MIRROR)] * np.array([1.0, -1.0, -1.0, 1.0])
    return pos, q


def _smooth_noise(rng: np.random.Generator, n: int, dims: int, corr: float) -> np.ndarray:
    """(n, dims) Gaussian noise low-passed over about ``corr`` frames, unit std per column."""
    pad = int(3 * corr) + 1
    x = rng.standard_normal((n + 2 * pad, dims))
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / max(corr, 1e-3)) ** 2)
    y = np.stack([np.convolve(x[:, d], k, mode="same") for d in range(dims)], 1)[pad:pad + n]
    return y / np.sqrt(np.sum(k * k))   # the filter's own gain, so even n = 1 is well scaled


def _box(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along axis 0 with edge padding (same length)."""
    if width <= 1:
        return x
    pad = width // 2
    xp = np.pad(x, [(pad, width - 1 - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), xp]), axis=0)
    return (c[width:] - c[:-width]) / width


def euler_quat(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(F,) angles in radians -> (F, 4): yaw about y, then bend about z (positive leans back,
    towards -x), then side-bend about x (positive towards +z, the body's right)."""
    qy = quat_axis_angle(np.array([0.0, 1.0, 0.0]), yaw)
    qz = quat_axis_angle(np.array([0.0, 0.0, 1.0]), pitch)
    qx = quat_axis_angle(np.array([1.0, 0.0, 0.0]), roll)
    return quat_mul(qy, quat_mul(qz, qx))


def two_bone_ik(S: np.ndarray, P: np.ndarray, L1: float, L2: float, pole: np.ndarray, bend: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-bone IK in the parent's frame, for a chain whose bones hang along -y.

    S (F, 3) root of the chain, P (F, 3) target of its end, pole (F, 3) the side the middle
    joint goes to. bend = +1 for arms (the hinge flexes the far bone towards +x), -1 for legs
    (towards -x). Returns the first bone's local rotation (F, 3, 3) and the hinge angle (F,).
    An out-of-reach target is pulled in along the line S -> P.
    """
    D = P - S
    dist = np.linalg.norm(D, axis=-1, keepdims=True)
    d = D / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(L1 - L2) + 1e-3, (L1 + L2) * 0.9995)
    a = (L1 * L1 - L2 * L2 + dist * dist) / (2 * dist)           # along d to the circle's centre
    r = np.sqrt(np.maximum(L1 * L1 - a * a, 0.0))                 # circle radius
    n = pole - np.sum(pole * d, -1, keepdims=True) * d
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    E = a * d + r * n                                             # middle joint, relative to S
    y = -E / L1
    # the far bone leaves the middle joint towards P: its part across the first bone is r d - a n
    x = bend * (r * d - a * n)
    x -= np.sum(x * y, -1, keepdims=True) * y
    x /= np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
    z = np.cross(x, y)
    R = np.stack([x, y, z], axis=-1)                              # columns are the bone's axes
    cos_t = np.clip(np.sum((E / L1) * ((dist * d - E) / L2), -1), -1.0, 1.0)
    return R, bend * np.arccos(cos_t)


# ----------------------------------------------------------------------------- performances
@dataclass
class Stage:
    """Where the camera sees: a person facing heading 0 faces the camera; image right is -z."""
    half_width: float = 1.0       # metres visible either side of the centre at the person's distance
    depth: float = 0.4            # how far the person may wander towards / away from the camera
    distance: float = 3.0         # camera to person: kicks and tumbles need room (``_MIN_DISTANCE``)


@dataclass
class PerformanceConfig:
    """What a performance may contain; the defaults are the dataset's mix."""
    motions: tuple[str, ...] = MOTIONS
    kinds: tuple[tuple[str, float], ...] = (("clip", 0.38), ("gesture", 0.37), ("idle", 0.1), ("walk", 0.15))
    p_exit: float = 0.5             # a walk leaves the frame (then comes back)
    p_start_outside: float = 0.06   # the clip opens on an empty room; the person walks in
    facing_sd_deg: float = 22.0     # heading spread around facing the camera
    p_profile: float = 0.12         # a segment turned 45-100 degrees
    p_back: float = 0.03            # a segment turned away from the camera
    p_mirror: float = 0.5
    p_blend: float = 0.25           # a clip segment blended with a second clip
    speed: tuple[float, float] = (0.7, 1.3)
    tremor_deg: float = 1.2
    look_at_camera: tuple[float, float] = (0.2, 0.8)   # share of the body's turn the head undoes
    segment_s: tuple[float, float] = (1.2, 4.0)
    p_squat: float = 0.15           # a gesture key bends the knees


# standing people facing the camera, never leaving it (MediaPipe should find every one of them)
STANDING_CONFIG = PerformanceConfig(motions=STANDING, kinds=(("clip", 0.45), ("gesture", 0.45), ("idle", 0.1)),
                                    p_start_outside=0.0, facing_sd_deg=15.0, p_profile=0.0, p_back=0.0,
                                    p_blend=0.0, p_squat=0.0)
# how often each clip is picked: people at a webcam dance and punch the air more than they kick,
# and rarely tumble over the floor
_MOTION_WEIGHT = {"dance_a": 1.0, "dance_b": 1.0, "punch": 0.8, "jump": 0.5, "kick": 0.5, "spin": 0.3,
                  "spinkick": 0.3, "cartwheel": 0.2, "backflip": 0.2, "crawl": 0.2, "roll": 0.2,
                  "getup_facedown": 0.2, "getup_faceup": 0.2, "walk": 0.5, "run": 0.3}
# metres the camera must be away for a clip (a kick in a close-up is a leg filling the frame)
# (dance_a bends deep, spin goes upside down half way)
_MIN_DISTANCE = {"dance_a": 1.0, "kick": 1.2, "spinkick": 1.4, "jump": 1.0, "spin": 1.8, **{m: 1.8 for m in FLOOR}}


@dataclass
class Performance:
    """Root path and local rotations of a performance, in the stage's world frame."""
    root_pos: np.ndarray   # (F, 3)
    rot: np.ndarray        # (F, J, 4)
    segments: list         # one dict per segment (kind, motion, frames, ...) for the clip's meta


def _facing(rng: np.random.Generator, cfg: PerformanceConfig) -> float:
    u = rng.random()
    if u < cfg.p_back:
        return math.pi + rng.normal(0, 0.4)
    if u < cfg.p_back + cfg.p_profile:
        return float(rng.choice([-1, 1]) * rng.uniform(math.radians(45), math.radians(100)))
    return float(rng.normal(0, math.radians(cfg.facing_sd_deg)))


def _yaw_rotate(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate (F, 3) vectors about +y by (F,) angles."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * v[:, 0] + s * v[:, 2], v[:, 1], -s * v[:, 0] + c * v[:, 2]], -1)


def _clip_segment(rng: np.random.Generator, n: int, p0: np.ndarray, psi: float, name: str,
                  cfg: PerformanceConfig, sk: Skeleton, stage: Stage, travel: bool, speed: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """A mocap clip, time-warped (and maybe mirrored, blended with a second clip), its average
    heading turned to ``psi``; unless ``travel``, its drift is mostly taken out and its steps kept
    within the stage (softly), so it stays in view."""
    m = load_motion(name)
    base = rng.uniform(*cfg.speed) if speed is None else speed
    speed = base * (1 + 0.12 * _smooth_noise(rng, n, 1, 12)[:, 0])
    t = rng.uniform(0, m.duration) + np.concatenate([[0.0], np.cumsum(speed[:-1])]) / FPS
    pos, rot = sample_motion(m, t)
    mirrored = bool(rng.random() < cfg.p_mirror)
    if mirrored:
        pos, rot = mirror(pos, rot)
    info = {"kind": "walk" if travel else "clip", "motion": name, "mirror": mirrored, "speed": round(base, 3)}
    h = np.unwrap(heading(rot[:, 0]))
    if rng.random() < cfg.p_blend and not travel:
        other = str(rng.choice([c for c in BLENDABLE if c != name]))
        m2 = load_motion(other)
        _, rot2 = sample_motion(m2, rng.uniform(0, m2.duration) + np.arange(n) * base / FPS)
        rot2[:, 0] = quat_mul(quat_yaw(h - heading(rot2[:, 0])), rot2[:, 0])  # follow the first clip's heading
        w = rng.uniform(0.25, 0.6) * (1 + 0.3 * _smooth_noise(rng, n, 1, 24)[:, 0])
        rot = nlerp(rot, rot2, np.clip(w, 0, 1)[:, None] * np.ones(len(JOINTS)))
        info["blend"], info["grounded"] = other, True
    # locomotion keeps its own turns (smoothed over a stride); other clips turn as a whole
    href = _box(h, int(FPS)) if travel else np.full(n, float(np.mean(h)))
    turn = psi + np.linspace(0, 0.0 if travel else rng.normal(0, 0.3), n)  # a slow turn while performing
    rot[:, 0] = quat_mul(quat_yaw(turn - href), rot[:, 0])
    step = np.diff(pos, axis=0, prepend=pos[:1])
    step[:, 1] = 0.0
    k = sk.leg_length / Skeleton().leg_length
    xz = np.cumsum(_yaw_rotate(step, turn - href), axis=0) * k
    root = p0 + xz
    if not travel:  # at a webcam people dance on the spot: keep the sway, a quarter of the travel
        slow = _box(xz, int(1.5 * FPS))
        root = p0 + xz - slow + 0.25 * (slow - slow[:1])
        for axis, limit in ((0, stage.depth + 0.03), (2, 0.4 * stage.half_width)):
            root[:, axis] = limit * np.tanh(root[:, axis] / limit)
    root[:, 1] = pos[:, 1] * k
    return root, rot, info


def _hand_target(rng: np.random.Generator, side: float, shoulder: np.ndarray, reach: float) -> tuple[np.ndarray, float]:
    """A reachable hand target in the chest frame for one arm (side = +1 right, -1 left) and an
    elbow pole bias; a named everyday gesture or a random point around the shoulder."""
    s = shoulder
    u = rng.random()
    named = {  # (hand offset from the chest joint in units of reach, right side; pole lift)
        "rest": ((0.0, -0.1, 0.0), 0.0), "hip": ((0.05, -0.05, 0.0), 0.8), "face": ((0.3, 0.2, -0.25), 0.2),
        "head": ((0.0, 0.72, -0.2), 0.9), "wave": ((0.12, 0.75, 0.55), 0.6), "up": ((0.1, 1.55, 0.25), 0.2),
        "t": ((0.0, 0.46, 1.35), 0.0), "point": ((1.05, 0.5, 0.2), 0.0), "cross": ((0.35, 0.15, -0.55), 0.0),
        "clap": ((0.6, 0.35, -0.3), 0.1), "chest": ((0.4, 0.35, -0.2), 0.3)}
    if u < 0.45:
        key = str(rng.choice(list(named)))
        (x, y, z), lift = named[key]
        if key == "rest":
            p = s + np.array([rng.normal(0, 0.05), -0.94 * reach, side * rng.uniform(0.02, 0.12)])
        elif key == "hip":
            p = np.array([0.03, rng.uniform(-0.02, 0.06), side * (s[2] * 0.9)])
        else:
            p = np.array([x * reach, y * reach, side * z * reach]) + rng.normal(0, 0.04, 3)
        return p, lift
    # random: a direction around the shoulder that is not behind the back, at a random reach
    while True:
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        if d[0] > -0.35 and side * d[2] > -0.6:
            break
    return s + d * reach * rng.uniform(0.45, 0.98), float(rng.uniform(-0.2, 0.8))


def _push_out(p: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Move (F, 3) points out of an axis-aligned ellipsoid onto its surface."""
    q = (p - centre) / radii
    r = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(r < 1.0, centre + q / np.maximum(r, 1e-6) * radii, p)


def _keys(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Key frame times covering [0, n): 0, then gaps of lo..hi seconds."""
    k = [0.0]
    while k[-1] < n - 1:
        k.append(k[-1] + rng.uniform(lo, hi) * FPS)
    return np.array(k)


def _interp_keys(keys: np.ndarray, vals: np.ndarray, n: int, hold: np.ndarray) -> np.ndarray:
    """(K,) key times and (K, D) values -> (n, D): eased moves between keys, each key held for
    its ``hold`` share of the gap (people hold a pose, then move)."""
    f = np.arange(n, dtype=np.float64)
    i = np.clip(np.searchsorted(keys, f, side="right") - 1, 0, len(keys) - 2)
    u = (f - keys[i]) / (keys[i + 1] - keys[i])
    h = hold[i]
    u = np.clip((u - h) / np.maximum(1 - h, 1e-6), 0, 1)
    u = u * u * (3 - 2 * u)
    return vals[i] + u[:, None] * (vals[i + 1] - vals[i])


def _gesture_segment(rng: np.random.Generator, n: int, p0: np.ndarray, psi: float, sk: Skeleton, idle: bool,
                     cfg: PerformanceConfig, reach_limit: float = 9.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Random smooth reachable poses: hand targets (named gestures or random points around the
    shoulders) and feet planted on the floor, solved by two-bone IK; spine and head turn too.
    ``idle``: small moves around a rest pose (breathing, sway, glances). Hands stay within
    ``reach_limit`` metres in front of the chest (a close webcam is not punched)."""
    o = sk.offsets
    L_up, L_fore = float(-o[J["right_elbow"], 1]), float(-sk.wrist[1])
    L_th, L_sh = float(-o[J["right_knee"], 1]), float(-o[J["right_ankle"], 1])
    reach = L_up + L_fore
    ankle_h = 0.05 * L_sh / (-OFFSETS[J["right_ankle"], 1])
    keys = _keys(rng, n, 1.2, 3.0) if idle else _keys(rng, n, 0.45, 1.6)
    K = len(keys)
    hold = rng.uniform(0.0, 0.5, K)
    amp = 0.25 if idle else 1.0
    # spine and head (radians): yaw, bend (positive back), side
    spine = np.stack([rng.normal(0, 0.25, K), rng.uniform(-0.35, 0.12, K), rng.normal(0, 0.12, K)], -1) * amp
    head = np.stack([rng.normal(0, 0.45, K), rng.uniform(-0.35, 0.3, K), rng.normal(0, 0.15, K)], -1) * amp
    squat = np.where(rng.random(K) < (0.0 if idle else cfg.p_squat), rng.uniform(0.03, 0.25, K), 0.0)
    pelvis = np.stack([rng.normal(0, 0.15, K) * amp, squat, rng.normal(0, 0.04, K) * amp], -1)  # yaw, drop, shift
    hands, poles = [], []
    for side, j in ((1.0, J["right_shoulder"]), (-1.0, J["left_shoulder"])):
        pts, lifts = [], []
        for _ in range(K):
            if idle and rng.random() < 0.7:
                p, lift = o[j] + np.array([rng.normal(0, 0.04), -0.93 * reach, side * 0.06]), 0.0
            else:
                p, lift = _hand_target(rng, side, o[j], reach)
            pts.append(p)
            lifts.append(lift)
        hands.append(np.array(pts))
        poles.append(np.array(lifts))
    if not idle and rng.random() < 0.35:  # symmetric gestures (both arms mirrored) are common
        hands[1] = hands[0] * np.array([1.0, 1.0, -1.0])
    # a wave: the forearm swings side to side around one key's hand position
    wave = np.zeros((n, 3))
    if not idle and rng.random() < 0.2:
        wave[:, 2] = 0.08 * np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * np.arange(n) / FPS)
    width = rng.uniform(0.1, 0.45) * (-o[J["left_hip"], 2]) / 0.0849
    toe_out = rng.uniform(0.0, 0.35)
    lift_leg = (not idle) and rng.random() < 0.12
    lift_key = np.zeros(K)
    if lift_leg:
        lift_key[rng.integers(1, K) if K > 1 else 0] = 1.0

    sp = _interp_keys(keys, spine, n, hold)
    hd = _interp_keys(keys, head, n, hold)
    pv = _interp_keys(keys, pelvis, n, hold)
    lk = _interp_keys(keys, lift_key[:, None], n, hold)[:, 0]
    breathe = 0.015 * np.sin(2 * np.pi * np.arange(n) / FPS / rng.uniform(3, 5) + rng.uniform(0, 6.3))
    rot = np.zeros((n, len(JOINTS), 4))
    rot[..., 0] = 1.0
    sway = 0.02 * _smooth_noise(rng, n, 2, 18)
    # root: heading psi plus the pelvis's own turn, a little lean; height from the legs
    root = np.repeat(p0[None].astype(np.float64), n, 0)
    root += _yaw_rotate(np.stack([sway[:, 0], np.zeros(n), pv[:, 2] + sway[:, 1]], -1), np.full(n, psi))
    root[:, 1] = (L_th + L_sh) * 0.985 + ankle_h - pv[:, 1]
    rot[:, 0] = quat_mul(quat_yaw(psi + pv[:, 0]), euler_quat(np.zeros(n), -0.6 * pv[:, 1], np.zeros(n)))
    rot[:, J["chest"]] = euler_quat(sp[:, 0], sp[:, 1] + breathe + 0.3 * pv[:, 1], sp[:, 2])
    rot[:, J["neck"]] = euler_quat(hd[:, 0], hd[:, 1] - 0.5 * sp[:, 1], hd[:, 2] - 0.5 * sp[:, 2])
    # arms: IK in the chest frame, the hand pushed out of the torso and the head
    for (side, sh, el), H, lift in zip(((1.0, "right_shoulder", "right_elbow"), (-1.0, "left_shoulder", "left_elbow")),
                                       hands, poles):
        P = _interp_keys(keys, H, n, hold) + (wave if side > 0 else 0.0)   # only the right hand waves
        P[:, 0] = np.minimum(P[:, 0], reach_limit)
        P = _push_out(P, np.array([0.0, 0.08, 0.0]), np.array([0.2, 0.36, o[J["right_shoulder"], 2] + 0.02]))
        P = _push_out(P, np.array([0.04, o[J["neck"], 1] + 0.17, 0.0]), np.array([0.15, 0.17, 0.13]))
        lf = _interp_keys(keys, lift[:, None], n, hold)
        pole = np.concatenate([-0.3 + 0.0 * lf, -1.0 + lf, side * (0.6 + lf)], -1)
        R, ang = two_bone_ik(np.broadcast_to(o[J[sh]], (n, 3)), P, L_up, L_fore, pole, +1.0)
        rot[:, J[sh]] = mat_to_quat(R)
        rot[:, J[el]] = quat_axis_angle(np.array([0.0, 0.0, 1.0]), ang)
    # legs: feet planted at the stance, IK in the root frame, feet flat
    Rroot = quat_to_mat(rot[:, 0])
    for side, hip, knee, ankle in ((1.0, "right_hip", "right_knee", "right_ankle"),
                                   (-1.0, "left_hip", "left_knee", "left_ankle")):
        foot_yaw = psi + side * -toe_out * 0.5
        A = p0 + _yaw_rotate(np.array([[0.0, ankle_h, side * width * 0.5]]), np.array([psi]))[0]
        A = np.repeat(A[None], n, 0)
        if lift_leg and side > 0:
            A = A + _yaw_rotate(np.stack([0.25 * lk, 0.35 * lk, 0 * lk], -1), np.full(n, psi))
        A_loc = np.einsum("fji,fj->fi", Rroot, A - root)
        pole = np.stack([np.ones(n), np.zeros(n), side * 0.25 * np.ones(n)], -1)
        R, ang = two_bone_ik(np.broadcast_to(o[J[hip]], (n, 3)), A_loc, L_th, L_sh, pole, -1.0)
        rot[:, J[hip]] = mat_to_quat(R)
        rot[:, J[knee]] = quat_axis_angle(np.array([0.0, 0.0, 1.0]), ang)
        Rz = quat_to_mat(rot[:, J[knee]])
        Rfoot = quat_to_mat(quat_yaw(np.full(n, foot_yaw)))
        rot[:, J[ankle]] = mat_to_quat(np.swapaxes(Rroot @ R @ Rz, -1, -2) @ Rfoot)
    return root, rot, {"kind": "idle" if idle else "gesture", "grounded": True}


def _walk_speed(name: str) -> float:
    """Metres per second of a locomotion clip at speed 1 (its net displacement per cycle)."""
    m = load_motion(name)
    return float(np.linalg.norm((m.root_pos[-1] - m.root_pos[0])[[0, 2]]) / m.duration)


# points that can touch the floor: (joint, point in its frame, radius of the body there)
_CONTACTS = ((J["right_ankle"], (-0.04, -0.05, 0.0), 0.0), (J["right_ankle"], (0.13, -0.05, 0.0), 0.0),
             (J["left_ankle"], (-0.04, -0.05, 0.0), 0.0), (J["left_ankle"], (0.13, -0.05, 0.0), 0.0),
             (J["right_knee"], (0.0, 0.0, 0.0), 0.055), (J["left_knee"], (0.0, 0.0, 0.0), 0.055),
             (J["root"], (0.0, 0.0, 0.0), 0.11), (J["chest"], (0.0, 0.15, 0.0), 0.13),
             (J["neck"], (0.0, 0.175, 0.0), 0.11), (J["right_elbow"], (0.0, 0.0, 0.0), 0.045),
             (J["left_elbow"], (0.0, 0.0, 0.0), 0.045), (J["right_elbow"], (0.0, -0.3, 0.0), 0.04),
             (J["left_elbow"], (0.0, -0.3, 0.0), 0.04))


def lowest_point(root_pos: np.ndarray, rot: np.ndarray, sk: Skeleton) -> np.ndarray:
    """(F,) height of the body's lowest surface point (feet soles, knees, hips, back, head, hands)."""
    P, G = forward_kinematics(root_pos, rot, sk)
    scale = sk.leg_length / Skeleton().leg_length
    low = np.full(len(root_pos), np.inf)
    for j, p, r in _CONTACTS:
        y = P[:, j, 1] + (G[:, j] @ (np.array(p) * scale))[:, 1] - r * scale
        low = np.minimum(low, y)
    return low


def _ground(root_pos: np.ndarray, rot: np.ndarray, sk: Skeleton, grounded: np.ndarray) -> np.ndarray:
    """Root path with feet (or whatever touches) on the floor. Mocap keeps its own heights
    (jumps keep their flight): the lowest point within each second is put at height 0. Where
    ``grounded`` (F,) is 1 (gestures, blends: poses whose root height is made up) the lowest
    point of every frame is."""
    low = lowest_point(root_pos, rot, sk)
    w = int(FPS)
    padded = np.pad(low, (w // 2, w - w // 2), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, w + 1)[:len(low)].min(-1)
    shift = _box((-(1 - grounded) * win - grounded * low)[:, None], 5)[:, 0]
    out = root_pos.copy()
    out[:, 1] += shift
    return out


def performance(rng: np.random.Generator, n_frames: int, sk: Skeleton | None = None,
                cfg: PerformanceConfig | None = None, stage: Stage | None = None) -> Performance:
    """What one person does in front of the webcam for ``n_frames`` (see the module docstring)."""
    sk, cfg, stage = sk or Skeleton(), cfg or PerformanceConfig(), stage or Stage()
    scale = sk.leg_length / Skeleton().leg_length
    blend = int(0.4 * FPS)
    kinds, probs = zip(*cfg.kinds)
    probs = np.array(probs) / np.sum(probs)
    clips = [m for m in cfg.motions if m not in LOCOMOTION and stage.distance >= _MIN_DISTANCE.get(m, 0.0)]
    clips = clips or [m for m in cfg.motions if m not in LOCOMOTION] or list(cfg.motions)
    cw = np.array([_MOTION_WEIGHT.get(m, 1.0) for m in clips])
    walks = [m for m in cfg.motions if m in LOCOMOTION]
    inside = lambda: np.array([rng.uniform(-1, 1) * stage.depth, 0.0,  # noqa: E731
                               rng.uniform(-0.3, 0.3) * stage.half_width])
    pos = inside()
    outside = False   # the person is out of the frame: the next segment walks back in
    if walks and rng.random() < cfg.p_start_outside:
        pos[2] = rng.choice([-1, 1]) * (stage.half_width + rng.uniform(0.4, 1.0))
        outside = True
    parts, infos, f = [], [], 0
    while f < n_frames:
        kind = "walk" if outside else str(rng.choice(kinds, p=probs))
        if kind == "walk" and not walks:
            kind = "gesture"
        if kind == "walk":
            name = "run" if "run" in walks and (rng.random() < 0.2 or walks == ["run"]) else "walk"
            speed = float(rng.uniform(0.8, 1.15))
            v = _walk_speed(name) * speed * scale
            target = inside()
            if outside:
                outside = False
            elif rng.random() < cfg.p_exit:   # out of the frame by the nearer side
                side = np.sign(pos[2]) if abs(pos[2]) > 0.2 * stage.half_width else rng.choice([-1, 1])
                target = np.array([pos[0], 0.0, side * (stage.half_width + rng.uniform(0.3, 0.7))])
                outside = True
            else:  # a stroll to another spot in view
                step = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0) * stage.half_width
                target[2] = np.clip(pos[2] + step, -0.5 * stage.half_width, 0.5 * stage.half_width)
            d = (target - pos) * np.array([1.0, 0.0, 1.0])
            psi = math.atan2(-d[2], d[0])
            n = max(int(0.8 * FPS), int(math.ceil(np.linalg.norm(d) / max(v, 1e-3) * FPS)))
            root, rot, info = _clip_segment(rng, n + blend, pos, psi, name, cfg, sk, stage, True, speed)
        elif kind == "clip":
            n = int(rng.uniform(*cfg.segment_s) * FPS)
            name = str(rng.choice(clips, p=cw / cw.sum()))
            root, rot, info = _clip_segment(rng, n + blend, pos, _facing(rng, cfg), name, cfg, sk, stage, False)
        else:
            n = int(rng.uniform(*cfg.segment_s) * FPS)
            root, rot, info = _gesture_segment(rng, n + blend, pos, _facing(rng, cfg), sk, kind == "idle", cfg,
                                               max(0.12, stage.distance - pos[0] - 0.35))
        grounded = float(info.pop("grounded", False))
        info.update(start=f, frames=min(n, n_frames - f))
        parts.append((f, root, rot, grounded))
        infos.append(info)
        pos = root[n] * np.array([1.0, 0.0, 1.0])
        f += n
    # stitch: each segment fades in over the first ``blend`` frames of its span
    F = n_frames
    root_pos = np.zeros((F, 3))
    rot = np.zeros((F, len(JOINTS), 4))
    rot[..., 0] = 1.0
    grounded = np.zeros(F)   # 1 where the root height is made up (IK, blends): feet go on the floor
    for s, r, q, g in parts:
        m = min(len(r), F - s)
        w = np.clip((np.arange(m) + 1.0) / (blend + 1.0), 0, 1) if s > 0 else np.ones(m)
        w = w * w * (3 - 2 * w)
        grounded[s:s + m] = (1 - w) * grounded[s:s + m] + w * g
        root_pos[s:s + m] = (1 - w[:, None]) * root_pos[s:s + m] + w[:, None] * r[:m]
        rot[s:s + m] = nlerp(rot[s:s + m], q[:m], w[:, None] * np.ones(len(JOINTS)))
    # the head turns partly back towards the camera (people watch their screen), never further
    # round from the chest than a neck turns; only while the body is upright
    lam = rng.uniform(*cfg.look_at_camera)
    _, G = forward_kinematics(root_pos, rot, sk)
    head, chest = heading_of(G[:, J["neck"]]), heading_of(G[:, J["chest"]])
    want = np.where(np.abs(head) < math.radians(110), head - lam * np.clip(head, -0.9, 0.9), head)
    want = chest + np.clip(_wrap(want - chest), -1.2, 1.2)
    upright = np.clip((G[:, J["chest"], 1, 1] - 0.5) / 0.3, 0.0, 1.0)
    turn = _box((upright * _wrap(want - head))[:, None], 9)[:, 0]
    rot[:, J["neck"]] = quat_mul(quat_yaw(turn), rot[:, J["neck"]])
    # tremor: small smooth rotations of every joint, a little sway of the root
    noise = _smooth_noise(rng, F, 3 * len(JOINTS) + 3, 2.5)
    ang = noise[:, :-3].reshape(F, len(JOINTS), 3) * math.radians(cfg.tremor_deg) / math.sqrt(3)
    norm = np.linalg.norm(ang, axis=-1, keepdims=True)
    dq = np.concatenate([np.cos(norm / 2), np.sin(norm / 2) * ang / np.maximum(norm, 1e-12)], -1)
    rot = quat_mul(rot, dq)
    root_pos = root_pos + noise[:, -3:] * 0.003
    root_pos = _ground(root_pos, rot, sk, grounded)
    return Performance(root_pos, rot, infos)
