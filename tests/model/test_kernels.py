"""Each Triton kernel against its PyTorch reference on odd-sized random inputs (interpreter on CPU).

The accuracy rule is flash-attention's: in each dtype, the kernel's error against an fp64 reference
is at most twice the error of the PyTorch reference computed in that same dtype, plus twice the
dtype's own rounding at the values' magnitude (its ``x + 0.3 - 0.3`` term), plus 1e-5 (fp32's
reference errors are a few ulps, below what an fp32 kernel that sums in another order can match). Output buffers are poisoned with NaN before the kernels write them, so a lane a
kernel forgets to store fails the test instead of passing on leftover memory.
"""
import contextlib

import pytest
import torch

from model.kernels import use_impl
from model.kernels.attention import attention, attention_reference, frame_visibility

pytest.importorskip("triton", reason="triton is not installed here: the Triton kernels are NOT tested "
                                     "(pip install triton==3.7.1; on CPU they run in its interpreter)")

DTYPES = [torch.float32, torch.bfloat16]


@contextlib.contextmanager
def poisoned_outputs():
    """torch.empty / empty_like hand out NaN-filled floating-point buffers inside this block."""
    empty, empty_like = torch.empty, torch.empty_like

    def fill(t):
        return t.fill_(float("nan")) if t.is_floating_point() else t

    torch.empty = lambda *a, **k: fill(empty(*a, **k))
    torch.empty_like = lambda *a, **k: fill(empty_like(*a, **k))
    try:
        yield
    finally:
        torch.empty, torch.empty_like = empty, empty_like


def _close(kernel: torch.Tensor, same_dtype_ref: torch.Tensor, fp64_ref: torch.Tensor, what: str) -> None:
    """The flash-attention test rule (see the module docstring)."""
    assert torch.isfinite(kernel).all(), what
    err = (kernel.double() - fp64_ref).abs().max().item()
    ref_err = (same_dtype_ref.double() - fp64_ref).abs().max().item()
    rounding = ((fp64_ref.to(kernel.dtype) + 0.3 - 0.3).double() - fp64_ref).abs().max().item()
    assert err <= 2 * ref_err + 2 * rounding + 1e-5, (f"{what}: kernel error {err:.3g} > 2 x reference error {ref_err:.3g} "
                                               f"+ 2 x rounding {rounding:.3g}")


def _frames(n_frames: int, T: int) -> torch.Tensor:
    return torch.arange(n_frames).repeat_interleave(T)


def _attention_case(qf, kf, window, causal, dtype, E=16, seed=0):
    torch.manual_seed(seed)
    H = 2
    q = torch.randn(1, H, len(qf), E) + 0.3
    k = torch.randn(1, H, len(kf), E) - 0.2
    v = torch.randn(1, H, len(kf), E)
    do = torch.randn(1, H, len(qf), E)

    def run(dt, impl):
        x = [t.to(dt).requires_grad_() for t in (q, k, v)]
        with use_impl(impl), (poisoned_outputs() if impl == "triton" else contextlib.nullcontext()):
            out = attention(*x, qf, kf, window, causal)
            grads = torch.autograd.grad(out, x, do.to(dt))
        return (out, *grads)

    return run(torch.float64, "torch"), run(dtype, "torch"), run(dtype, "triton")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal,window", [(True, 2), (True, 1), (False, 2)])
def test_attention_matches_reference(causal, window, dtype):
    qf = _frames(5, 7)                                              # 7 tokens per frame: ragged blocks
    kf = torch.cat([torch.tensor([-1] * 5), qf])                    # 5 empty cache slots
    exact, ref, kernel = _attention_case(qf, kf, window, causal, dtype)
    for name, a, b, c in zip(("out", "dq", "dk", "dv"), kernel, ref, exact):
        _close(a, b, c, f"{name} {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_query_that_sees_no_key_gets_zeros_and_finite_gradients(dtype):
    """Frame 3 with window 0 against keys of frame 5 and empty slots only: nothing is visible."""
    qf = torch.full((4,), 3)
    kf = torch.tensor([-1] * 4 + [5] * 4)
    assert not frame_visibility(qf, kf, 0, True).any()
    _, _, (out, dq, dk, dv) = _attention_case(qf, kf, 0, True, dtype)
    assert (out == 0).all() and (dq == 0).all() and (dk == 0).all() and (dv == 0).all()


def test_attention_cache_row_mask():
    """Streaming: one frame's queries against a cache with empty slots."""
    torch.manual_seed(1)
    T, E = 5, 32
    kf = torch.tensor([0] * T + [-1] * T + [3] * T + [4] * T + [5] * T)
    qf = torch.full((T,), 5)
    q, k, v = torch.randn(1, 3, T, E), torch.randn(1, 3, len(kf), E), torch.randn(1, 3, len(kf), E)
    ref = attention_reference(q, k, v, qf, kf, 2, True)
    with use_impl("triton"), poisoned_outputs():
        out = attention(q, k, v, qf, kf, 2, True)
    assert (out - ref).abs().max().item() < 1e-4
    vis = frame_visibility(qf, kf, 2, True)[0]
    assert vis.tolist() == [True] * T + [False] * T + [True] * (3 * T)


def test_unsupported_head_dim_is_a_clear_error():
    q = torch.randn(1, 1, 4, 24)
    f = torch.zeros(4, dtype=torch.long)
    with use_impl("triton"), pytest.raises(ValueError, match="head dims"):
        attention(q, q, q, f, f, 1, True)


def _grads(fn, inputs, dy, impl, dt):
    x = [t.to(dt).requires_grad_() for t in inputs]
    with use_impl(impl), (poisoned_outputs() if impl == "triton" else contextlib.nullcontext()):
        out = fn(*x)
        grads = torch.autograd.grad(out, [t for t in x if t.dim() == out.dim()], dy.to(dt))
    return (out, *grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_modulated_norm_matches_reference(dtype):
    from model.kernels.norm import modulated_norm

    torch.manual_seed(2)
    inputs = (torch.randn(3, 17, 97) * 2 + 0.5, torch.randn(3, 17, 97), torch.randn(3, 17, 97) * 0.3)  # D = 97
    dy = torch.randn(3, 17, 97)
    exact = _grads(modulated_norm, inputs, dy, "torch", torch.float64)
    ref = _grads(modulated_norm, inputs, dy, "torch", dtype)
    kernel = _grads(modulated_norm, inputs, dy, "triton", dtype)
    for name, a, b, c in zip(("out", "dx", "dshift", "dscale"), kernel, ref, exact):
        _close(a, b, c, f"{name} {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_matches_reference(dtype):
    from model.kernels.rope import apply_rope

    torch.manual_seed(3)
    N, E = 13, 20                                                    # half = 10: masked lanes
    ang = torch.rand(N, E // 2) * 6
    cos, sin = ang.cos(), ang.sin()
    x, dy = torch.randn(2, 3, N, E), torch.randn(2, 3, N, E)

    def rope(t):
        return apply_rope(t, cos, sin)

    exact = _grads(rope, (x,), dy, "torch", torch.float64)
    ref = _grads(rope, (x,), dy, "torch", dtype)
    kernel = _grads(rope, (x,), dy, "triton", dtype)
    for name, a, b, c in zip(("out", "dx"), kernel, ref, exact):
        _close(a, b, c, f"{name} {dtype}")


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
        with use_impl("triton"), poisoned_outputs():
            b = m(z, z, ctrl, t)
    assert (a - b).abs().max().item() < 1e-4
