"""Retargeting: the driver lends the avatar its motion, the avatar keeps its own body.

    rt = Retargeter(rest, mode="relative")   # rest: the avatar's (33, 4) landmarks on its first frame
    pose = rt(driver, t)                      # a detection (33, 4) or None at time t -> (33, 4) or None

The avatar's body is a tree of bones rooted at the hip centre (``BONES``); its first-frame landmarks
set where it stands, its scale and every bone's length. The driver (a webcam user, a second video,
the API) only lends each bone its direction in the image plane:
- ``mirror``: the driver's absolute bone directions ("mirror my pose");
- ``relative``: each bone's turn since the driver's first pose, added to the avatar's own first pose
  (as LivePortrait's relative motion transfer).
A bone the driver does not show (an endpoint below ``min_visibility`` or outside the frame: legs
under a desk) holds the avatar's rest direction; bones blend in and out over ``blend_s``. The root
moves only sideways: the driver's shoulder centre moved by so many of its shoulder widths moves the
avatar by as many of its own, kept inside the frame, so leaning in or a close camera never makes the
avatar giant. A jump of the driver (another person, a switch between people) re-anchors the root
and the relative references, so the avatar does not jump. Nobody in view returns None: the
smoother (controls/smoothing.py) then holds and relaxes to the rest pose.

Depth (z) is not read by the model (controls/pose.py); the avatar keeps its rest depths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controls.landmarks import INDEX, NAMES, sanitize

MODES = ("mirror", "relative")
HIPS, SHOULDERS = len(NAMES), len(NAMES) + 1          # virtual points: the hip centre, the shoulder centre
_P = {**INDEX, "hips": HIPS, "shoulders": SHOULDERS}
_FACE = ("left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
         "left_ear", "right_ear", "mouth_left", "mouth_right")
_LIMBS = tuple((f"{s}_{a}", f"{s}_{b}") for s in ("left", "right") for a, b in (
    ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "pinky"), ("wrist", "index"), ("wrist", "thumb"),
    ("hip", "knee"), ("knee", "ankle"), ("ankle", "heel"), ("ankle", "foot_index")))
# (parent, child) in tree order: every parent is placed before its children
BONES = tuple((_P[a], _P[b]) for a, b in (
    ("hips", "shoulders"), ("hips", "left_hip"), ("hips", "right_hip"),
    ("shoulders", "left_shoulder"), ("shoulders", "right_shoulder"), ("shoulders", "nose"),
    *(("nose", f) for f in _FACE), *_LIMBS))
ARM_BONES = {"left upper arm": (INDEX["left_shoulder"], INDEX["left_elbow"]),
             "left forearm": (INDEX["left_elbow"], INDEX["left_wrist"]),
             "right upper arm": (INDEX["right_shoulder"], INDEX["right_elbow"]),
             "right forearm": (INDEX["right_elbow"], INDEX["right_wrist"])}
assert sorted(b for _, b in BONES) == list(range(len(NAMES))) + [SHOULDERS]


@dataclass
class RetargetConfig:
    mode: str = "relative"
    min_visibility: float = 0.5    # a driver landmark below this is not shown
    frame_margin: float = 0.02     # ... nor one further than this outside the frame
    blend_s: float = 0.3           # a bone appearing or vanishing blends over this time
    switch_jump: float = 1.5       # the shoulder centre moving this many shoulder widths at once: another person
    switch_scale: float = 1.6      # ... or the shoulder width changing by this factor at once
    edge: float = 0.03             # the avatar stays this far inside the frame's left and right edges


def _extend(lm: np.ndarray) -> np.ndarray:
    """(33, 4) -> (35, 4): with the hip and shoulder centres (visibility: the lower of the pair's)."""
    out = np.zeros((len(NAMES) + 2, 4), np.float32)
    out[:len(NAMES)] = lm
    for v, (a, b) in ((HIPS, ("left_hip", "right_hip")), (SHOULDERS, ("left_shoulder", "right_shoulder"))):
        pa, pb = lm[INDEX[a]], lm[INDEX[b]]
        out[v, :3] = (pa[:3] + pb[:3]) / 2
        out[v, 3] = min(pa[3], pb[3])
    return out


def bone_angles(lm: np.ndarray) -> np.ndarray:
    """(33, 4) landmarks -> (len(BONES),) image-plane angle of every bone (radians, x right, y down)."""
    e = _extend(lm)
    d = e[[c for _, c in BONES], :2] - e[[p for p, _ in BONES], :2]
    return np.arctan2(d[:, 1], d[:, 0])


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def shoulder_width(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[INDEX["left_shoulder"], :2] - lm[INDEX["right_shoulder"], :2]))


class Retargeter:
    """Stateful retargeting of one driver onto one avatar (see the module docstring)."""

    def __init__(self, rest: np.ndarray, config: RetargetConfig | None = None):
        self.config = config or RetargetConfig()
        if self.config.mode not in MODES:
            raise ValueError(f"retarget mode must be one of {MODES}, got {self.config.mode!r}")
        self.set_rest(rest)

    def set_rest(self, rest: np.ndarray) -> None:
        """The avatar's own body: its (33, 4) landmarks on its first frame. Resets the driver state."""
        self.rest = sanitize(rest)
        e = _extend(self.rest)
        self.rest_ext = e
        par, chi = [p for p, _ in BONES], [c for _, c in BONES]
        d = e[chi, :2] - e[par, :2]
        self.length = np.linalg.norm(d, axis=1)                        # (nb,) the avatar's bone lengths
        self.rest_angle = np.arctan2(d[:, 1], d[:, 0])
        self.rest_width = max(shoulder_width(self.rest), 1e-3)
        self.reset()

    def reset(self) -> None:
        """Forget the driver (its first pose, the blend weights, the root offset)."""
        nb = len(BONES)
        self.weight = np.zeros(nb)                   # how much each bone follows the driver
        self.target = self.rest_angle.copy()         # the last angle the driver gave each bone
        self.base = self.rest_angle.copy()           # relative mode: the avatar's angle at the reference
        self.ref = np.full(nb, np.nan)               # relative mode: the driver's angle at the reference
        self.offset = 0.0                            # the root's sideways offset (image widths)
        self.anchor: tuple[float, float] | None = None   # (driver shoulder centre x, offset) at the reference
        self.last_driver: tuple[float, float] | None = None   # (shoulder centre x, width) last seen
        self.last_t: float | None = None
        self.angles = self.rest_angle.copy()
        self.switches = 0

    # ------------------------------------------------------------------ one detection
    def shown(self, driver: np.ndarray) -> np.ndarray:
        """(len(BONES),) bool: the bones whose both ends the driver shows, inside the frame."""
        c = self.config
        e = _extend(driver)
        ok = (e[:, 3] >= c.min_visibility) & (e[:, :2] >= -c.frame_margin).all(1) & (e[:, :2] <= 1 + c.frame_margin).all(1)
        return np.array([ok[p] and ok[ch] for p, ch in BONES])

    def __call__(self, driver: np.ndarray | None, t: float) -> np.ndarray | None:
        """A detection (33, 4) (None or nothing visible: nobody) at time t (s) -> the avatar's
        (33, 4) pose, or None for nobody in view."""
        dt = 0.0 if self.last_t is None else float(np.clip(t - self.last_t, 0.0, 1.0))
        self.last_t = t
        lm = None if driver is None else sanitize(driver)
        if lm is None or not (lm[:, 3] > 0).any():
            return None
        c = self.config
        shown = self.shown(lm)
        sh = (INDEX["left_shoulder"], INDEX["right_shoulder"])
        has_torso = bool((lm[list(sh), 3] >= c.min_visibility).all())
        if has_torso:
            x, w = float(lm[list(sh), 0].mean()), max(shoulder_width(lm), 1e-3)
            if self.last_driver is not None and self._is_switch(x, w):
                self._reanchor()
            if self.anchor is None:
                self.anchor = (x, self.offset)
            self.offset = self.anchor[1] + (x - self.anchor[0]) / w * self.rest_width
            self.last_driver = (x, w)
        angle = bone_angles(lm)
        fresh = shown & np.isnan(self.ref)
        self.ref[fresh] = angle[fresh]
        self.base[fresh] = self.angles[fresh]
        if c.mode == "mirror":
            self.target[shown] = angle[shown]
        else:
            self.target[shown] = self.base[shown] + _wrap(angle[shown] - self.ref[shown])
        # a vanished bone forgets its reference, so it re-anchors where it appears again
        self.ref[~shown & (self.weight <= 0)] = np.nan
        step = 1.0 if c.blend_s <= 0 else dt / c.blend_s
        self.weight = np.clip(self.weight + np.where(shown, step, -step), 0.0, 1.0)
        self.angles = self.rest_angle + self.weight * _wrap(self.target - self.rest_angle)
        return self.pose()

    def _is_switch(self, x: float, w: float) -> bool:
        x0, w0 = self.last_driver
        return abs(x - x0) > self.config.switch_jump * max(w, w0) or max(w / w0, w0 / w) > self.config.switch_scale

    def _reanchor(self) -> None:
        """Another driver: the root stays where it is, relative bones restart from where they are."""
        self.anchor = None
        self.ref[:] = np.nan
        self.switches += 1

    # ------------------------------------------------------------------ the avatar's pose
    def pose(self) -> np.ndarray:
        """(33, 4) the avatar at the current bone angles and root offset, kept inside the frame."""
        e = self.rest_ext.copy()
        for b, (p, ch) in enumerate(BONES):
            e[ch, :2] = e[p, :2] + self.length[b] * np.array([np.cos(self.angles[b]), np.sin(self.angles[b])])
        out = e[:len(NAMES)].copy()
        # the shoulder centre stays half a shoulder width plus ``edge`` inside the frame (an avatar
        # whose own first frame stands further out is not pulled in)
        x = float(e[SHOULDERS, 0])
        half = self.config.edge + self.rest_width / 2
        shift = float(np.clip(self.offset, min(0.0, half - x), max(0.0, 1 - half - x)))
        if shift != self.offset:                   # held by the frame's edge: moving back moves at once
            self.offset = shift
            if self.anchor is not None and self.last_driver is not None:
                self.anchor = (self.last_driver[0], shift)
        out[:, 0] += shift
        bones_to = np.zeros(len(NAMES) + 2)
        for b, (_, ch) in enumerate(BONES):
            bones_to[ch] = self.weight[b]
        out[:, 3] = (1 - bones_to[:len(NAMES)]) * self.rest[:, 3] + bones_to[:len(NAMES)]
        return out.astype(np.float32)
