"""The clip sources by name: seed -> Clip, each a deterministic function of its arguments."""
from __future__ import annotations

import numpy as np

from data.clip import Clip

# Seed ranges per split never overlap (tests check it).
SPLITS = {"train": (0, 1_000_000), "val": (1_000_000, 1_100_000), "test": (2_000_000, 2_100_000)}


def split_seed(split: str, index: int) -> int:
    """The seed of clip ``index`` of ``split``."""
    lo, hi = SPLITS[split]
    if not 0 <= index < hi - lo:
        raise ValueError(f"clip index {index} out of range for split {split!r}")
    return lo + index


def _world_start(seed: int):
    """The world of a seed, its start pose, and the random stream that goes on to the trajectory."""
    from data.world import make_world, start_state

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC11B]))
    world = make_world(seed)
    return world, start_state(world, rng), rng


def world_clip(seed: int, n_frames: int, size: int) -> Clip:
    """A world-explorer clip: a world of this seed, a start pose and a human-like trajectory."""
    from data.trajectories import camera_trajectory

    world, state, rng = _world_start(seed)
    return world_clip_from_controls(seed, camera_trajectory(rng, n_frames), size, (world, state))


def world_clip_from_controls(seed: int, controls: np.ndarray, size: int, start=None) -> Clip:
    """The world and start pose of ``seed`` driven by given (F, 7) controls instead of its own
    trajectory (evaluation: a full turn from the same first frame)."""
    from data.world import render_clip

    world, state = start if start is not None else _world_start(seed)[:2]
    clip = render_clip(world, state, np.asarray(controls, np.float32), size, size)
    clip.meta["seed"] = seed
    return clip


def photo_clip(seed: int, n_frames: int, size: int) -> Clip:
    """A photo pan: a packaged photo of this seed, turned and zoomed inside by a human-like trajectory."""
    from controls.camera import CameraState
    from data.photo import fold_controls, load_photo, pan_limits, photo_pan_clip_from_image, pick_photo
    from data.trajectories import camera_trajectory

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9407]))
    name = pick_photo(seed)
    flip = bool(rng.random() < 0.5)
    image = load_photo(name)[:, ::-1] if flip else load_photo(name)
    photo_fov_x = float(rng.uniform(60, 80))
    limits = pan_limits(image.shape, photo_fov_x, size, size)
    start = CameraState(yaw=float(rng.uniform(-1, 1) * limits.yaw_range),
                        pitch=float(rng.uniform(-1, 1) * limits.pitch_deg),
                        fov_x=float(rng.uniform(limits.fov_min, limits.fov_max)))
    # a full 360-degree turn means nothing inside one photo, and pans inside one are slower: the
    # trajectories turn at world speeds for a ~70-degree view, while a view inside a photo is often
    # 10-40 degrees wide, where the same degrees per frame sweep the frame in a few frames and
    # bounce off the photo's edges every few more. Rates scale with the widest view instead.
    controls = camera_trajectory(rng, n_frames, allow_translation=False, allow_zoom=True,
                                 segments=("idle", "burst", "sweep", "reversal"))
    controls[:, :3] *= 0.5 * min(1.0, limits.fov_max / 70.0)
    controls = fold_controls(controls, start, limits)
    return photo_pan_clip_from_image(image, controls, size, photo_fov_x, start, limits,
                                     meta={"seed": seed, "photo": name, "flip": flip})


def avatar_clip(seed: int, n_frames: int, size: int) -> Clip:
    """A webcam clip of one person: an avatar of this seed moving like a person at a webcam (mocap
    clips, gestures, walks out of the frame and back), with its 33 MediaPipe-format landmarks."""
    from data.avatar import avatar_clip as render

    return render(seed, n_frames, size)


SOURCES = {"world": world_clip, "photo": photo_clip, "avatar": avatar_clip}


def make_clip(source: str, seed: int, n_frames: int, size: int) -> Clip:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {sorted(SOURCES)}")
    return SOURCES[source](seed, n_frames, size)
