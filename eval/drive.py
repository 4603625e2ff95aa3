"""What a webcam user's pose does to the avatar: synthetic drivers through the shipped avatar.

    python -m eval.drive --driver upper-body close offcentre switch full --seconds 60 --json

Each driver is a stream of driving landmarks built from the test renders' true poses (10 s of a
render played forth and back), transformed as a webcam user would appear:
- ``full``: the render's own full body, as in training;
- ``upper-body``: seated at a laptop, 2.5x larger, hips and legs under the desk (low visibility);
- ``close``: head and shoulders filling the frame, 3.5x larger;
- ``offcentre``: 1.3x larger and at the frame's right edge, partly out of it;
- ``switch``: two people taking turns every 5 s at other places and sizes, with half a second of
  nobody in between.
Every driver streams through the app's pose path (controls/pose_input.py: retargeting onto the
avatar's own body from its first frame, smoothing, hold and relax) into the shipped avatar engine
from the app's default avatar frame, with and without retargeting (``--retarget``). MediaPipe reads
every generated frame. Reported per driver and path: the share of frames where it finds a person
(overall and per 10-s window),
and over the first ``--early`` seconds the median angle error of each arm bone (upper arm, forearm)
between the pose the model received and the pose found in its frames. Deterministic (seeded).
``--recycle pixels`` runs the engine on the frames it showed, encoded again (the app's option of that
name); ``--render warp`` replaces the generator by the no-network baseline: the first frame moved per
bone to each pose the model would receive (controls/bone_warp.py).
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.examples import Examples, image_digest
from controls.detector import PoseDetector
from controls.landmarks import INDEX, NAMES, as_detected, scale_about
from controls.pose_input import PoseInput
from controls.retarget import ARM_BONES
from data.sources import make_clip, split_seed
from eval.baselines import moved_per_bone
from model.engine import StreamingEngine
from model.runtime import add_dtype_argument, precision_info

DRIVERS = ("full", "upper-body", "close", "offcentre", "switch")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
FPS = 24.0
WINDOW_S = 10.0        # seconds per window of person_found_per_window


@functools.lru_cache(maxsize=4)
def _source(index: int, seconds: float) -> np.ndarray:
    return make_clip("avatar", split_seed("test", index), int(seconds * FPS) + 1, 128).landmarks.astype(np.float32)


def _render(index: int, n: int, seconds: float = 10.0) -> np.ndarray:
    """(n, 33, 4): test render ``index``'s true poses, ``seconds`` long, played forth and back, with
    every landmark shown (a webcam sees the body the render draws)."""
    lm = _source(index, seconds).copy()
    lo, hi = lm[0, :, :2].min(0), lm[0, :, :2].max(0)        # the renders' cameras frame bodies at every size
    lm = scale_about(lm, 0.7 / max(hi - lo), (lo + hi) / 2, (0.5, 0.5))
    lm[..., 3] = 1.0
    cycle = np.concatenate([lm, lm[-2:0:-1]])
    return np.resize(cycle, (n, *lm.shape[1:])).reshape(n, *lm.shape[1:])


def driver(name: str, n: int) -> np.ndarray:
    """(n, 33, 4) driving landmarks of a named driver (see the module docstring)."""
    a = _render(0, n)
    chest = a[0, [INDEX["left_shoulder"], INDEX["right_shoulder"]], :2].mean(0)
    if name == "full":
        return a
    if name == "upper-body":
        out = as_detected(scale_about(a, 2.5, chest, (0.5, 0.4)))
        below = [INDEX[k] for k in NAMES if any(p in k for p in ("hip", "knee", "ankle", "heel", "foot"))]
        out[:, below, 3] = np.minimum(out[:, below, 3], 0.1)
        return out
    if name == "close":
        return as_detected(scale_about(a, 3.5, a[0, INDEX["nose"], :2], (0.5, 0.3)))
    if name == "offcentre":
        return as_detected(scale_about(a, 1.3, chest, (0.85, 0.35)))
    if name == "switch":
        b = _render(1, n)
        a = as_detected(scale_about(a, 1.0, chest, (0.35, 0.3)))
        b = as_detected(scale_about(b, 1.6, b[0, INDEX["nose"], :2], (0.7, 0.25)))
        out = a.copy()
        turn = int(5 * FPS)
        for s in range(0, n, turn):
            if (s // turn) % 2:
                out[s:s + turn] = b[s:s + turn]
            out[s:s + int(0.5 * FPS), :, 3] = 0.0             # nobody while the two change places
        return out
    raise ValueError(f"unknown driver {name!r}: choose from {DRIVERS}")


def arm_angles(lm: np.ndarray) -> np.ndarray:
    """(4,) image-plane angle (degrees) of each arm bone of ARM_BONES."""
    return np.array([np.degrees(np.arctan2(*(lm[c, 1::-1] - lm[p, 1::-1]))) for p, c in ARM_BONES.values()])


def angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in degrees, the short way round (0..180)."""
    return np.abs((a - b + 180) % 360 - 180)


def drive(engine: StreamingEngine, first: np.ndarray, body: np.ndarray | None, landmarks: np.ndarray,
          retarget: str | None, seed: int = 0, detect_size: int = 256, early_s: float = 10.0,
          render: str = "model") -> dict:
    """Stream ``landmarks`` through the app's pose path and the engine; score the generated video.
    ``render="warp"``: no network, each frame the first frame moved per bone to the pose the engine
    would receive (what the poses alone give; needs the first frame's pose ``body``)."""
    if render not in ("model", "warp"):
        raise ValueError(f"render must be model or warp, got {render!r}")
    if render == "warp" and body is None:
        raise ValueError("the per-bone warp needs the first frame's pose")
    pose = PoseInput(retarget=retarget)
    pose.set_body(body)
    start = engine.reset(first, seed, pose=body)
    fpl = engine.fpl
    n = (len(landmarks) // fpl) * fpl
    found, errors, step_ms, follow_ms = np.zeros(n, bool), [], [], []
    with PoseDetector(model_complexity=1, tracking=True) as det:
        for s in range(0, n, fpl):
            t0 = time.perf_counter()
            control = pose.follow(landmarks[s:s + fpl], s / FPS, FPS)
            follow_ms.append((time.perf_counter() - t0) * 1e3 / fpl)
            if render == "warp":
                frames = moved_per_bone(start, body, control)
            else:
                frames = engine.step(control)
                step_ms.append(engine.timing.total_ms)
            for j, frame in enumerate(frames):
                seen = det.detect(np.asarray(Image.fromarray(frame).resize((detect_size, detect_size), Image.BICUBIC)))
                if seen is None:
                    continue
                found[s + j] = True
                if (s + j) / FPS < early_s:
                    errors.append(angle_error(arm_angles(seen), arm_angles(control[j])))
    errors = np.array(errors) if errors else np.full((1, len(ARM_BONES)), np.nan)
    per = int(round(WINDOW_S * FPS))
    return {"person_found": float(found.mean()), "frames": n,
            # where over the stream the person goes: the share found in each 10-s window
            "person_found_per_window": [float(found[i:i + per].mean()) for i in range(0, n, per)],
            "arm_angle_error_deg": {k: float(np.nanmedian(errors[:, i])) for i, k in enumerate(ARM_BONES)},
            "arm_angle_error_median_deg": float(np.nanmedian(errors)),
            "pose_ms_per_frame": float(np.median(follow_ms)),
            "step_ms": float(np.median(step_ms)) if step_ms else None}


def floor(seconds: float, detect_size: int = 256) -> dict:
    """MediaPipe's own arm angle error and misses on the test render the drivers come from (its
    frames against its true landmarks): no generated video can score better."""
    clip = make_clip("avatar", split_seed("test", 0), int(seconds * FPS) + 1, 128)
    found, errors = 0, []
    with PoseDetector(model_complexity=1, tracking=True) as det:
        for frame, lm in zip(clip.frames, clip.landmarks):
            seen = det.detect(np.asarray(Image.fromarray(frame).resize((detect_size, detect_size), Image.BICUBIC)))
            if seen is None:
                continue
            found += 1
            ok = [k for k, (a, b) in enumerate(ARM_BONES.values()) if min(lm[a, 3], lm[b, 3]) > 0.5]
            errors.append(np.where(np.isin(np.arange(len(ARM_BONES)), ok), angle_error(arm_angles(seen), arm_angles(lm)), np.nan))
    errors = np.array(errors) if errors else np.full((1, len(ARM_BONES)), np.nan)
    return {"person_found": found / len(clip.frames), "arm_angle_error_median_deg": float(np.nanmedian(errors))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ASSETS / "avatar"), help="avatar model directory")
    p.add_argument("--driver", nargs="+", default=list(DRIVERS), choices=DRIVERS)
    p.add_argument("--retarget", nargs="+", default=["relative", "off"], choices=["relative", "mirror", "off"])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--early", type=float, default=10.0, help="seconds over which arm angles are compared")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recycle", choices=["latent", "pixels"], default="latent",
                   help="what the generator gets back as its previous frame: its own last latent (the app's "
                        "default for pose models) or the frames shown, encoded again (the app's --recycle pixels)")
    p.add_argument("--render", choices=["model", "warp"], default="model",
                   help="model: the avatar generator's frames; warp: no network, the first frame moved per bone "
                        "to each pose the model would receive (the baseline of what the poses alone give)")
    p.add_argument("--json", action="store_true")
    add_dtype_argument(p)
    a = p.parse_args(argv)
    engine = StreamingEngine.from_pretrained(a.model, dtype=a.dtype, reencode=a.recycle == "pixels")
    examples = Examples()
    first = examples.default("avatar")
    body = examples.poses().get(image_digest(first))
    n = int(a.seconds * FPS)
    out = {"model": a.model, "seconds": a.seconds, "recycle": a.recycle, "render": a.render, "precision": precision_info(engine.dtype),
           "floor": floor(min(a.early, a.seconds)), "drivers": {}}
    if not a.json:
        print(f"floor: MediaPipe on the source render finds a person in {100 * out['floor']['person_found']:.1f} % "
              f"of frames, arm angle error {out['floor']['arm_angle_error_median_deg']:.1f} deg")
    for name in a.driver:
        lm = driver(name, n)
        out["drivers"][name] = {r: drive(engine, first, body, lm, None if r == "off" else r, a.seed, early_s=a.early,
                                         render=a.render) for r in a.retarget}
        if not a.json:
            for r, res in out["drivers"][name].items():
                print(f"{name:10s} {r:8s} person found {100 * res['person_found']:5.1f} %  arm angle error "
                      f"{res['arm_angle_error_median_deg']:5.1f} deg  ({res['pose_ms_per_frame']:.2f} ms/frame)")
    if a.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
