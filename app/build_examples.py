"""Build the app's example first frames and recorded motions into ``assets/examples/``.

    python -m app.build_examples [--out assets/examples] [--only world|avatar|motions]

- ``world/``: frames of the world renderer (``data/sources.py``, the world model's training
  distribution) and a few packaged photos (``data/photo.py``); ``default.png`` is the default.
- ``avatar/``: avatar renders once ``data/sources.py`` offers an ``"avatar"`` source, until then
  photos of people (scikit-image's astronaut, matplotlib's Grace Hopper).
- ``motions/``: motion-capture clips of the DeepMimic humanoid (``pybullet_data``), played
  through pybullet's forward kinematics and projected by a front-facing camera into the 33
  MediaPipe landmarks, normalised to stand like ``controls.landmarks.neutral_pose``.
Everything is deterministic; each file stays well under 100 KB.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from controls.landmarks import INDEX, neutral_pose
from controls.motion import RecordedMotion
from controls.pose import NUM_LANDMARKS
from model.engine import prepare_image

OUT = Path(__file__).resolve().parent.parent / "assets" / "examples"
WORLD_SEEDS = (2_000_039, 2_000_004, 2_000_010, 2_000_006, 2_000_019, 2_000_005)  # test-split worlds
WORLD_PHOTOS = ("skimage/rocket", "skimage/coffee", "gradio/tower.jpg")
PEOPLE = ("skimage/astronaut", "matplotlib/grace_hopper")
MOTIONS = ("dance_a", "dance_b", "walk", "punch", "kick")
PHOTO_SIZE = 256


def _save_jpeg(img: np.ndarray, path: Path) -> None:
    Image.fromarray(img).save(path, quality=88, optimize=True)


def build_world(out: Path) -> list[Path]:
    from data.photo import load_photo
    from data.sources import make_clip
    from data.world import make_world

    d = out / "world"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("world-*.png"):
        old.unlink()
    files = []
    for i, seed in enumerate(WORLD_SEEDS):
        frame = make_clip("world", seed, 1, 128).frames[0]
        w = make_world(seed)
        p = d / ("default.png" if i == 0 else f"world-{w.kind}_{w.time_of_day}.png")
        Image.fromarray(frame).save(p, optimize=True)
        files.append(p)
    for name in WORLD_PHOTOS:
        p = d / f"photo-{name.split('/')[-1].split('.')[0]}.jpg"
        _save_jpeg(prepare_image(load_photo(name), PHOTO_SIZE), p)
        files.append(p)
    return files


def build_avatar(out: Path) -> list[Path]:
    from data.sources import SOURCES

    d = out / "avatar"
    d.mkdir(parents=True, exist_ok=True)
    files = []
    if "avatar" in SOURCES:                      # the avatar renderer, once it exists
        from data.sources import make_clip

        for i, seed in enumerate(WORLD_SEEDS[:4]):
            clip = make_clip("avatar", seed, 1, 128)
            p = d / ("default.png" if i == 0 else f"avatar-{seed}.png")
            Image.fromarray(clip.frames[0]).save(p, optimize=True)
            pose = p.with_suffix(".pose.json")     # the avatar's body for retargeting (app/examples.py)
            pose.write_text(json.dumps(np.round(clip.landmarks[0].astype(float), 5).tolist()))
            files += [p, pose]
    from data.photo import load_photo

    for i, name in enumerate(PEOPLE):
        stem = name.split("/")[-1]
        p = d / ("default.jpg" if i == 0 and not files else f"photo-{stem}.jpg")
        _save_jpeg(prepare_image(load_photo(name), PHOTO_SIZE), p)
        files.append(p)
    return files


# ----------------------------------------------------------------------------- motions
# DeepMimic humanoid3d frame: [dt, root pos 3, root quat 4 (w x y z), then per joint below]
_MOCAP_JOINTS = (("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
                 ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1),
                 ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1))
_SCALE = 0.25                     # DeepMimic loads humanoid.urdf with globalScaling=0.25
_HEAD = np.array([0.0, 0.70, 0.0]) * _SCALE        # head sphere centre in the neck frame
_HEAD_R = 0.41 * _SCALE
_HEEL = np.array([-0.174, -0.20, 0.0]) * _SCALE    # foot box corners in the ankle frame
_TOE = np.array([0.534, -0.20, 0.0]) * _SCALE


def _mocap_world_points(name: str) -> tuple[np.ndarray, float]:
    """(F, 33, 3) world positions (y up) of the landmarks through a motion clip, and its fps."""
    import pybullet as p
    import pybullet_data

    root = Path(pybullet_data.getDataPath())
    clip = json.loads((root / "data" / "motions" / f"humanoid3d_{name}.txt").read_text())
    frames = np.array(clip["Frames"], np.float64)
    fps = 1.0 / float(np.median(frames[:, 0]))
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(root / "humanoid" / "humanoid.urdf"), globalScaling=_SCALE, physicsClientId=cid)
        joints = {p.getJointInfo(body, j, physicsClientId=cid)[1].decode(): j
                  for j in range(p.getNumJoints(body, physicsClientId=cid))}
        out = np.zeros((len(frames), NUM_LANDMARKS, 3))
        for f, row in enumerate(frames):
            q = row[4:8]
            p.resetBasePositionAndOrientation(body, row[1:4], [q[1], q[2], q[3], q[0]], physicsClientId=cid)
            k = 8
            for jn, n in _MOCAP_JOINTS:
                v = row[k:k + n]
                k += n
                if n == 4:
                    p.resetJointStateMultiDof(body, joints[jn], [v[1], v[2], v[3], v[0]], physicsClientId=cid)
                else:
                    p.resetJointState(body, joints[jn], float(v[0]), physicsClientId=cid)

            def frame(jn: str) -> tuple[np.ndarray, np.ndarray]:
                s = p.getLinkState(body, joints[jn], computeForwardKinematics=True, physicsClientId=cid)
                R = np.array(p.getMatrixFromQuaternion(s[5])).reshape(3, 3)
                return np.array(s[4]), R

            pts = {}
            for side in ("left", "right"):
                for part, link in (("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist"),
                                   ("hip", "hip"), ("knee", "knee"), ("ankle", "ankle")):
                    pts[f"{side}_{part}"] = frame(f"{side}_{link}")[0]
                a, Ra = frame(f"{side}_ankle")
                pts[f"{side}_heel"] = a + Ra @ _HEEL
                pts[f"{side}_foot_index"] = a + Ra @ _TOE
                w, Rw = frame(f"{side}_wrist")
                u = w - pts[f"{side}_elbow"]
                u /= np.linalg.norm(u) + 1e-9
                fwd = Rw[:, 0]                     # thumbs point along the hand frame's x at rest
                pts[f"{side}_index"] = w + 0.07 * u + 0.01 * fwd
                pts[f"{side}_pinky"] = w + 0.06 * u - 0.02 * fwd
                pts[f"{side}_thumb"] = w + 0.04 * u + 0.03 * fwd
            n, Rn = frame("neck")
            c = n + Rn @ _HEAD
            fwd, up, right = Rn[:, 0], Rn[:, 1], Rn[:, 2]   # the body faces +x, its right is +z
            r = _HEAD_R
            pts["nose"] = c + 0.95 * r * fwd - 0.05 * r * up
            for side, sgn in (("left", -1.0), ("right", 1.0)):
                eye = c + 0.8 * r * fwd + 0.25 * r * up
                pts[f"{side}_eye"] = eye + sgn * 0.3 * r * right
                pts[f"{side}_eye_inner"] = eye + sgn * 0.17 * r * right
                pts[f"{side}_eye_outer"] = eye + sgn * 0.43 * r * right
                pts[f"{side}_ear"] = c + 0.1 * r * fwd + sgn * 0.95 * r * right
                pts[f"mouth_{side}"] = c + 0.8 * r * fwd - 0.45 * r * up + sgn * 0.2 * r * right
            for nm, v in pts.items():
                out[f, INDEX[nm]] = v
        return out, fps
    finally:
        p.disconnect(cid)


def _project_front(world: np.ndarray, locomotion: bool) -> np.ndarray:
    """(F, 33, 3) world points -> (F, 33, 4) landmarks seen by a camera in front of the body."""
    W = world.copy()
    hips = 0.5 * (W[:, INDEX["left_hip"]] + W[:, INDEX["right_hip"]])          # (F, 3)
    if locomotion:                       # on a treadmill: keep the body where it started
        W[:, :, [0, 2]] -= hips[:, None, [0, 2]] - hips[:1, None, [0, 2]]
    # the body's mean facing direction from its shoulders (right - left = its right side)
    side = (W[:, INDEX["right_shoulder"]] - W[:, INDEX["left_shoulder"]]).mean(0)
    side[1] = 0.0
    side /= np.linalg.norm(side) + 1e-9
    up = np.array([0.0, 1.0, 0.0])
    facing = np.cross(up, side)          # right = forward x up  =>  forward = up x right
    centre = np.array([hips[:, 0].mean(), 0.85, hips[:, 2].mean()])
    eye = centre + 5.0 * facing
    f = -facing                          # the camera looks back at the body
    cam_x = np.cross(f, up)              # image right (the subject's left)
    cam_y = -up
    rel = W - eye
    X, Y, Z = rel @ cam_x, rel @ cam_y, rel @ f
    foc = 1.0 / math.tan(math.radians(25.0))
    x, y = foc * X / Z, foc * Y / Z
    # fit the clip's median standing height and centre to the neutral pose
    neutral = neutral_pose()
    top_n = neutral[:, 1].min()
    bot_n = neutral[[INDEX["left_heel"], INDEX["right_heel"]], 1].max()
    top = np.median(y.min(1))
    bot = np.median(y[:, [INDEX["left_heel"], INDEX["right_heel"]]].max(1))
    s = (bot_n - top_n) / (bot - top)
    cx = np.median(0.5 * (x[:, INDEX["left_hip"]] + x[:, INDEX["right_hip"]]))
    out = np.zeros(W.shape[:2] + (4,), np.float32)
    out[..., 0] = 0.5 + s * (x - cx)
    out[..., 1] = top_n + s * (y - top)
    hipz = 0.5 * (Z[:, INDEX["left_hip"]] + Z[:, INDEX["right_hip"]])
    out[..., 2] = s * foc * (Z - hipz[:, None]) / Z.mean()
    inside = (out[..., 0] > 0) & (out[..., 0] < 1) & (out[..., 1] > 0) & (out[..., 1] < 1)
    out[..., 3] = np.where(inside, 0.99, 0.2)
    return out


def _resample(lm: np.ndarray, fps: float, target: float = 24.0) -> np.ndarray:
    """Linear resampling of a looping (F, 33, 4) sequence to ``target`` fps."""
    F = len(lm)
    n = max(2, int(round(F * target / fps)))
    t = np.arange(n) * fps / target
    i0 = np.floor(t).astype(int) % F
    i1 = (i0 + 1) % F
    w = (t - np.floor(t))[:, None, None]
    return ((1 - w) * lm[i0] + w * lm[i1]).astype(np.float32)


def build_motions(out: Path) -> list[Path]:
    d = out / "motions"
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for name in MOTIONS:
        world, fps = _mocap_world_points(name)
        lm = _resample(_project_front(world, name in ("walk", "run")), fps)
        p = d / f"{name}.npz"
        RecordedMotion(lm, 24.0, name).save(p)
        files.append(p)
    return files


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only", choices=("world", "avatar", "motions"))
    a = ap.parse_args(argv)
    built = []
    for kind, fn in (("world", build_world), ("avatar", build_avatar), ("motions", build_motions)):
        if a.only in (None, kind):
            built += fn(a.out)
    for p in built:
        print(f"{p.stat().st_size / 1024:6.1f} KB  {p.relative_to(a.out)}")


if __name__ == "__main__":
    main()
