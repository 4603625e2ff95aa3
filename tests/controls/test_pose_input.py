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
