"""What a viewer sees (eval/metrics.py): detail kept, the motion pulse and the patch-grid mosaic,
each checked on rendered truth against a known defect made from it; and the named user
trajectories (data/trajectories.py) that eval drives the worlds with."""
import cv2
import numpy as np
import pytest

from controls.camera import APP_PITCH_LIMIT, CameraRig, CameraState, RigLimits
from data.sources import make_clip, split_seed
from data.trajectories import USER_SCRIPTS, user_trajectory
from eval.metrics import detail_kept, grid_peak, laplacian_variance, mosaic, pulse


@pytest.fixture(scope="module")
def truth():
    return make_clip("world", split_seed("test", 0), 49, 128).frames


def test_detail_kept_is_one_on_the_truth_and_falls_with_blur(truth):
    assert detail_kept(truth, truth) == pytest.approx(1.0)
    soft = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in truth])
    softer = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in truth])
    assert detail_kept(softer, truth) < detail_kept(soft, truth) < 0.5
    noisy = np.clip(truth + np.random.default_rng(0).normal(0, 12, truth.shape), 0, 255).astype(np.uint8)
    assert detail_kept(noisy, truth) > 1.3                   # noise is not detail: the artifact side
    assert laplacian_variance(truth).shape == (49,)


def test_a_uniform_truth_has_no_detail_or_grid_to_compare_with(truth):
    """A window whose truth is one flat colour (a test world's camera faces a uniform wall for 10 s)
    leaves both ratios undefined, so one such clip cannot outweigh the others in a mean over clips."""
    flat = np.full_like(truth, 40)
    assert np.isnan(detail_kept(truth, flat)) and np.isnan(mosaic(truth, flat)) and np.isnan(grid_peak(flat))
    assert detail_kept(flat, truth) == 0.0 and mosaic(flat, truth) != mosaic(flat, truth)   # a flat video: no detail, no spectrum
    faint = np.clip(flat + np.random.default_rng(0).normal(0, 1.2, flat.shape), 0, 255).astype(np.uint8)
    assert laplacian_variance(faint).mean() >= 1.0 and np.isfinite(detail_kept(truth, faint))


def test_pulse_is_about_one_on_smooth_motion_and_high_when_latents_hold(truth):
    assert 0.8 < pulse(truth) < 1.2
    held = truth.copy()
    for k in range(1, 13):                                   # each latent's 4 frames frozen on its last
        held[4 * k - 3:4 * k + 1] = truth[4 * k]
    assert pulse(held) > 10
    assert np.isnan(pulse(np.repeat(truth[:1], 9, 0)))       # a still video has no pulse


def test_mosaic_is_about_one_on_the_truth_and_high_on_a_16_px_blob_grid(truth):
    assert 0.5 < grid_peak(truth) < 2.0 and mosaic(truth, truth) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:16]
    blob = np.tile(np.exp(-((x - 7.5) ** 2 + (y - 7.5) ** 2) / 40.0), (8, 8))[..., None]
    blobs = np.stack([np.kron(rng.uniform(0, 255, (8, 8, 3)), np.ones((16, 16, 1))) * blob for _ in truth])
    mixed = (0.7 * truth + 0.3 * blobs).astype(np.uint8)
    assert mosaic(mixed, truth) > 5
    soft = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in truth])
    assert mosaic(soft, truth) < 2                           # blur is not a mosaic


@pytest.mark.parametrize("name", sorted(USER_SCRIPTS))
def test_user_trajectories_are_what_the_app_keys_make(name):
    c = user_trajectory(name, 1441)
    assert c.shape == (1441, 7) and c.dtype == np.float32 and not c[0].any()
    assert np.array_equal(c, user_trajectory(name, 1441))
    assert np.array_equal(user_trajectory(name, 241), c[:241])          # prefix-consistent
    rig = CameraRig(128, 128, CameraState(), RigLimits(pitch_deg=APP_PITCH_LIMIT, roll_deg=90.0))
    yaw, pitch = [], []
    for row in c[1:]:
        rig.step(row)
        yaw.append(rig.state.yaw)
        pitch.append(rig.state.pitch)
    if name == "still":
        assert not c.any()
    if name == "turn":
        assert np.ptp(yaw) > 350                                       # full turns
    if name == "look-up":
        assert max(pitch) == pytest.approx(APP_PITCH_LIMIT) and abs(pitch[-1]) < 2.0
    if name == "reversal":
        assert np.ptp(yaw) < 120 and abs(yaw[-1]) < 10
    with pytest.raises(ValueError, match="unknown trajectory"):
        user_trajectory("moonwalk", 9)
