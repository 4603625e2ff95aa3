"""Each Triton kernel against its PyTorch reference on odd-sized random inputs (interpreter on CPU)."""
import pytest
import torch

from model.kernels import use_impl
from model.kernels.attention import attention, attention_reference, frame_visibility

pytest.importorskip("triton")


def _frames(n_frames: int, T: int, first: bool = True, empty: int = 0) -> torch.Tensor:
    f = torch.arange(n_frames).repeat_interleave(T)
    if not first:
        f = f + 3
    if empty:
        f = torch.cat([torch.full((empty,), -1), f])
    return f


@pytest.mark.parametrize("causal,window", [(True, 2), (True, 1), (False, 2)])
def test_attention_matches_reference(causal, window):
    torch.manual_seed(0)
    B, H, E, T = 1, 2, 16, 7                                        # 7 tokens per frame: ragged blocks
    qf = _frames(5, T)                                              # 35 queries
    kf = torch.cat([torch.tensor([-1] * 5), qf])                    # 40 keys, 5 empty cache slots
    q = (torch.randn(B, H, len(qf), E) + 0.3).requires_grad_()
    k = (torch.randn(B, H, len(kf), E) - 0.2).requires_grad_()
    v = torch.randn(B, H, len(kf), E).requires_grad_()
    do = torch.randn(B, H, len(qf), E)
    ref = attention_reference(q, k, v, qf, kf, window, causal)
    gref = torch.autograd.grad(ref, (q, k, v), do)
    with use_impl("triton"):
        out = attention(q, k, v, qf, kf, window, causal)
        gout = torch.autograd.grad(out, (q, k, v), do)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max().item() < 1e-4
    for a, b in zip(gout, gref):
        assert (a - b).abs().max().item() < 1e-4


def test_attention_cache_row_mask():
    """Streaming: one frame's queries against a cache with empty slots."""
    torch.manual_seed(1)
    T, E = 5, 32
    kf = torch.tensor([0] * T + [-1] * T + [3] * T + [4] * T + [5] * T)
    qf = torch.full((T,), 5)
    q, k, v = torch.randn(1, 3, T, E), torch.randn(1, 3, len(kf), E), torch.randn(1, 3, len(kf), E)
    ref = attention_reference(q, k, v, qf, kf, 2, True)
    with use_impl("triton"):
        out = attention(q, k, v, qf, kf, 2, True)
    assert (out - ref).abs().max().item() < 1e-4
    vis = frame_visibility(qf, kf, 2, True)[0]
    assert vis.tolist() == [True] * T + [False] * T + [True] * (3 * T)


def test_unsupported_head_dim_is_a_clear_error():
    q = torch.randn(1, 1, 4, 24)
    f = torch.zeros(4, dtype=torch.long)
    with use_impl("triton"), pytest.raises(ValueError, match="head dims"):
        attention(q, q, q, f, f, 1, True)


def test_modulated_norm_matches_reference():
    from model.kernels.norm import modulated_norm, modulated_norm_reference

    torch.manual_seed(2)
    x = (torch.randn(3, 17, 97) * 2 + 0.5).requires_grad_()        # D = 97: not a power of two
    sh = torch.randn(3, 17, 97).requires_grad_()
    sc = (torch.randn(3, 17, 97) * 0.3).requires_grad_()
    dy = torch.randn(3, 17, 97)
    ref = modulated_norm_reference(x, sh, sc)
    gref = torch.autograd.grad(ref, (x, sh, sc), dy)
    with use_impl("triton"):
        out = modulated_norm(x, sh, sc)
        gout = torch.autograd.grad(out, (x, sh, sc), dy)
    assert (out - ref).abs().max().item() < 1e-4
    for a, b in zip(gout, gref):
        assert (a - b).abs().max().item() < 1e-4


def test_rope_matches_reference():
    from model.kernels.rope import apply_rope, apply_rope_reference

    torch.manual_seed(3)
    N, E = 13, 20                                                    # half = 10: masked lanes
    x = torch.randn(2, 3, N, E).requires_grad_()
    ang = torch.rand(N, E // 2) * 6
    cos, sin = ang.cos(), ang.sin()
    dy = torch.randn(2, 3, N, E)
    ref = apply_rope_reference(x, cos, sin)
    (gref,) = torch.autograd.grad(ref, (x,), dy)
    with use_impl("triton"):
        out = apply_rope(x, cos, sin)
        (gout,) = torch.autograd.grad(out, (x,), dy)
    assert (out - ref).abs().max().item() < 1e-5
    assert (gout - gref).abs().max().item() < 1e-5


def test_dit_forward_through_triton_matches_torch():
    """The whole network with every kernel in Triton equals the PyTorch path."""
    from model.dit import PRESETS, VideoDiT

    m = VideoDiT(PRESETS["tiny"]).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    c = m.config
    F = 4
    z = torch.randn(1, F, c.latent_channels, c.latent_size, c.latent_size)
    t = torch.rand(1, F)
    ctrl = torch.randn(1, F, c.tokens_per_frame, c.control_features)
    with torch.no_grad():
        a = m(z, z, ctrl, t)
        with use_impl("triton"):
            b = m(z, z, ctrl, t)
    assert (a - b).abs().max().item() < 1e-4
