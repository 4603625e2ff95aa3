"""The camera rig: the one camera model the renderers and the app share."""
import numpy as np

from controls.camera import CameraRig, CameraState, RigLimits, relative_pose, rotation_c2w


def test_yaw_right_pitch_up_conventions():
    R = rotation_c2w(90.0, 0.0, 0.0)
    assert np.allclose(R[:, 2], [1, 0, 0])            # yaw 90: looking east
    R = rotation_c2w(0.0, 30.0, 0.0)
    assert R[2, 2] > 0                                 # pitch up: forward has a +z component


def test_relative_pose_of_a_pure_yaw():
    rig = CameraRig(64, 64, CameraState())
    a = rig.w2c()
    rig.step(np.array([10.0, 0, 0, 0, 0, 0, 0]))
    rel = relative_pose(a, rig.w2c())
    angle = np.degrees(np.arccos((np.trace(rel[:3, :3]) - 1) / 2))
    assert np.isclose(angle, 10.0) and np.allclose(rel[:3, 3], 0)


def test_walls_block_instead_of_lifting_the_camera():
    wall = lambda x, y: 10.0 if y > 1.0 else 0.0                     # noqa: E731 (a wall north of y = 1)
    state = CameraState(position=np.array([0.0, 0.0, 2.0]))          # facing north
    blocked = CameraRig(64, 64, state, RigLimits(clearance=1.0, max_climb=0.5), ground=wall)
    climbs = CameraRig(64, 64, state, RigLimits(clearance=1.0), ground=wall)
    for _ in range(5):
        blocked.step(np.array([0, 0, 0, 0.5, 0, 0, 0]))
        climbs.step(np.array([0, 0, 0, 0.5, 0, 0, 0]))
    assert blocked.state.position[1] <= 1.0 and blocked.state.position[2] == 2.0
    assert climbs.state.position[1] > 1.0 and climbs.state.position[2] >= 11.0


def test_non_finite_controls_are_ignored():
    rig = CameraRig(64, 64, CameraState())
    before = rig.w2c().copy()
    rig.step(np.array([np.nan, np.inf, -np.inf, np.nan, 0, 0, 0]))
    assert np.allclose(rig.w2c(), before)
