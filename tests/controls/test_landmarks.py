"""Landmark layout helpers: neutral pose, sanitising, crop mapping, mirroring, drawing."""
import numpy as np
import pytest

from controls.landmarks import CONNECTIONS, INDEX, MIRROR, NAMES, draw_skeleton, mirror, neutral_pose, sanitize, to_square


def test_neutral_pose_is_an_upright_front_facing_person():
    p = neutral_pose()
    assert p.shape == (33, 4) and (p[:, 3] == 1).all()
    assert p[INDEX["nose"], 1] < p[INDEX["left_shoulder"], 1] < p[INDEX["left_hip"], 1] < p[INDEX["left_ankle"], 1]
    assert p[INDEX["left_shoulder"], 0] > p[INDEX["right_shoulder"], 0]
    assert np.allclose(mirror(p)[:, :2], p[:, :2], atol=1e-6)         # symmetric


def test_mirror_twice_is_identity_and_swaps_sides():
    p = np.random.default_rng(0).random((33, 4)).astype(np.float32)
    assert np.allclose(mirror(mirror(p)), p)
    assert MIRROR[INDEX["left_wrist"]] == INDEX["right_wrist"] and MIRROR[INDEX["nose"]] == INDEX["nose"]
    assert len(NAMES) == 33 and all(0 <= a < 33 and 0 <= b < 33 for a, b in CONNECTIONS)


def test_to_square_matches_the_centre_crop():
    p = np.zeros((33, 4), np.float32)
    p[:, 0], p[:, 1] = 0.5, 0.5
    p[0, :2] = (0.125, 0.0)                 # on the left edge of the 480-wide centre square of 640x480
    q = to_square(p, 640, 480)
    assert np.allclose(q[1:, :2], 0.5) and np.allclose(q[0, :2], (0.0, 0.0))


def test_sanitize():
    a = np.full((33, 3), np.nan)
    s = sanitize(a)
    assert s.shape == (33, 4) and np.isfinite(s).all() and (s[:, 3] == 0).all()
    b = np.full((33, 4), 1e9)
    assert sanitize(b)[:, :2].max() <= 2 and sanitize(b)[:, 3].max() == 1
    with pytest.raises(ValueError):
        sanitize(np.zeros((12, 4)))


def test_draw_skeleton_marks_the_image_and_tolerates_junk():
    img = np.zeros((64, 80, 3), np.uint8)
    out = draw_skeleton(img, neutral_pose())
    assert out.shape == img.shape and out.sum() > 0 and img.sum() == 0
    junk = np.full((33, 4), np.nan, np.float32)
    assert draw_skeleton(img, junk).sum() == 0
    assert draw_skeleton(img, None).sum() == 0
