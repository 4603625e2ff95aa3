"""Retargeting (controls/retarget.py) with synthetic driver streams built from the training
renders' poses: cropped to the upper body, scaled up, off centre, dropped out, switched between
two people. The avatar keeps its own body; the expected pose is checked exactly."""
import numpy as np
import pytest

from controls.landmarks import INDEX, NAMES, as_detected, sanitize, scale_about
from controls.retarget import ARM_BONES, BONES, Retargeter, RetargetConfig, bone_angles, shoulder_width
from data.sources import make_clip


@pytest.fixture(scope="module")
def renders():
    """Two avatar renders' landmark streams (2 s each), the avatar's and a second person's, each
    scaled so that its first pose spans the middle half of the frame (the renders' cameras frame
    bodies at every size, some feet far below the image)."""
    out = []
    for seed in (2000010, 2000006):
        lm = make_clip("avatar", seed, 49, 128).landmarks
        lo, hi = lm[0, :, :2].min(0), lm[0, :, :2].max(0)
        out.append(scale_about(lm, 0.5 / (hi - lo).max(), (lo + hi) / 2, (0.5, 0.5)).astype(np.float32))
    return out


def _run(rt: Retargeter, stream, fps: float = 24.0) -> np.ndarray:
    return np.stack([rt(lm, i / fps) for i, lm in enumerate(stream)])


def _rotate_about(lm: np.ndarray, pivot: str, moving: list[str], angle: float) -> np.ndarray:
    out = lm.copy()
    c, s = np.cos(angle), np.sin(angle)
    p = out[INDEX[pivot], :2].copy()
    for n in moving:
        d = out[INDEX[n], :2] - p
        out[INDEX[n], :2] = p + [c * d[0] - s * d[1], s * d[0] + c * d[1]]
    return out


def _waving(rest: np.ndarray, n: int = 48) -> np.ndarray:
    """A driver with the avatar's own bone lengths: the left arm waves, the right forearm bends."""
    left = ["left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb"]
    right = ["right_wrist", "right_pinky", "right_index", "right_thumb"]
    frames = []
    for f in range(n):
        a = 1.2 * np.sin(2 * np.pi * f / n)
        lm = _rotate_about(rest, "left_shoulder", left, -a)
        lm = _rotate_about(lm, "left_elbow", left[1:], -0.5 * a)
        frames.append(_rotate_about(lm, "right_elbow", right, 0.8 * a))
    return np.stack(frames)


def _all_visible(lm: np.ndarray) -> np.ndarray:
    out = lm.copy()
    out[..., 3] = 1.0
    return out


@pytest.mark.parametrize("mode", ["relative", "mirror"])
def test_a_driver_with_the_avatars_own_bones_is_reproduced_exactly(renders, mode):
    rest = _all_visible(sanitize(renders[0][0]))
    driver = _waving(rest)
    out = _run(Retargeter(rest, RetargetConfig(mode=mode, blend_s=0.0)), driver)
    np.testing.assert_allclose(out[:, :, :2], driver[:, :, :2], atol=1e-5)


def test_a_close_camera_off_centre_lends_the_same_motion(renders):
    """Scaled up 2.5x and moved off centre (everything still in view): relative motion and the
    sideways root motion are the same as from the driver itself."""
    rest = _all_visible(sanitize(renders[0][0]))
    driver = _waving(rest)
    want = _run(Retargeter(rest, RetargetConfig(blend_s=0.0)), driver)
    close = scale_about(driver, 0.4, driver[0, INDEX["nose"], :2], (0.3, 0.5))    # small: stays in frame
    got = _run(Retargeter(rest, RetargetConfig(blend_s=0.0)), close)
    np.testing.assert_allclose(got[:, :, :2], want[:, :, :2], atol=1e-5)


def test_an_upper_body_driver_holds_the_legs_at_rest_and_moves_the_arms(renders):
    """A seated user close to the camera: the render scaled 2.5x about the chest, so hips and legs
    leave the frame. Leg and hip bones keep the avatar's rest directions; every arm bone the
    driver shows follows it exactly as the full-body driver's would; the avatar keeps its size."""
    rest = sanitize(renders[0][0])
    full = _all_visible(renders[0])
    chest = full[0, [INDEX["left_shoulder"], INDEX["right_shoulder"]], :2].mean(0)
    upper = as_detected(scale_about(full, 2.5, chest, (0.5, 0.35)))
    below = [INDEX[n] for n in NAMES if any(k in n for k in ("hip", "knee", "ankle", "heel", "foot"))]
    upper[:, below, 3] = 0.1                                              # under the desk
    cfg = RetargetConfig(blend_s=0.0)
    a, b = Retargeter(rest, cfg), Retargeter(rest, cfg)
    legs = [i for i, (_, c) in enumerate(BONES) if c < len(NAMES) and any(k in NAMES[c] for k in ("knee", "ankle", "heel", "foot"))]
    arms = [BONES.index(bone) for bone in ARM_BONES.values()]
    legs_hidden = []
    for i, (f, u) in enumerate(zip(full, upper)):
        a(f, i / 24)
        b(u, i / 24)
        shown = b.shown(sanitize(u))
        legs_hidden.append(not shown[legs].any())
        np.testing.assert_allclose(b.angles[~shown], b.rest_angle[~shown], atol=1e-6)
        both = [k for k in arms if shown[k]]
        np.testing.assert_allclose(b.angles[both], a.angles[both], atol=2e-3)     # float32 landmarks
    assert all(legs_hidden) and len(both) >= 2
    pose = b.pose()
    assert shoulder_width(pose) == pytest.approx(shoulder_width(rest), rel=1e-4)     # never a giant


def test_leaning_in_does_not_grow_or_move_the_avatar(renders):
    rest = sanitize(renders[0][0])
    still = np.repeat(_all_visible(renders[0][:1]), 48, 0)
    centre = still[0, [INDEX["left_shoulder"], INDEX["right_shoulder"]], :2].mean(0)
    lean = np.stack([as_detected(scale_about(f, 1 + 2 * i / 47, centre, centre)[None])[0] for i, f in enumerate(still)])
    out = _run(Retargeter(rest), lean)
    assert np.abs(out[:, :, :2] - out[:1, :, :2]).max() < 1e-5
    assert np.abs(out[0, :, :2] - rest[:, :2]).max() < 1e-5


def test_walking_sideways_moves_the_avatar_by_its_own_shoulder_widths_inside_the_frame(renders):
    rest = sanitize(renders[0][0])
    base = _all_visible(renders[0][0])
    w = shoulder_width(base)
    rt = Retargeter(rest, RetargetConfig(blend_s=0.0))
    xs = []
    for i, dx in enumerate(np.linspace(0, 1.0, 25) * w):                   # one shoulder width to the right
        xs.append(rt(scale_about(base, 1.0, (0, 0), (dx, 0)), i / 24)[INDEX["nose"], 0])
    assert xs[-1] - xs[0] == pytest.approx(shoulder_width(rest), rel=1e-3)
    for i in range(200):                                                     # walk far off to the right
        out = rt(scale_about(base, 1.0, (0, 0), (w * (1 + 0.05 * i), 0)), (25 + i) / 24)
    x = out[[INDEX["left_shoulder"], INDEX["right_shoulder"]], 0].mean()
    assert x <= 1 - rt.config.edge - rt.rest_width / 2 + 1e-5
    back = rt(scale_about(base, 1.0, (0, 0), (w * 10.45, 0)), 300 / 24)          # half a width back moves back at once
    assert back[[INDEX["left_shoulder"], INDEX["right_shoulder"]], 0].mean() == pytest.approx(x - rt.rest_width / 2, abs=1e-4)


def test_nobody_in_view_is_none_and_bones_blend_in_and_out(renders):
    rest = sanitize(renders[0][0])
    rt = Retargeter(rest, RetargetConfig(mode="mirror", blend_s=0.25))
    assert rt(None, 0.0) is None
    assert rt(np.zeros((33, 4), np.float32), 0.0) is None
    driver = _all_visible(renders[1][0])
    weights = []
    for i in range(12):
        rt(driver, i / 24)
        weights.append(rt.weight.max())
    assert weights[0] == 0 and 0 < weights[3] < 1 and weights[-1] == 1          # over 0.25 s, not at once
    upper = driver.copy()
    upper[INDEX["left_knee"], 3] = 0.0                                         # the knee drops out
    thigh = BONES.index((INDEX["left_hip"], INDEX["left_knee"]))
    rt(upper, 12 / 24)
    assert 0 < rt.weight[thigh] < 1


def test_a_switch_between_people_is_not_a_jump(renders):
    """Person A, then person B somewhere else and at another size: the root stays put and relative
    bones restart from where they are (the largest change at the switch is no more than A's own
    largest change between frames)."""
    rest = sanitize(renders[0][0])
    a = _all_visible(scale_about(renders[0], 1.0, (0.5, 0.5), (0.3, 0.5)))
    b = _all_visible(scale_about(renders[1], 0.7, (0.5, 0.5), (0.75, 0.55)))
    rt = Retargeter(rest)
    out = _run(rt, np.concatenate([a, b]))
    step = np.abs(np.diff(out[:, :, :2], axis=0)).max(axis=(1, 2))
    assert rt.switches == 1
    assert step[len(a) - 1] <= step[:len(a) - 1].max() + 1e-6


def test_unknown_mode_is_a_clear_error():
    from controls.landmarks import neutral_pose

    with pytest.raises(ValueError, match="mirror"):
        Retargeter(neutral_pose(), RetargetConfig(mode="copy"))


def test_bone_angles_of_a_rotated_pose_turn_by_the_rotation(renders):
    lm = _all_visible(renders[0][0])
    rot = _rotate_about(lm, "nose", [n for n in INDEX if n != "nose"], 0.3)
    np.testing.assert_allclose(np.angle(np.exp(1j * (bone_angles(rot) - bone_angles(lm)))), 0.3, atol=1e-5)
