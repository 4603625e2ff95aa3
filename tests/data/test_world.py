"""World explorer: determinism and camera correctness (commanded rotation = measured image motion)."""
import math

import cv2
import numpy as np
import pytest

from controls.camera import CONTROL_DIM
from data.sources import world_clip
from data.world import make_world, render_clip, start_state

SIZE = 256


def _matches(f0: np.ndarray, f1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB matches between two RGB frames: (N, 2) pixel positions (centre-at-i+0.5) in each."""
    orb = cv2.ORB_create(1000, fastThreshold=5, edgeThreshold=15)
    k0, d0 = orb.detectAndCompute(cv2.cvtColor(f0, cv2.COLOR_RGB2GRAY), None)
    k1, d1 = orb.detectAndCompute(cv2.cvtColor(f1, cv2.COLOR_RGB2GRAY), None)
    ms = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d0, d1)
    p0 = np.array([k0[m.queryIdx].pt for m in ms]) + 0.5
    p1 = np.array([k1[m.trainIdx].pt for m in ms]) + 0.5
    return p0, p1


def test_deterministic():
    a, b = world_clip(3, 5, 48), world_clip(3, 5, 48)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert np.array_equal(a.controls, b.controls) and np.array_equal(a.w2c, b.w2c) and a.meta == b.meta
    assert world_clip(4, 5, 48).frames.tobytes() != a.frames.tobytes()


def test_same_world_and_controls_render_identical_bytes():
    world = make_world(7)
    state = start_state(world, np.random.default_rng(0))
    controls = np.zeros((4, CONTROL_DIM), np.float32)
    controls[1:, 0], controls[1:, 3] = 2.0, 0.3
    a, b = render_clip(world, state, controls, 40, 32), render_clip(world, state, controls, 40, 32)
    assert a.frames.shape == (4, 32, 40, 3) and a.frames.tobytes() == b.frames.tobytes()


# seeds with textured views (mountains at dawn, a city): clouds, ridges and buildings to match
@pytest.mark.parametrize("seed", [3, 2])
@pytest.mark.parametrize("axis,sign", [(0, -1.0), (1, 1.0)])
def test_rotation_moves_scenery_by_pinhole_prediction(seed, axis, sign):
    """Yaw k > 0 (turn right) moves content left, pitch k > 0 (look up) moves it down, by f tan(k)."""
    k = 6.0
    world = make_world(seed)
    state = start_state(world, np.random.default_rng(seed), fov_x=60.0)
    state.pitch = state.roll = 0.0  # then yaw turns about the camera's own vertical axis
    controls = np.zeros((2, CONTROL_DIM), np.float32)
    controls[1, axis] = k
    clip = render_clip(world, state, controls, SIZE, SIZE)
    positions = [-w[:3, :3].T @ w[:3, 3] for w in clip.w2c.astype(np.float64)]
    assert np.allclose(positions[0], positions[1], atol=1e-4)  # a pure rotation
    p0, p1 = _matches(clip.frames[0], clip.frames[1])
    centre = np.abs(p0[:, axis] - SIZE / 2) < SIZE / 6
    assert centre.sum() >= 30
    shift = float(np.median(p1[centre, axis] - p0[centre, axis]))
    expected = sign * clip.K[0][0, 0] * math.tan(math.radians(k))
    assert shift == pytest.approx(expected, rel=0.1)
    other = float(np.median(p1[centre, 1 - axis] - p0[centre, 1 - axis]))
    assert abs(other) < 0.1 * abs(expected)
