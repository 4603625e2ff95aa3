"""The reference decoder and its warps (model/warp.py, model/autoencoder.py): the warp moves pixels
exactly and marks what was in view, crops and mirrors keep the geometry, the decoder copies only
where the gate opens and the pixel was in view, and streaming decode equals whole-clip decode."""
import numpy as np
import pytest
import torch

from controls.camera import CameraRig, CameraState, clip_frame_maps, reprojection_map
from model.autoencoder import PRESETS, StreamingDecoder, VideoAutoencoder, with_ref_kernel, with_reference
from model.warp import IDENTITY, crop_maps, sample_points, shift_reference, warp_reference


def _shift(dx: float, size: int) -> torch.Tensor:
    """Map of a destination pixel to the source pixel dx to its left (content moves right by dx)."""
    m = torch.eye(3)
    m[0, 2] = -2 * dx / size
    return m


def test_the_identity_warp_returns_the_frame_all_in_view():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    ref = warp_reference(x, IDENTITY.expand(2, 3, 3, 3))
    assert ref.shape == (2, 3, 4, 16, 16)
    assert torch.allclose(ref[:, :, :3], x[:, None].expand(-1, 3, -1, -1, -1), atol=1e-6)
    assert (ref[:, :, 3] == 1).all()


def test_a_whole_pixel_shift_moves_pixels_exactly_and_masks_the_uncovered_band():
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    ref = warp_reference(x, _shift(3, 16)[None, None])[0, 0]
    assert torch.allclose(ref[:3, :, 3:], x[0, :, :, :13], atol=1e-5)
    assert (ref[3, :, :3] == 0).all() and (ref[3, :, 3:] == 1).all()
    assert (ref[:3, :, :3] == 0).all()                        # nothing invented outside the old view


@pytest.mark.parametrize("field", [False, True])
def test_the_warp_equals_each_coming_frame_sampled_on_its_own(field):
    """warp_reference (all coming frames of the batch in one call): the same numbers as grid_sample
    run frame by frame, for homographies and point fields."""
    g = torch.Generator().manual_seed(0)
    B, n, H, W = 2, 3, 12, 20
    x = torch.rand(B, 3, H, W, generator=g) * 2.4 - 1.2              # outside [-1, 1] too: clamped
    if field:
        maps = torch.rand(B, n, H, W, 2, generator=g) * 2.4 - 1.2
    else:
        maps = torch.eye(3).repeat(B, n, 1, 1)
        maps[..., :2, :] += 0.1 * torch.randn(B, n, 2, 3, generator=g)
    got = warp_reference(x, maps)
    if field:
        points, seen = maps.flatten(0, 1), (maps.flatten(0, 1).abs() <= 1).all(-1)
    else:
        points, seen = sample_points(maps.flatten(0, 1), H, W)
    for b in range(B):
        for f in range(n):
            xy, in_view = points[b * n + f][None], seen[b * n + f][None]
            rgb = torch.nn.functional.grid_sample(x[b:b + 1], xy, mode="bicubic", padding_mode="border",
                                                  align_corners=False).clamp(-1, 1)[0]
            m = in_view.float()
            assert torch.equal(got[b, f], torch.cat([rgb * m, m]))


def test_points_behind_the_source_camera_are_out_of_view():
    m = torch.diag(torch.tensor([1.0, 1.0, -1.0]))             # every point behind the camera
    _, in_view = sample_points(m[None], 8, 8)
    assert not in_view.any()


@pytest.mark.parametrize("flip", [False, True])
def test_crop_maps_warp_a_crop_as_the_full_frame_warp_cropped(flip):
    rig = CameraRig(64, 64, CameraState(fov_x=60.0))
    K0, W0 = rig.K(), rig.w2c()
    rig.step(np.array([3.0, 1.0, 0.5, 0, 0, 0, 0.01]))
    m = torch.from_numpy(reprojection_map(K0, W0, rig.K(), rig.w2c(), 64, 64))[None, None]
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    full = warp_reference(x, m)[0, 0]
    y0, x0, c = 10, 20, 32
    crop = x[:, :, y0:y0 + c, x0:x0 + c]
    want = full[:, y0:y0 + c, x0:x0 + c]
    if flip:
        crop, want = crop.flip(-1), want.flip(-1)
    got = warp_reference(crop, crop_maps(m, 64, c, torch.tensor([y0]), torch.tensor([x0]), torch.tensor([flip])))[0, 0]
    # inside both views and two pixels away from the crop's edge (where bicubic reads the edge), they agree
    inner = (got[3] > 0) & (want[3] > 0)
    inner[[0, 1, -2, -1]], inner[:, [0, 1, -2, -1]] = False, False
    inner &= torch.nn.functional.max_pool2d((got[3:] == 0).float()[None], 5, 1, 2)[0, 0] == 0
    assert inner.float().mean() > 0.5
    assert torch.allclose(got[:3][:, inner], want[:3][:, inner], atol=1e-4)


def _tiny_reference(seed: int = 0, ref_flow: bool = False) -> VideoAutoencoder:
    torch.manual_seed(seed)
    ae = with_reference(VideoAutoencoder(PRESETS["tiny"]), ref_flow=ref_flow)
    for p in ae.decoder.parameters():                           # a trained-looking decoder: no zero convs
        p.data.add_(0.05 * torch.randn_like(p))
    return ae.eval()


def test_the_light_reference_branch_sums_the_taps_and_goes_back_exactly():
    ae = _tiny_reference(seed=1).eval()
    light = with_ref_kernel(ae, 1).eval()
    assert light.config.ref_kernel == 1 and light.decoder.ref_full[-1].weight.shape[-2:] == (1, 1)
    for name in ("ref_half", "ref_full"):
        three, one = getattr(ae.decoder, name)[-1], getattr(light.decoder, name)[-1]
        assert torch.allclose(one.weight[..., 0, 0], three.weight.sum((-2, -1)))
        assert torch.equal(one.bias, three.bias)
    # on a flat reference the branch's features are flat inside the frame, where a 1x1 conv of the
    # summed taps is the 3x3 conv
    r = torch.full((1, 4 * ae.config.frames_per_latent, 32, 32), 0.3)
    with torch.no_grad():
        a, b = ae.decoder.ref_full(r), light.decoder.ref_full(r)
    assert torch.allclose(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], atol=1e-5)
    assert not torch.allclose(a, b, atol=1e-5)                        # the borders differ: a real change
    # 1 -> 3 puts each 1x1 filter at the centre tap: the same decoder exactly
    back = with_ref_kernel(light, 3).eval()
    z = torch.randn(1, 3, 8, 4, 4)
    x0 = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back.decode(z, first=x0), light.decode(z, first=x0), atol=1e-6)
    with pytest.raises(ValueError):
        with_ref_kernel(VideoAutoencoder(PRESETS["tiny"]), 1)


def test_a_closed_gate_decodes_as_the_decoder_without_its_reference_branch():
    torch.manual_seed(0)
    base = VideoAutoencoder(PRESETS["tiny"]).eval()
    ref_ae = with_reference(base).eval()
    torch.nn.init.constant_(ref_ae.decoder.gate.bias, -1e4)     # gate shut; the reference branch is still zero
    z = torch.randn(1, 4, 8, 4, 4)
    x0 = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(ref_ae.decode(z, first=x0), base.decode(z), atol=1e-6)


def test_an_open_gate_copies_the_reference_where_it_was_in_view_only():
    ae = _tiny_reference()
    torch.nn.init.zeros_(ae.decoder.gate.weight)
    torch.nn.init.constant_(ae.decoder.gate.bias, 1e4)          # gate wide open
    z = torch.randn(1, 8, 4, 4)
    last = torch.rand(1, 3, 32, 32) * 2 - 1
    maps = _shift(4, 32)[None, None].expand(1, 4, 3, 3)
    ref = warp_reference(last, maps)
    with torch.no_grad():
        out = ae.decode_step(z, z, ref)
        free = ae.decode_step(z, z, torch.zeros_like(ref))
    assert torch.allclose(out[:, :, :, :, 4:], ref[:, :, :3, :, 4:], atol=1e-5)   # copied where in view
    assert not torch.allclose(out[:, :, :, :, :4], free[:, :, :, :, :4])         # drawn where new (the branch sees the reference)
    assert (out[:, :, :, :, :4] - ref[:, :, :3, :, :4]).abs().max() > 1e-3


@pytest.mark.parametrize("ref_flow", [False, True])
def test_streaming_reference_decode_equals_whole_clip_decode(ref_flow):
    ae = _tiny_reference(1, ref_flow)
    rig = CameraRig(32, 32, CameraState(fov_x=60.0))
    K, W = [rig.K()], [rig.w2c()]
    for f in range(12):
        rig.step(np.array([2.0, 0.5 * np.sin(f), 0, 0.1, 0, 0, 0]))
        K.append(rig.K())
        W.append(rig.w2c())
    maps = torch.from_numpy(clip_frame_maps(np.stack(K), np.stack(W), 32, 32, 4))[None]   # (1, 3, 4, 3, 3)
    z = torch.randn(1, 4, 8, 4, 4)
    first = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        whole = ae.decode(z, maps, first)
        s = StreamingDecoder(ae)
        s.reset(first)
        parts = [s(z[:, 0])] + [s(z[:, j], maps[:, j - 1]) for j in range(1, 4)]
    assert whole.shape == (1, 13, 3, 32, 32)
    assert torch.equal(torch.cat(parts, 1), whole)
    assert torch.equal(s.last, whole[:, -1])


def test_clip_frame_maps_take_every_frame_to_the_last_frame_of_the_latent_before():
    rig = CameraRig(32, 32, CameraState(fov_x=60.0))
    K, W = [rig.K()], [rig.w2c()]
    for _ in range(8):
        rig.step(np.array([1.5, 0, 0, 0, 0, 0, 0]))
        K.append(rig.K())
        W.append(rig.w2c())
    maps = clip_frame_maps(np.stack(K), np.stack(W), 32, 32, 4)
    assert maps.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(maps[1, 2], reprojection_map(K[4], W[4], K[7], W[7], 32, 32), atol=1e-6)


def test_a_zero_flow_keeps_the_reference_and_a_whole_pixel_flow_moves_it_exactly():
    ref = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    ref[:, :, 3] = 1.0
    assert torch.equal(shift_reference(ref, torch.zeros(2, 3, 2, 8, 8)), ref)
    flow = torch.zeros(2, 3, 2, 8, 8)
    flow[:, :, 1] = -3.0                                        # each pixel takes the reference 3 px above it
    out = shift_reference(ref, flow)
    assert torch.allclose(out[..., 3:, :], ref[..., :13, :], atol=1e-5)
    assert (out[:, :, 3, :3] < 1).all()                         # taken from outside the frame: not in view


def test_the_reference_flow_starts_at_zero_and_then_moves_what_is_copied():
    """``with_reference(ref_flow=True)`` adds the flow head at zero: a trained reference decoder
    decodes exactly as before; a flow of whole pixels moves the copy by as many pixels."""
    base = _tiny_reference(2)
    flowed = with_reference(base, ref_flow=True).eval()
    assert flowed.config.ref_flow and not base.config.ref_flow
    z = torch.randn(1, 16, 4, 4)
    ref = torch.rand(1, 4, 4, 32, 32) * 2 - 1
    ref[:, :, 3] = 1.0
    with torch.no_grad():
        assert torch.equal(flowed.decode_step(z[:, :8], z[:, 8:], ref), base.decode_step(z[:, :8], z[:, 8:], ref))
        flowed.decoder.flow.bias[0::2] = 2.0 / 8.0                  # x of every frame: 2 px (FLOW_PX = 8)
        moved = torch.cat([ref[..., 2:], torch.zeros_like(ref[..., :2])], -1)
        torch.testing.assert_close(flowed.decode_step(z[:, :8], z[:, 8:], ref),
                                   base.decode_step(z[:, :8], z[:, 8:], moved), rtol=1e-4, atol=1e-4)
