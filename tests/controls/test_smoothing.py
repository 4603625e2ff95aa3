"""One Euro filter and the landmark smoother: jitter, lag, a missing person, bad values."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controls.landmarks import neutral_pose
from controls.smoothing import LandmarkSmoother, OneEuroFilter, SmootherConfig

DT = 1 / 30


def test_one_euro_removes_jitter_of_a_still_signal():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    x = 0.5 + rng.normal(0, 0.01, 300)
    y = np.array([f(np.array([v]), i * DT)[0] for i, v in enumerate(x)])
    assert np.std(y[100:]) < 0.4 * np.std(x[100:])
    assert abs(np.mean(y[100:]) - 0.5) < 0.005


def test_one_euro_speed_term_cuts_lag_of_fast_moves():
    t = np.arange(60) * DT
    x = 2.0 * t                                         # a fast, steady move (2 widths / s)
    lag = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        y = np.array([f(np.array([v]), ti)[0] for v, ti in zip(x, t)])
        lag[beta] = x[-1] - y[-1]
    assert lag[1.0] < 0.3 * lag[0.0]


def test_one_euro_handles_repeated_timestamps():
    f = OneEuroFilter()
    f(np.zeros(3), 1.0)
    assert np.isfinite(f(np.ones(3), 1.0)).all()


def _pose(dx=0.0):
    p = neutral_pose()
    p[:, 0] += dx
    return p


def test_tracking_follows_a_person():
    s = LandmarkSmoother()
    for i in range(60):
        out = s.update(_pose(0.2), i * DT)
    assert s.status == "tracking"
    assert np.allclose(out[:, 0], _pose(0.2)[:, 0], atol=1e-3)


def test_missing_person_holds_then_relaxes_to_neutral():
    cfg = SmootherConfig(hold_s=0.5, relax_s=0.5)
    s = LandmarkSmoother(cfg)
    t = 0.0
    for _ in range(60):
        held = s.update(_pose(0.2), t)
        t += DT
    # nobody in view: the pose is held for hold_s ...
    for _ in range(int(0.4 / DT)):
        out = s.update(None, t)
        t += DT
        assert np.allclose(out, held) and s.status == "holding"
    # ... then approaches neutral monotonically, never freezing and never leaving the range
    dists = []
    for _ in range(int(4.0 / DT)):
        out = s.update(None, t)
        t += DT
        assert np.isfinite(out).all()
        dists.append(float(np.abs(out[:, 0] - neutral_pose()[:, 0]).max()))
    assert all(b <= a + 1e-7 for a, b in zip(dists, dists[1:]))
    assert dists[0] > 0.1 and dists[-1] < 1e-3 and s.status == "neutral"


def test_returning_person_glides_in():
    s = LandmarkSmoother(SmootherConfig(hold_s=0.0, relax_s=0.1))
    t = 0.0
    for _ in range(90):
        s.update(None, t)
        t += DT
    out = s.update(_pose(0.3), t)                     # appears far from neutral
    x = float(np.mean(out[:, 0] - neutral_pose()[:, 0]))
    assert 0.0 < x < 0.3                               # part of the way, not a jump
    for _ in range(30):
        t += DT
        out = s.update(_pose(0.3), t)
    assert np.allclose(out[:, 0], _pose(0.3)[:, 0], atol=0.01)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)), min_size=1, max_size=20))
def test_smoother_output_is_always_finite(values):
    s = LandmarkSmoother()
    for i, v in enumerate(values):
        lm = None if v is None else np.full((33, 4), v, np.float32)
        out = s.update(lm, i * DT)
        assert out.shape == (33, 4) and np.isfinite(out).all()
        assert (out[:, 3] >= 0).all() and (out[:, 3] <= 1).all()


def test_a_pose_with_nothing_visible_counts_as_nobody():
    """A detection whose landmarks are all invisible (or all NaN) is nobody in view: hold, then relax,
    never a pose collapsed to the image corner."""
    s = LandmarkSmoother(SmootherConfig(hold_s=0.1, relax_s=0.1))
    t = 0.0
    for _ in range(10):
        s.update(_pose(0.2), t)
        t += DT
    invisible = _pose(-0.3)
    invisible[:, 3] = 0.0
    out = s.update(invisible, t)
    assert s.status == "holding" and np.allclose(out[:, 0], _pose(0.2)[:, 0], atol=0.02)
    for bad in [invisible] * 30 + [np.full((33, 4), np.nan, np.float32)] * 30:
        t += DT
        out = s.update(bad, t)
    assert s.status == "neutral" and np.allclose(out, neutral_pose(), atol=1e-3)
