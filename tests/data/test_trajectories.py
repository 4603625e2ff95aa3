"""Camera trajectories: shape, determinism, the behaviours they promise, bounded pitch."""
import numpy as np

from controls.camera import CONTROL_DIM
from data.trajectories import MAX_YAW, camera_trajectory


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_shape_and_first_row():
    c = camera_trajectory(np.random.default_rng(0), 57)
    assert c.shape == (57, CONTROL_DIM) and c.dtype == np.float32
    assert not c[0].any() and np.isfinite(c).all()


def test_deterministic():
    a = camera_trajectory(np.random.default_rng(3), 200)
    assert np.array_equal(a, camera_trajectory(np.random.default_rng(3), 200))
    assert not np.array_equal(a, camera_trajectory(np.random.default_rng(4), 200))


def test_axes_switch_off():
    c = camera_trajectory(np.random.default_rng(1), 2000, allow_translation=False, allow_zoom=False)
    assert not c[:, 3:].any()
    z = camera_trajectory(np.random.default_rng(1), 2000, allow_translation=False, allow_zoom=True)
    assert np.abs(z[:, 6]).max() > 0


def test_long_trajectory_has_turns_and_idle_spells_and_level_pitch():
    for seed in range(5):
        c = camera_trajectory(np.random.default_rng(seed), 3000)
        turns = [(a, b) for a, b in _runs(np.abs(c[:, 0]) >= 2.5) if abs(c[a:b, 0].sum()) >= 350]
        idle = [(a, b) for a, b in _runs(np.abs(c).max(axis=1) < 0.15) if b - a >= 6]
        assert turns and idle, seed
        assert np.abs(c[:, 0]).max() <= MAX_YAW + 0.5
        assert np.abs(np.cumsum(c[:, 1])).max() < 45.0  # steered back towards level
        assert np.abs(np.cumsum(c[:, 2])).max() < 25.0
