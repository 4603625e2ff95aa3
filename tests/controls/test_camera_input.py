"""Slider and key state -> per-frame camera motion."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controls.camera import CameraRig, CameraState, RigLimits
from controls.camera_input import AXES, KEYMAP, LIMITS, CameraInput, CameraInputConfig, parse_keys
from data.trajectories import MAX_FORWARD, MAX_YAW


def test_parse_keys():
    assert parse_keys("W, ArrowLeft,bogus,,") == {"w", "arrowleft"}
    assert parse_keys(["left", "D", 3]) == {"arrowleft", "d"}
    assert parse_keys(None) == frozenset()


def test_held_key_ramps_to_full_rate_and_back():
    cam = CameraInput(CameraInputConfig(ramp_frames=3))
    cam.set_keys("w")
    c = cam.next_frames(8)
    assert c.shape == (8, 7) and c.dtype == np.float32
    assert 0 < c[0, 3] < MAX_FORWARD and np.allclose(c[3:, 3], MAX_FORWARD)
    assert np.allclose(c[:, [0, 1, 2, 4, 5, 6]], 0)
    cam.set_keys("")
    c = cam.next_frames(8)
    assert c[0, 3] > 0 and np.allclose(c[3:], 0)


def test_each_key_moves_its_axis_in_its_direction():
    expect = {"arrowleft": (0, -1), "arrowright": (0, 1), "arrowup": (1, 1), "arrowdown": (1, -1),
              "w": (3, 1), "s": (3, -1), "a": (4, -1), "d": (4, 1), "q": (2, -1), "e": (2, 1),
              "r": (5, 1), "f": (5, -1)}
    for key, (axis, sign) in expect.items():
        cam = CameraInput(CameraInputConfig(auto_level=False))
        cam.set_keys(key)
        c = cam.next_frames(6)[-1]
        assert np.sign(c[axis]) == sign and abs(c[axis]) == pytest.approx(LIMITS[axis]), key
        assert np.count_nonzero(c) == 1, key


def test_slider_sets_a_held_rate_and_keys_add_to_it():
    cam = CameraInput()
    assert cam.set_slider("yaw", 2.0) == 2.0
    assert np.allclose(cam.next_frames(8)[-1, 0], 2.0)
    cam.set_keys({"arrowright"})
    assert np.allclose(cam.next_frames(8)[-1, 0], MAX_YAW)    # 2 + 4 clamped to the trained range


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), None, "x", 1e9, -1e9])
def test_bad_slider_values_are_sanitised(bad):
    cam = CameraInput()
    for axis in AXES:
        v = cam.set_slider(axis, bad)
        assert np.isfinite(v) and abs(v) <= LIMITS[AXES.index(axis)]
    c = cam.next_frames(10)
    assert np.isfinite(c).all() and (np.abs(c) <= LIMITS + 1e-6).all()


def test_unknown_axis_is_an_error():
    with pytest.raises(ValueError, match="axis"):
        CameraInput().set_slider("sideways", 1.0)


def test_auto_level_brings_pitch_back():
    cam = CameraInput()
    cam.set_keys("arrowup")
    cam.next_frames(40)
    assert cam.pitch > 20
    cam.set_keys("")
    cam.next_frames(200)
    assert abs(cam.pitch) < 0.5


def test_release_stops_the_camera():
    cam = CameraInput()
    cam.set_slider("forward", 0.3)
    cam.set_keys("a")
    cam.next_frames(4)
    cam.release()
    assert np.allclose(cam.next_frames(8)[-1], 0) and not cam.moving


def test_a_held_turn_key_turns_the_rig_a_full_circle():
    cam = CameraInput()
    rig = CameraRig(128, 128, CameraState(), RigLimits())
    cam.set_keys("arrowright")
    for row in cam.next_frames(int(360 / MAX_YAW) + 2):
        rig.step(row)
    # 90 frames at 4 deg less the ramp-up: just over a full turn, back near the start heading
    assert abs(((rig.state.yaw + 180) % 360) - 180) < 2 * MAX_YAW


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(AXES), st.floats(allow_nan=True, allow_infinity=True)), max_size=10),
       st.text(max_size=30))
def test_any_inputs_give_finite_controls_in_range(sliders, keys):
    cam = CameraInput()
    for axis, v in sliders:
        cam.set_slider(axis, v)
    cam.set_keys(keys)
    c = cam.next_frames(4)
    assert np.isfinite(c).all() and (np.abs(c) <= LIMITS + 1e-6).all()


@pytest.mark.parametrize("key", sorted(KEYMAP))
def test_a_key_held_for_ten_seconds_then_released_returns_the_camera_to_level(key):
    """Auto-levelling undoes only the tilt the app's rig really took: held past the rig's pitch
    limit, the up arrow used to leave the camera looking straight down for good."""
    from controls.camera import APP_PITCH_LIMIT, APP_ROLL_LIMIT, CameraRig, CameraState, RigLimits

    rig = CameraRig(128, 128, CameraState(), RigLimits(pitch_deg=APP_PITCH_LIMIT, roll_deg=APP_ROLL_LIMIT))
    cam = CameraInput()
    cam.set_keys({key})
    for row in cam.next_frames(240):                  # 10 s at 24 fps
        rig.step(row)
    assert abs(rig.state.pitch - cam.pitch) < 1e-6 and abs(rig.state.roll - cam.roll) < 1e-6
    cam.set_keys(set())
    for row in cam.next_frames(480):
        rig.step(row)
    assert abs(rig.state.pitch) < 1.0 and abs(rig.state.roll) < 1.0, (rig.state.pitch, rig.state.roll)
