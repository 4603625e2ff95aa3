"""Control trajectories that look like a person at the controls (camera) for the renderers.

A camera trajectory is a (F, CONTROL_DIM) float32 array of per-frame controls (see
``controls.camera``), made of segments: idle spells, key bursts (held keys with a short
ramp), slider sweeps (smooth curves), full 360-degree turns and reversals. Pitch and roll are
steered back towards level so long clips keep looking at the world, not at the sky.
"""
from __future__ import annotations

import numpy as np

from controls.camera import (CONTROL_DIM, MAX_FORWARD, MAX_PITCH, MAX_ROLL, MAX_STRAFE,  # noqa: F401 (re-exported)
                             MAX_UP, MAX_YAW, MAX_ZOOM)
SEGMENTS = ("idle", "burst", "sweep", "turn", "reversal", "cruise")


def _ramp(n: int, rise: int) -> np.ndarray:
    """Envelope of a held key: ramp up over ``rise`` frames, hold, ramp down."""
    e = np.ones(n)
    r = min(rise, n // 2)
    if r > 0:
        e[:r] = np.linspace(0, 1, r + 1)[1:]
        e[n - r:] = np.linspace(1, 0, r + 1)[:-1]
    return e


def camera_trajectory(rng: np.random.Generator, n_frames: int, allow_translation: bool = True,
                      allow_zoom: bool = False, segments: tuple[str, ...] = SEGMENTS) -> np.ndarray:
    """(n_frames, CONTROL_DIM) float32 controls; row 0 is zero (frame 0 is the start pose)."""
    out = np.zeros((n_frames, CONTROL_DIM), np.float64)
    pitch = roll = 0.0
    f = 1
    while f < n_frames:
        kind = segments[int(rng.integers(len(segments)))]
        n = int(rng.integers(6, 40))
        seg = np.zeros((n, CONTROL_DIM))
        if kind == "idle":
            seg += rng.normal(0, 0.02, (n, CONTROL_DIM)) * np.array([1, 0.5, 0.2, 0, 0, 0, 0])
        elif kind == "burst":  # one or two held keys
            for ax in rng.choice(6 if allow_translation else 3, size=int(rng.integers(1, 3)), replace=False):
                lim = (MAX_YAW, MAX_PITCH, MAX_ROLL, MAX_FORWARD, MAX_STRAFE, MAX_UP)[ax]
                seg[:, ax] = rng.choice([-1, 1]) * rng.uniform(0.3, 1.0) * lim * _ramp(n, int(rng.integers(1, 5)))
        elif kind == "sweep":  # slider dragged along a smooth curve
            n = int(rng.integers(24, 72))
            seg = np.zeros((n, CONTROL_DIM))
            x = np.linspace(0, 1, n)
            for ax, lim in ((0, MAX_YAW), (1, MAX_PITCH * 0.6)):
                a, w, ph = rng.uniform(0.2, 1.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
                seg[:, ax] = lim * a * np.sin(2 * np.pi * w * x + ph)
            if allow_translation:
                seg[:, 3] = MAX_FORWARD * rng.uniform(0, 1) * _ramp(n, 8)
        elif kind == "turn":  # a full 360-degree turn, either way
            rate = rng.choice([-1, 1]) * rng.uniform(2.5, MAX_YAW)
            n = int(np.ceil(360.0 / abs(rate)))
            seg = np.zeros((n, CONTROL_DIM))
            seg[:, 0] = rate
        elif kind == "reversal":  # turn one way, then back
            rate = rng.choice([-1, 1]) * rng.uniform(1.0, MAX_YAW)
            half = n // 2
            seg[:half, 0] = rate * _ramp(half, 2)
            seg[half:, 0] = -rate * _ramp(n - half, 2)
        elif kind == "cruise" and allow_translation:  # moving forward, steering gently
            seg[:, 3] = rng.uniform(0.3, 1.0) * MAX_FORWARD * _ramp(n, 4)
            seg[:, 0] = rng.normal(0, 0.8) * np.ones(n)
            seg[:, 4] = rng.normal(0, 0.05) * np.ones(n)
        if allow_zoom and rng.random() < 0.3:
            seg[:, 6] = rng.choice([-1, 1]) * rng.uniform(0.3, 1.0) * MAX_ZOOM * _ramp(n, 3)
        # steer pitch and roll back towards level (a person corrects the horizon)
        for i in range(n):
            seg[i, 1] -= 0.03 * pitch
            seg[i, 2] -= 0.08 * roll
            pitch += seg[i, 1]
            roll += seg[i, 2]
        m = min(n, n_frames - f)
        out[f:f + m] = seg[:m]
        f += m
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- what users do
# Named evaluation trajectories: a person at the app's keys and sliders, as scripts of segments
# (seconds, keys held, slider rates) played through the app's own input model
# (controls/camera_input.py: key ramps, auto-levelling), looped to any length.
USER_SCRIPTS: dict[str, tuple[tuple[float, str, dict], ...]] = {
    "still": ((60.0, "", {}),),                                          # the camera left alone
    "drift": ((60.0, "", {"yaw": 0.3, "forward": 0.05}),),               # a slider nudged, then forgotten
    "turn": ((60.0, "arrowright", {}),),                                 # a full turn in place every 3.75 s
    "hold": ((10.0, "w", {}), (5.0, "", {})),                            # one key held for 10 s
    "reversal": ((0.5, "arrowleft", {}), (1.0, "arrowright", {}), (0.5, "arrowleft", {})),   # quick back-and-forth
    "look-up": ((4.0, "arrowup", {}), (6.0, "", {})),                    # up to the limit and back
}


def user_trajectory(name: str, n_frames: int, fps: float = 24.0) -> np.ndarray:
    """(n_frames, CONTROL_DIM) float32 controls of the named user behaviour (``USER_SCRIPTS``);
    row 0 is zero (frame 0 is the start pose)."""
    from controls.camera_input import CameraInput

    if name not in USER_SCRIPTS:
        raise ValueError(f"unknown trajectory {name!r}; choose one of {sorted(USER_SCRIPTS)}")
    cam = CameraInput()
    out = [np.zeros((1, CONTROL_DIM), np.float32)]
    made = 1
    while made < n_frames:
        for seconds, keys, sliders in USER_SCRIPTS[name]:
            cam.release()
            cam.set_keys(keys)
            cam.set_sliders(**sliders)
            n = min(int(round(seconds * fps)), n_frames - made)
            if n > 0:
                out.append(cam.next_frames(n))
                made += n
    return np.concatenate(out)[:n_frames]
