"""The camera control model: slider values and held keys -> per-frame camera controls.

    cam = CameraInput()
    cam.set_slider("yaw", 2.0)                  # degrees per frame, held until changed
    cam.set_keys({"w", "arrowleft"})            # keys currently held
    controls = cam.next_frames(4)               # (4, 7) per-frame controls for the engine

Sliders are rates in the units of ``controls/camera.py`` (degrees or world units per frame at
24 fps); a held key adds its axis' full rate (the limits of ``data/trajectories.py``, the
range the models were trained on, ``controls/camera.py``). The output follows the target with a short ramp, like a
person pressing a key in the training trajectories, and, with ``auto_level``, pitch and roll
drift back to level when nobody steers them, as the training trajectories do. Every value is
sanitised: non-finite inputs count as 0 and rates are clamped to the trained range.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from controls.camera import APP_PITCH_LIMIT, APP_ROLL_LIMIT, AXES, CONTROL_DIM, LIMITS

# key name (KeyboardEvent.key, lower case) -> (axis, direction)
KEYMAP = {
    "arrowleft": ("yaw", -1), "arrowright": ("yaw", 1),
    "arrowup": ("pitch", 1), "arrowdown": ("pitch", -1),
    "w": ("forward", 1), "s": ("forward", -1),
    "a": ("strafe", -1), "d": ("strafe", 1),
    "q": ("roll", -1), "e": ("roll", 1),
    "r": ("up", 1), "f": ("up", -1),
}
KEY_HELP = ("←/→ turn, ↑/↓ look up/down, W/S forward/back, A/D strafe, Q/E roll, R/F up/down")


@dataclass
class CameraInputConfig:
    """How inputs become motion."""
    ramp_frames: float = 3.0     # frames from rest to full rate (and back)
    key_gain: float = 1.0        # a held key = this fraction of the axis limit
    auto_level: bool = True      # pitch and roll return to level when not steered
    level_pitch: float = 0.03    # fraction of the pitch error removed per frame (as the training data)
    level_roll: float = 0.08


def parse_keys(keys: str | set[str] | list[str] | tuple[str, ...] | None) -> frozenset[str]:
    """'w,arrowleft' or an iterable of key names -> the set of known keys held (unknown names ignored)."""
    if keys is None:
        return frozenset()
    items = keys.split(",") if isinstance(keys, str) else keys
    out = set()
    for k in items:
        if not isinstance(k, str):
            continue
        k = k.strip().lower()
        if k in ("left", "right", "up", "down"):
            k = "arrow" + k
        if k in KEYMAP:
            out.add(k)
    return frozenset(out)


def finite(value: object, default: float = 0.0) -> float:
    """A float from anything; NaN, inf, None and junk become ``default``."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


class CameraInput:
    """Slider and key state of one stream -> per-frame camera controls; thread-safe."""

    def __init__(self, config: CameraInputConfig | None = None):
        self.config = config or CameraInputConfig()
        self._lock = threading.Lock()
        self.sliders = np.zeros(CONTROL_DIM)
        self.keys: frozenset[str] = frozenset()
        self.reset()

    def reset(self) -> None:
        """Camera at rest and level (inputs are kept: a held slider keeps moving the new stream)."""
        with self._lock:
            self.rate = np.zeros(CONTROL_DIM)     # the current per-frame control
            self.pitch = 0.0                      # integrated pitch and roll, for auto-levelling
            self.roll = 0.0

    def set_slider(self, axis: str, value: object) -> float:
        """Set one axis' rate; returns the value used (sanitised and clamped)."""
        if axis not in AXES:
            raise ValueError(f"unknown camera axis {axis!r}; choose one of {AXES}")
        i = AXES.index(axis)
        v = float(np.clip(finite(value), -LIMITS[i], LIMITS[i]))
        with self._lock:
            self.sliders[i] = v
        return v

    def set_sliders(self, **values: object) -> None:
        for axis, v in values.items():
            self.set_slider(axis, v)

    def set_keys(self, keys: str | set[str] | list[str] | tuple[str, ...] | None) -> frozenset[str]:
        """Replace the set of held keys; returns the keys understood."""
        k = parse_keys(keys)
        with self._lock:
            self.keys = k
        return k

    def release(self) -> None:
        """All sliders to 0 and all keys up."""
        with self._lock:
            self.sliders[:] = 0.0
            self.keys = frozenset()

    def target(self) -> np.ndarray:
        """(7,) the rate the inputs ask for now."""
        with self._lock:
            t = self.sliders.copy()
            for k in self.keys:
                axis, sign = KEYMAP[k]
                i = AXES.index(axis)
                t[i] += sign * self.config.key_gain * LIMITS[i]
        return np.clip(t, -LIMITS, LIMITS)

    def next_frames(self, n: int) -> np.ndarray:
        """(n, 7) float32 controls of the next n video frames (advances the ramp and the levelling)."""
        cfg = self.config
        target = self.target()
        step = LIMITS / max(cfg.ramp_frames, 1e-6)
        out = np.zeros((n, CONTROL_DIM), np.float32)
        with self._lock:
            for f in range(n):
                self.rate = self.rate + np.clip(target - self.rate, -step, step)
                c = self.rate.copy()
                if cfg.auto_level:
                    if abs(target[1]) < 1e-9:
                        c[1] -= cfg.level_pitch * self.pitch
                    if abs(target[2]) < 1e-9:
                        c[2] -= cfg.level_roll * self.roll
                c = np.clip(c, -LIMITS, LIMITS)
                # the rig stops at its pitch and roll limits: ask for no more than it takes, so that
                # the integrated pitch and roll stay the rig's own (levelling then undoes only real tilt)
                c[1] = np.clip(self.pitch + c[1], -APP_PITCH_LIMIT, APP_PITCH_LIMIT) - self.pitch
                c[2] = np.clip(self.roll + c[2], -APP_ROLL_LIMIT, APP_ROLL_LIMIT) - self.roll
                self.pitch += c[1]
                self.roll += c[2]
                out[f] = c
        return out

    @property
    def moving(self) -> bool:
        return bool(np.any(self.target() != 0) or np.any(np.abs(self.rate) > 1e-9))
