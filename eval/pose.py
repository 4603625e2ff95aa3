"""AKD: how well a pose-driven video follows its driving landmarks, measured with MediaPipe.

MediaPipe Pose (the app's own detector, tracking mode, one detector per video) runs on every
frame of a video; on each frame where the driving landmarks show a person, the average
distance between detected and driving body landmarks (11-32, those visible in the driving
pose) is divided by the driving torso length (shoulder centre to hip centre) — the average
keypoint distance (AKD) in torso lengths, as in the talking-head/body reenactment literature
(FOMM, LivePortrait). Frames where MediaPipe finds nobody count in ``missing`` instead. The
same estimator on the ground-truth render is the floor: MediaPipe's own error on these people.

AKD alone can be flattered by losing the person: a video where MediaPipe finds somebody only in
its best frames scores a low AKD. PCK (percentage of correct keypoints, the pose-transfer
literature's other score) counts every driving keypoint of every frame showing a person: correct
when detected within ``PCK_THRESHOLD`` torso lengths, so a frame where nobody is found scores 0.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from controls.detector import PoseDetector

BODY = np.arange(11, 33)
PCK_THRESHOLD = 0.5            # torso lengths (PCKh uses half a head length; a torso is a body's scale)
# groups of BODY landmarks (MediaPipe Pose indices) for the per-part breakdown
PARTS = {"shoulders": [11, 12], "elbows": [13, 14], "wrists": [15, 16], "hands": list(range(17, 23)),
         "hips": [23, 24], "knees": [25, 26], "feet": list(range(27, 33))}


def torso_length(lm: np.ndarray) -> float:
    """Shoulder centre to hip centre of (33, 4) landmarks, in normalised image units."""
    return float(np.linalg.norm(lm[11:13, :2].mean(0) - lm[23:25, :2].mean(0)))


def pose_errors(frames: np.ndarray, landmarks: np.ndarray, detect_size: int = 256,
                min_visibility: float = 0.5) -> dict:
    """frames (F, H, W, 3) uint8, landmarks (F, 33, 4) the driving pose of each frame ->
    {"akd": mean error in torso lengths over frames where both show a person (nan if none),
    "missing": share of frames showing a person where MediaPipe found nobody, "frames": count,
    "parts": {part: mean error of its visible landmarks over the same frames (PARTS)},
    "pck": share of the visible driving keypoints of all those frames detected within
    PCK_THRESHOLD torso lengths (missed frames included), "keypoints": their count}."""
    errors, missing, counted, correct, keypoints = [], 0, 0, 0, 0
    part_err: dict[str, list[float]] = {k: [] for k in PARTS}
    with PoseDetector(model_complexity=1, tracking=True) as det:
        for frame, gt in zip(frames, landmarks):
            if frame.shape[0] != detect_size:
                frame = np.asarray(Image.fromarray(frame).resize((detect_size, detect_size), Image.BICUBIC))
            found = det.detect(frame)
            body = BODY[gt[BODY, 3] > min_visibility]
            torso = torso_length(gt)
            if len(body) < 4 or torso < 1e-3:
                continue                                    # no person in the driving pose
            counted += 1
            keypoints += len(body)
            if found is None:
                missing += 1
                continue
            dist = np.linalg.norm(found[:, :2] - gt[:, :2], axis=1) / torso    # (33,)
            errors.append(float(dist[body].mean()))
            correct += int((dist[body] < PCK_THRESHOLD).sum())
            for k, idx in PARTS.items():
                part_err[k] += dist[[i for i in idx if gt[i, 3] > min_visibility]].tolist()
    return {"akd": float(np.mean(errors)) if errors else float("nan"),
            "missing": missing / counted if counted else float("nan"), "frames": counted,
            "parts": {k: float(np.mean(v)) if v else float("nan") for k, v in part_err.items()},
            "pck": correct / keypoints if keypoints else float("nan"), "keypoints": keypoints}


def pooled_pck(scores: list[dict]) -> float:
    """PCK over all frames of several videos (each weighted by its keypoints)."""
    n = sum(s["keypoints"] for s in scores)
    return float(sum(s["pck"] * s["keypoints"] for s in scores if s["keypoints"]) / n) if n else float("nan")


def pooled_akd(parts: list[dict]) -> float:
    """AKD over all frames of several videos (each weighted by its detected frames)."""
    n = [p["frames"] * (1 - p["missing"]) if p["frames"] else 0.0 for p in parts]
    v = [p["akd"] for p in parts]
    ok = [(a, b) for a, b in zip(v, n) if b > 0 and np.isfinite(a)]
    return float(sum(a * b for a, b in ok) / sum(b for _, b in ok)) if ok else float("nan")


def pooled_parts(per_window: list[list[dict]]) -> dict[str, list[float]]:
    """Per body part (PARTS), its pooled error per window of scores."""
    return {k: [pooled_akd([dict(p, akd=p["parts"][k]) for p in ps]) for ps in per_window] for k in PARTS}


def main(argv: list[str] | None = None) -> None:
    """python -m eval.pose --model assets/avatar --clips 8: AKD per body part of the ground truth
    (the floor), the ground truth through the model's autoencoder (the bound) and the ground truth
    blurred (down to --blur pixels and back: how much detail MediaPipe needs), as JSON lines."""
    import argparse
    import json
    from pathlib import Path

    from eval.evaluate import ground_truth
    from eval.rollout import reconstruct
    from model.autoencoder import VideoAutoencoder
    from model.runtime import add_dtype_argument

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", default="assets/avatar", help="model directory with autoencoder/")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--blur", type=int, default=64)
    add_dtype_argument(ap)
    args = ap.parse_args(argv)
    ae = VideoAutoencoder.from_pretrained(Path(args.model) / "autoencoder").eval()
    rows: dict[str, list[dict]] = {"truth": [], "autoencoder": [], f"blur{args.blur}": []}
    for i in range(args.clips):
        clip = ground_truth("avatar", i, args.frames, args.size)
        down = [Image.fromarray(f).resize((args.blur, args.blur), Image.BICUBIC) for f in clip.frames]
        videos = {"truth": clip.frames, "autoencoder": reconstruct(ae, clip.frames, dtype=args.dtype),
                  f"blur{args.blur}": np.stack([np.asarray(d.resize((args.size, args.size), Image.BICUBIC))
                                                for d in down])}
        for k, v in videos.items():
            rows[k].append(pose_errors(v, clip.landmarks))
    for k, scores in rows.items():
        by_part = pooled_parts([scores])
        print(json.dumps({"video": k, "akd": round(pooled_akd(scores), 4), "pck": round(pooled_pck(scores), 4),
                          "missing": round(float(np.nanmean([s["missing"] for s in scores])), 4),
                          "parts": {part: round(v[0], 3) for part, v in by_part.items()}}))


if __name__ == "__main__":
    main()
