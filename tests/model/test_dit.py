"""The DiT: streaming with the KV cache equals the block-causal parallel forward."""
import pytest
import torch

from model.config import replace
from model.dit import PRESETS, VideoDiT, maps_from_first, transfer_weights
from model.warp import reproject_latents
from model.kernels.attention import frame_visibility


def _model(**kw) -> VideoDiT:
    m = VideoDiT(replace(PRESETS["tiny"], **kw)).eval()
    with torch.no_grad():  # leave adaLN-Zero's identity start: random weights everywhere
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


def _inputs(m: VideoDiT, B: int, F: int):
    c = m.config
    shape = (B, F, c.latent_channels, c.latent_size, c.latent_size)
    t = torch.rand(B, F)
    t[:, 0] = 0
    ctrl = torch.randn(B, F, c.tokens_per_frame, c.control_features)
    return torch.randn(shape), torch.randn(shape), ctrl, t


def _warps(B: int, F: int) -> torch.Tensor:
    """Random small rotation-like maps (shift, a little scale and perspective)."""
    w = torch.eye(3).repeat(B, F, 1, 1)
    w[..., :2, 2] += 0.3 * torch.randn(B, F, 2)
    w[..., :2, :2] += 0.05 * torch.randn(B, F, 2, 2)
    w[..., 2, :2] += 0.05 * torch.randn(B, F, 2)
    w[:, 0] = torch.eye(3)
    return w


@pytest.mark.parametrize("window,reproject", [(1, False), (2, False), (5, False), (2, True)])
def test_streaming_equals_parallel_causal(window, reproject):
    m = _model(window=window, reproject=reproject)
    rec, noisy, ctrl, t = _inputs(m, 2, 11)           # 11 frames: the window slides several times
    warp = _warps(2, 11) if reproject else None
    with torch.no_grad():
        full = m(rec, noisy, ctrl, t, mode="causal", warp=warp)
        cache = m.new_cache(2)
        steps = torch.stack([m.step(cache, rec[:, i], noisy[:, i], ctrl[:, i], t[:, i], i,
                                    None if warp is None else warp[:, i]) for i in range(11)], 1)
    assert (full - steps).abs().max().item() < 1e-4


def test_reproject_identity_and_integer_shift():
    z = torch.randn(2, 3, 4, 8, 8)
    eye = torch.eye(3).repeat(2, 3, 1, 1)
    assert torch.allclose(reproject_latents(z, eye), z, atol=1e-5)
    # destination x samples the source one latent pixel to the right (2 / w in normalised units)
    shift = eye.clone()
    shift[..., 0, 2] = 2.0 / 8
    out = reproject_latents(z, shift)
    assert torch.allclose(out[..., :, :-1], z[..., :, 1:], atol=1e-5)
    assert torch.allclose(out[..., :, -1], z[..., :, -1], atol=1e-5)        # edge replicated


def test_maps_from_first_compose_frame_to_frame_maps():
    w = _warps(2, 4)
    first = maps_from_first(w)
    assert torch.allclose(first[:, 0], torch.eye(3).expand(2, 3, 3))
    assert torch.allclose(first[:, 3], w[:, 1] @ w[:, 2] @ w[:, 3], atol=1e-6)


def test_reprojecting_model_needs_maps_and_camera_control():
    m = _model(reproject=True)
    rec, noisy, ctrl, t = _inputs(m, 1, 3)
    with pytest.raises(ValueError, match="warp"):
        m(rec, noisy, ctrl, t)
    with pytest.raises(ValueError, match="camera"):
        VideoDiT(replace(PRESETS["tiny"], control="pose", reproject=True))


def test_segment_over_cache_equals_parallel():
    m = _model(window=3)
    rec, noisy, ctrl, t = _inputs(m, 1, 10)
    with torch.no_grad():
        full = m(rec, noisy, ctrl, t, mode="causal")
        cache = m.new_cache(1)
        for i in range(6):
            m.step(cache, rec[:, i], noisy[:, i], ctrl[:, i], t[:, i], i)
        seg = m(rec[:, 6:], noisy[:, 6:], ctrl[:, 6:], t[:, 6:], positions=torch.arange(6, 10), cache=cache)
    assert (seg - full[:, 6:]).abs().max().item() < 1e-4


def test_causal_frames_ignore_the_future_and_the_far_past():
    # window 1, depth 2: frame 4 sees frames 3-4 directly and frame 2 through frame 3's keys
    m = _model(window=1)
    rec, noisy, ctrl, t = _inputs(m, 1, 7)
    with torch.no_grad():
        a = m(rec, noisy, ctrl, t, mode="causal")
        rec2, noisy2 = rec.clone(), noisy.clone()
        noisy2[:, 5:] += 1.0          # the future of frame 4
        noisy2[:, 1] += 1.0           # beyond frame 4's receptive field (frames 2-4)
        rec2[:, 1] += 1.0
        b = m(rec2, noisy2, ctrl, t, mode="causal")
        assert torch.allclose(a[:, 4], b[:, 4], atol=1e-5)
        assert not torch.allclose(a[:, 5], b[:, 5], atol=1e-3)
        # bidirectional: every frame sees every other
        c = m(rec, noisy, ctrl, t, mode="bidirectional")
        d = m(rec2, noisy2, ctrl, t, mode="bidirectional")
        assert not torch.allclose(c[:, 4], d[:, 4], atol=1e-3)


def test_position_shift_invariance_for_unlimited_streams():
    """Only relative time matters and the first frame is position-free: a window deep into a
    stream gives exactly what the same window gives near the start."""
    m = _model(window=3)
    rec, noisy, ctrl, t = _inputs(m, 1, 4)
    with torch.no_grad():
        near = m(rec, noisy, ctrl, t, positions=torch.tensor([0, 1, 2, 3]))
        far = m(rec, noisy, ctrl, t, positions=torch.tensor([0, 100001, 100002, 100003]))
    assert (near - far).abs().max().item() < 1e-4


def test_first_frame_is_always_visible():
    mask = frame_visibility(torch.arange(8), torch.arange(8), 2, True)
    assert mask[:, 0].all()
    assert not mask[0, 1:].any()                   # the first frame sees only itself
    assert mask[7].tolist() == [True, False, False, False, False, True, True, True]


def test_output_is_recycled_plus_residual_at_init():
    m = VideoDiT(PRESETS["tiny"])                  # adaLN-Zero: the residual starts at zero
    rec, noisy, ctrl, t = _inputs(m, 1, 3)
    with torch.no_grad():
        out = m(rec, noisy, ctrl, t)
    assert torch.allclose(out, rec)


def test_cache_memory_is_constant():
    m = _model(window=2)
    cache = m.new_cache(1)
    before = (cache.k.data_ptr(), cache.k.shape)
    rec, noisy, ctrl, t = _inputs(m, 1, 9)
    with torch.no_grad():
        for i in range(9):
            m.step(cache, rec[:, i], noisy[:, i], ctrl[:, i], t[:, i], i)
    assert (cache.k.data_ptr(), cache.k.shape) == before
    assert sorted(cache.positions.tolist()) == [0, 7, 8]


def test_a_pass_that_does_not_update_the_cache_leaves_it_unchanged():
    m = _model(window=2)
    rec, noisy, ctrl, t = _inputs(m, 1, 5)
    with torch.no_grad():
        cache = m.new_cache(1)
        for i in range(3):
            m.step(cache, rec[:, i], noisy[:, i], ctrl[:, i], t[:, i], i)
        before = cache.clone()
        a = m.step(cache, rec[:, 3], noisy[:, 3], ctrl[:, 3], t[:, 3], 3, update_cache=False)
        assert torch.equal(cache.k, before.k) and torch.equal(cache.positions, before.positions)
        b = m.step(cache, rec[:, 3], noisy[:, 3], ctrl[:, 3], t[:, 3], 3)
    assert torch.equal(a, b)


def test_transfer_from_a_reprojecting_camera_model_to_a_pose_model():
    """With a still camera (identity warp) and no pose signal yet, the pose model starts out
    predicting exactly what the camera model predicts; its pose input is new (zeroed) and learns."""
    src = _model(control="camera", reproject=True)
    dst = VideoDiT(replace(PRESETS["tiny"], control="pose"))
    left = transfer_weights(dst, src)
    assert left == ["x_in.weight[control]"]
    rec, noisy, ctrl, t = _inputs(dst, 2, 5)
    eye = torch.eye(3).repeat(2, 5, 1, 1)
    cam = torch.zeros(2, 5, src.config.tokens_per_frame, src.config.control_features)
    with torch.no_grad():
        a = src(rec, noisy, cam, t, mode="causal", warp=eye)
        b = dst(rec, noisy, ctrl, t, mode="causal")
        # the pose columns are zero, so any pose gives the same start; a nudge makes them count
        dst.x_in.weight[:, -dst.config.control_features:] += 0.1 * torch.randn(dst.config.dim,
                                                                          dst.config.control_features)
        c = dst(rec, noisy, ctrl, t, mode="causal")
    assert (a - b).abs().max().item() < 1e-4
    assert (b - c).abs().max().item() > 1e-3


def test_transfer_to_more_latent_channels():
    """A DiT for a wider autoencoder started from a trained one predicts the same clean latent on
    the old channels and copies the recycled latent on the new ones (whatever they hold)."""
    src = _model(control="pose")
    C = src.config.latent_channels
    dst = VideoDiT(replace(src.config, latent_channels=2 * C))
    assert transfer_weights(dst, src) == []
    rec, noisy, ctrl, t = _inputs(dst, 2, 5)
    with torch.no_grad():
        a = src(rec[:, :, :C], noisy[:, :, :C], ctrl, t, mode="causal")
        b = dst(rec, noisy, ctrl, t, mode="causal")
    assert (a - b[:, :, :C]).abs().max().item() < 1e-4
    assert torch.equal(b[:, :, C:], rec[:, :, C:])


@pytest.mark.parametrize("control", ["pose", "camera"])
def test_transfer_to_fewer_frames_per_latent(control):
    """A DiT for an autoencoder packing 2 frames per latent, started from a 4-frame one, predicts
    what the 4-frame one predicts when each of its frames' controls is given twice (slow motion)."""
    src = _model(control=control)
    dst = VideoDiT(replace(src.config, frames_per_latent=2))
    per = src.config.control_features // 4
    assert dst.config.control_features == 2 * per
    assert transfer_weights(dst, src) == []
    rec, noisy, ctrl, t = _inputs(dst, 2, 5)                            # ctrl (B, F, T, 2 per)
    twice = ctrl.unflatten(-1, (2, per)).repeat_interleave(2, -2).flatten(-2)   # (B, F, T, 4 per)
    with torch.no_grad():
        a = src(rec, noisy, twice, t, mode="causal")
        b = dst(rec, noisy, ctrl, t, mode="causal")
    assert (a - b).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="whole factor"):
        transfer_weights(VideoDiT(replace(src.config, frames_per_latent=3)), src)


def test_control_features_scale_with_frames_per_latent():
    assert replace(PRESETS["tiny"], control="pose").control_features == 33 * 4
    assert replace(PRESETS["tiny"], control="pose", frames_per_latent=2).control_features == 33 * 2
    assert replace(PRESETS["tiny"], control="camera", frames_per_latent=1).control_features == 6
    with pytest.raises(ValueError, match="at least 1"):
        VideoDiT(replace(PRESETS["tiny"], frames_per_latent=0))


def test_transfer_needs_the_same_trunk():
    with pytest.raises(ValueError, match="same patch, width"):
        transfer_weights(VideoDiT(replace(PRESETS["tiny"], dim=48)), VideoDiT(PRESETS["tiny"]))
