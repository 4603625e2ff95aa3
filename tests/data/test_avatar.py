"""Avatar studio: determinism, the skeleton against pybullet, IK, and pose truth that lines up with
the rendered person (on the mask, and where MediaPipe finds it)."""
import numpy as np
import pytest

from data.avatar import LANDMARK_NAMES, STANDING_AVATARS, AvatarConfig, avatar_clip
from data.avatar_motion import (HINGES, JOINTS, MOTIONS, PerformanceConfig, forward_kinematics, load_motion,
                                mirror, quat_axis_angle, quat_to_mat, sample_motion, two_bone_ik)
from data.sources import SOURCES, make_clip

BODY_JOINTS = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]   # shoulders, elbows, wrists, hips, knees, ankles
# the person's left <-> right twin of every landmark
SWAP = [LANDMARK_NAMES.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
        for n in LANDMARK_NAMES]


def test_deterministic():
    a, b = avatar_clip(5, 6, 48), avatar_clip(5, 6, 48)
    assert a.frames.tobytes() == b.frames.tobytes() and a.mask.tobytes() == b.mask.tobytes()
    assert np.array_equal(a.landmarks, b.landmarks) and a.meta == b.meta
    assert avatar_clip(6, 6, 48).frames.tobytes() != a.frames.tobytes()


def test_clip_layout():
    clip = make_clip("avatar", 11, 5, 40)
    assert "avatar" in SOURCES
    assert clip.frames.shape == (5, 40, 40, 3) and clip.frames.dtype == np.uint8
    assert clip.landmarks.shape == (5, 33, 4) and clip.landmarks.dtype == np.float32
    assert clip.controls.shape == (5, 132) and np.array_equal(clip.controls, clip.landmarks.reshape(5, 132))
    assert clip.mask.shape == (5, 40, 40) and set(np.unique(clip.mask)) <= {0, 1}
    vis = clip.landmarks[..., 3]
    assert np.all((vis >= 0) & (vis <= 1))
    # z is measured from the hip midpoint
    assert np.allclose(clip.landmarks[:, 23:25, 2].mean(1), 0.0, atol=1e-5)
    assert clip.meta["source"] == "avatar" and clip.meta["seed"] == 11 and clip.meta["motions"] is not None


def test_single_frame_clip():
    clip = make_clip("avatar", 3, 1, 32)
    assert clip.frames.shape == (1, 32, 32, 3) and np.isfinite(clip.landmarks).all()


def test_forward_kinematics_matches_pybullet():
    """Our kinematics of the DeepMimic humanoid = pybullet's link frames for the same pose."""
    p = pytest.importorskip("pybullet")
    import pybullet_data

    root, rot = sample_motion(load_motion("dance_a"), np.array([0.0, 0.37, 1.1, 2.5]))
    P, G = forward_kinematics(root, rot)
    cid = p.connect(p.DIRECT)
    try:
        p.setAdditionalSearchPath(pybullet_data.getDataPath())
        h = p.loadURDF("humanoid/humanoid.urdf", [0, 0, 0], globalScaling=0.25, useFixedBase=True,
                       flags=p.URDF_MAINTAIN_LINK_ORDER, physicsClientId=cid)
        # pybullet's joint index of each of our joints (its wrists are fixed joints 8 and 14)
        index = {j: j if j < 8 else j + 1 for j in range(1, len(JOINTS))}
        xyzw = lambda q: [q[1], q[2], q[3], q[0]]  # noqa: E731
        for f in range(len(root)):
            p.resetBasePositionAndOrientation(h, root[f].tolist(), xyzw(rot[f, 0]), physicsClientId=cid)
            for j, bj in index.items():
                q = rot[f, j]
                target = [2 * np.arctan2(q[3], q[0])] if j in HINGES else xyzw(q)
                p.resetJointStateMultiDof(h, bj, target, physicsClientId=cid)
            for j, bj in list(index.items()) + [(len(JOINTS), 8), (len(JOINTS) + 1, 14)]:
                state = p.getLinkState(h, bj, computeForwardKinematics=True, physicsClientId=cid)
                assert np.allclose(state[4], P[f, j], atol=1e-5)
                if j < len(JOINTS):
                    R = np.array(p.getMatrixFromQuaternion(state[5])).reshape(3, 3)
                    assert np.allclose(R, G[f, j], atol=1e-5)
    finally:
        p.disconnect(cid)


def test_mirror():
    root, rot = sample_motion(load_motion("punch"), np.linspace(0, 1.5, 7))
    root2, rot2 = mirror(*mirror(root, rot))
    assert np.allclose(root2, root) and np.allclose(rot2, rot)
    P, _ = forward_kinematics(root, rot)
    Pm, _ = forward_kinematics(*mirror(root, rot))
    rw, lw = len(JOINTS), len(JOINTS) + 1   # the mirrored right wrist is the left wrist reflected
    assert np.allclose(Pm[:, rw], P[:, lw] * [1, 1, -1]) and np.allclose(Pm[:, lw], P[:, rw] * [1, 1, -1])


def test_two_bone_ik_reaches_targets():
    rng = np.random.default_rng(0)
    L1, L2 = 0.28, 0.26
    S = rng.normal(0, 0.1, (50, 3))
    d = rng.normal(size=(50, 3))
    P = S + d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.1, 0.5, (50, 1))
    for bend in (1.0, -1.0):
        R, ang = two_bone_ik(S, P, L1, L2, rng.normal(size=(50, 3)), bend)
        assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(R), 1)
        hinge = quat_to_mat(quat_axis_angle(np.array([0.0, 0.0, 1.0]), ang))
        E = S + R @ np.array([0.0, -L1, 0.0])
        W = E + (R @ hinge) @ np.array([0.0, -L2, 0.0])
        assert np.allclose(W, P, atol=1e-6)
        assert np.all(bend * ang >= 0)   # elbows and knees only bend their own way


def test_every_motion_loads():
    for name in MOTIONS:
        m = load_motion(name)
        assert m.rot.shape == (len(m.times), len(JOINTS), 4) and m.duration > 0.5


def test_landmarks_fall_on_the_person():
    """Joints in the image lie on the rendered person (a limb surrounds its joint), and so does
    every landmark marked visible; a person facing the camera has most landmarks visible."""
    checked = 0
    for seed in range(8):
        clip = avatar_clip(seed, 9, 96)
        S = clip.frames.shape[1]
        for f in range(0, 9, 2):
            lm, mask = clip.landmarks[f], clip.mask[f].astype(bool)
            grown = mask.copy()   # one pixel of slack for points on a limb's edge
            grown[1:] |= mask[:-1]
            grown[:-1] |= mask[1:]
            grown[:, 1:] |= grown[:, :-1].copy()
            grown[:, :-1] |= grown[:, 1:].copy()
            u, v = (lm[:, 0] * S).astype(int), (lm[:, 1] * S).astype(int)
            inside = (lm[:, 0] >= 0) & (lm[:, 0] < 1) & (lm[:, 1] >= 0) & (lm[:, 1] < 1)
            for i in range(33):
                if inside[i] and (i in BODY_JOINTS or lm[i, 3] > 0.5):
                    assert grown[v[i], u[i]], (seed, f, LANDMARK_NAMES[i])
                    checked += 1
            assert np.all(lm[~inside, 3] == 0)
    assert checked > 500
    standing = avatar_clip(3, 5, 96, STANDING_AVATARS)
    assert standing.landmarks[:, 11:25, 3].mean() > 0.6


def test_people_leave_and_come_back():
    """A walk out of the frame leaves frames without anyone in them, then the person returns."""
    cfg = AvatarConfig(performance=PerformanceConfig(kinds=(("walk", 1.0),), p_exit=1.0, p_start_outside=0.0),
                       framings=("half_body",), framing_weights=(1.0,))
    clip = avatar_clip(2, 150, 32, cfg)
    present = clip.mask.reshape(len(clip.mask), -1).any(1)
    assert present[0] and not present.all()
    gone = np.flatnonzero(~present)
    assert present[gone[0]:].any() and clip.landmarks[gone, :, 3].max() == 0


def test_mediapipe_finds_the_person():
    """MediaPipe Pose on rendered standing people at 256 px: it detects the person in >= 90% of
    the frames that show their face and shoulders, its landmarks lie within 0.25 torso lengths of
    ours (median over visible body landmarks), and its left is our left."""
    mp_pose = pytest.importorskip("mediapipe.python.solutions.pose")
    frames, truth = [], []
    for seed in range(14):
        clip = avatar_clip(1000 + seed, 9, 256, STANDING_AVATARS)
        for f in (0, 4, 8):
            lm = clip.landmarks[f]
            if min(lm[0, 3], lm[11, 3], lm[12, 3]) > 0.5:
                frames.append(clip.frames[f])
                truth.append(lm)
    assert len(frames) >= 25
    errors, swapped = [], []
    with mp_pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for image, gt in zip(frames, truth):
            found = pose.process(image).pose_landmarks
            if found is None:
                continue
            pred = np.array([[p.x, p.y] for p in found.landmark])
            torso = np.linalg.norm(gt[11:13, :2].mean(0) - gt[23:25, :2].mean(0))
            body = np.arange(11, 33)[gt[11:33, 3] > 0.5]
            errors.append(np.median(np.linalg.norm(pred[body] - gt[body, :2], axis=1)) / torso)
            swapped.append(np.median(np.linalg.norm(pred[SWAP][body] - gt[body, :2], axis=1)) / torso)
    rate = len(errors) / len(frames)
    print(f"MediaPipe: detected {len(errors)}/{len(frames)} = {rate:.2f}, median error "
          f"{np.median(errors):.3f} torso lengths (sides swapped: {np.median(swapped):.3f})")
    assert rate >= 0.9
    assert np.median(errors) <= 0.25
    assert np.median(swapped) > 2 * np.median(errors)
