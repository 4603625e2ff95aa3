"""Per-bone warps (controls/bone_warp.py): exact where the geometry is known, cropped like frames."""
import numpy as np
import torch

from dataclasses import replace

from controls.bone_warp import (LIMBS, OUTSIDE, WarpConfig, body_cover, bone_warp_points, clip_pose_points,
                                identity_points)
from controls.landmarks import INDEX, neutral_pose
from model.warp import crop_maps, warp_reference

S = 64


def _pose(rng: np.random.Generator | None = None) -> torch.Tensor:
    lm = neutral_pose()[:, :2].copy()
    if rng is not None:
        lm += rng.normal(0, 0.01, lm.shape)
    return torch.from_numpy(lm.astype(np.float32))[None]


def _scaled(f: float) -> WarpConfig:
    """The default widths times f."""
    c = WarpConfig()
    return replace(c, **{k: getattr(c, k) * f for k in ("head", "torso", "upper_arm", "forearm", "hand", "thigh",
                                                         "shin", "foot")})


def test_the_same_pose_takes_every_pixel_from_where_it_is():
    lm = _pose(np.random.default_rng(0))
    pts = bone_warp_points(lm, lm, S)[0]
    assert torch.allclose(pts, identity_points(S), atol=1e-5)


def test_a_body_moved_sideways_is_copied_from_its_old_place_and_the_room_it_uncovers_is_not_in_view():
    lm = _pose(np.random.default_rng(1))
    d = torch.tensor([0.1, 0.0])
    pts = bone_warp_points(lm, lm + d, S)[0]
    grid = identity_points(S)
    # the body's outline is interpolated from a coarser grid: test a little inside and outside it
    inner, outer = (_scaled(0.85), _scaled(1.2))
    assert torch.allclose(pts[body_cover(lm + d, S, inner)[0]], grid[body_cover(lm + d, S, inner)[0]] - 2 * d, atol=1e-4)
    uncovered = body_cover(lm, S, inner)[0] & ~body_cover(lm + d, S, outer)[0]
    assert uncovered.sum() > 50 and (pts[uncovered] == OUTSIDE).all()
    room = ~body_cover(lm, S, outer)[0] & ~body_cover(lm + d, S, outer)[0]
    assert torch.equal(pts[room], grid[room])


def test_a_turned_forearm_maps_its_axis_onto_the_old_axis_at_the_same_fraction():
    """The left forearm (and hand) turned 90 degrees out about the elbow: a pixel near the new
    forearm's middle comes from the old forearm, turned back about the elbow."""
    lm = _pose()
    elbow, wrist = INDEX["left_elbow"], INDEX["left_wrist"]
    new = lm.clone()
    e = lm[0, elbow]
    for i in [wrist, *(INDEX[f"left_{n}"] for n in ("pinky", "index", "thumb"))]:
        v = lm[0, i] - e
        new[0, i] = e + torch.stack([v[1], -v[0]])
    size = 256
    pts = bone_warp_points(lm, new, size)[0]
    for u in (0.4, 0.6):
        p = e + u * (new[0, wrist] - e)
        ix, iy = (p * size).long().tolist()
        centre = (torch.tensor([ix, iy]) + 0.5) / size
        d = centre - e
        expect = (e + torch.stack([-d[1], d[0]])) * 2 - 1
        assert torch.allclose(pts[iy, ix], expect, atol=2e-3), (u, pts[iy, ix], expect)    # a quarter pixel


def test_clip_points_chain_each_latent_from_the_last_frame_before_it():
    rng = np.random.default_rng(2)
    lm = np.stack([neutral_pose() + rng.normal(0, 0.01, (33, 4)) for _ in range(9)]).astype(np.float32)
    pts = clip_pose_points(lm, S, 4)
    assert pts.shape == (2, 4, S, S, 2)
    t = torch.from_numpy(lm[:, :, :2])
    np.testing.assert_allclose(pts[1, 2], bone_warp_points(t[4:5], t[7:8], S)[0].numpy(), atol=1e-6)


def test_cropped_and_mirrored_point_fields_warp_the_crop_as_the_frame():
    """Warping a crop of a frame by the cropped field equals the crop of the frame's warp, where the
    source lies inside the crop (as crop_maps does for homographies)."""
    rng = np.random.default_rng(3)
    frame = torch.rand(1, 3, S, S) * 2 - 1
    lm = _pose(rng)
    pts = bone_warp_points(lm, lm + torch.tensor([0.03, -0.02]), S)[None]     # (1, 1, S, S, 2)
    full = warp_reference(frame, pts)[0, 0]
    c = 40
    for flip in (False, True):
        y, x = 8, 20
        crop = frame[..., y:y + c, x:x + c]
        cp = crop_maps(pts, S, c, torch.tensor([y]), torch.tensor([x]), torch.tensor([flip]))
        if flip:
            crop = crop.flip(-1)
        got = warp_reference(crop, cp)[0, 0]
        want = full[:, y:y + c, x:x + c]
        if flip:
            want = want.flip(-1)
        inner = got[3] > 0
        inner[:2], inner[-2:], inner[:, :2], inner[:, -2:] = False, False, False, False   # bicubic reads 2 px around
        inner &= torch.nn.functional.max_pool2d(1 - got[3:4], 5, 1, 2)[0] == 0           # ... and near the crop's edge
        assert inner.sum() > 200
        assert torch.allclose(got[:3][:, inner], want[:3][:, inner], atol=1e-4)


def test_every_limb_part_names_existing_landmarks():
    assert len(LIMBS) == 12
    for _, a, b in LIMBS:
        assert all(0 <= i < 33 for i in (*a, *b))
