"""The pose control model: chunks interpolate to the newest pose, a quiet webcam means nobody, motions loop."""
import numpy as np

from controls.landmarks import neutral_pose
from controls.motion import RecordedMotion, list_motions
from controls.pose_input import PoseInput


def _pose(dx):
    p = neutral_pose()
    p[:, 0] += dx
    return p


def test_chunk_moves_evenly_to_the_newest_pose():
    pi = PoseInput()
    for i in range(60):                                 # converge on a pose shifted by 0.2
        pi.push(_pose(0.2), i / 30)
    pi.next_frames(4, 2.0)
    for i in range(60, 120):
        pi.push(_pose(0.0), i / 30)
    c = pi.next_frames(4, 4.0)
    x = c[:, 0, 0] - neutral_pose()[0, 0]
    assert c.shape == (4, 33, 4) and np.all(np.diff(x) < 0) and abs(x[-1]) < 0.01 and x[0] > 0.1


def test_quiet_webcam_relaxes_to_neutral():
    pi = PoseInput(stale_s=0.2)
    for i in range(30):
        pi.push(_pose(0.25), i / 30)
    t = 1.0
    for _ in range(100):
        c = pi.next_frames(4, t)
        t += 1 / 6
    assert np.allclose(c[-1], neutral_pose(), atol=1e-3) and pi.status == "neutral"


def test_motion_advances_one_frame_per_video_frame_and_loops():
    lm = np.stack([_pose(0.01 * i) for i in range(10)])
    pi = PoseInput()
    pi.set_motion(RecordedMotion(lm, 24.0, "sway"))
    a = pi.next_frames(4, 0.0)
    b = pi.next_frames(4, 0.0)
    c = pi.next_frames(4, 0.0)
    assert np.allclose(a, lm[0:4]) and np.allclose(b, lm[4:8]) and np.allclose(c, lm[[8, 9, 0, 1]])
    assert pi.status == "playing sway"
    pi.set_motion(None)
    assert pi.status != "playing sway"


def test_motion_files_round_trip(tmp_path):
    lm = np.random.default_rng(0).random((12, 33, 4)).astype(np.float32)
    RecordedMotion(lm, 30.0, "x").save(tmp_path / "x.npz")
    m = RecordedMotion.load(tmp_path / "x.npz")
    assert m.fps == 30.0 and m.name == "x" and np.allclose(m.landmarks, lm, atol=1e-3)
    assert list(list_motions(tmp_path)) == ["x"]


def _body():
    """An avatar standing left of centre with its left arm raised (a first frame's pose)."""
    b = neutral_pose()
    b[:, 0] -= 0.15
    b[13, :2] = b[11, :2] + [0.08, -0.05]                 # left elbow out and up
    b[15, :2] = b[13, :2] + [0.05, -0.10]                 # left wrist up
    return b


def test_retargeted_input_keeps_the_avatars_body_and_relaxes_to_it():
    """A big, close driver moves the avatar's own body; nobody in view through the API's
    frame-by-frame path holds, then relaxes to the avatar's first pose, not the standard one."""
    pi = PoseInput(retarget="relative")
    pi.set_body(_body())
    giant = neutral_pose()
    giant[:, :2] = (giant[:, :2] - 0.5) * 2.5 + 0.5         # a user close to the camera
    out = pi.follow(np.repeat(giant[None], 24, 0), 0.0)
    assert out.shape == (24, 33, 4)
    np.testing.assert_allclose(out[-1, :, :2], _body()[:, :2], atol=2e-3)   # no motion yet: the avatar as it is
    nobody = np.zeros((72, 33, 4), np.float32)
    out = pi.follow(nobody, 1.0)
    assert np.abs(out[0, :, :2] - _body()[:, :2]).max() < 2e-3              # held, not a jump
    assert pi.smoother.status in ("neutral", "relaxing", "holding")
    np.testing.assert_allclose(out[-1, :, :2], _body()[:, :2], atol=2e-3)   # relaxed to its own body


def test_api_nobody_holds_then_relaxes_instead_of_jumping():
    pi = PoseInput(retarget=None)
    moved = _pose(0.2)
    pi.follow(np.repeat(moved[None], 24, 0), 0.0)
    out = pi.follow(np.zeros((48, 33, 4), np.float32), 1.0)
    assert np.abs(out[0, :, 0] - moved[:, 0]).max() < 1e-3                  # held
    assert np.abs(out[-1, :, 0] - neutral_pose()[:, 0]).max() < 0.1         # relaxing towards neutral
    assert np.abs(np.diff(out[:, :, 0], axis=0)).max() < 0.05               # never a jump


def test_unknown_retarget_mode_is_refused():
    import pytest

    with pytest.raises(ValueError, match="relative"):
        PoseInput(retarget="copy")


def test_a_recorded_motion_moves_the_avatars_own_body():
    """Retargeted, a motion recorded for a standard body moves the avatar's body where it stands:
    the first frame is the avatar as it is; later its arms move, every bone keeping its length."""
    from pathlib import Path

    motion = RecordedMotion.load(next(iter(list_motions(
        Path(__file__).resolve().parents[2] / "assets" / "examples" / "motions").values())))
    pi = PoseInput(retarget="relative")
    pi.set_body(_body())
    pi.set_motion(motion)
    out = np.concatenate([pi.next_frames(4, 0.0) for _ in range(24)])
    np.testing.assert_allclose(out[0, :, :2], _body()[:, :2], atol=1e-5)
    for a, b in ((11, 13), (13, 15), (12, 14), (14, 16)):               # upper arms and forearms
        length = np.linalg.norm(out[:, b, :2] - out[:, a, :2], axis=1)
        np.testing.assert_allclose(length, np.linalg.norm(_body()[b, :2] - _body()[a, :2]), rtol=1e-4)
    assert np.ptp(out[:, 15, 1]) > 0.02 or np.ptp(out[:, 16, 1]) > 0.02  # the wrists move
    assert np.allclose(pi.current(), out[-1])
