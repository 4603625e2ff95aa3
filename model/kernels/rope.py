"""Rotary position embedding, half-split pairs: dims i and i + E/2 rotate by angle[i].

Reference, then the Triton kernel (the backward is the same rotation by the negative angle),
the autograd Function, and the dispatcher ``apply_rope``.
"""
from __future__ import annotations

import torch

from model.kernels.dispatch import choose


# ----------------------------------------------------------------------------- reference
def apply_rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, N, E); cos, sin (N, E/2) -> (B, H, N, E)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)
    return out.to(x.dtype)


# ----------------------------------------------------------------------------- Triton
try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None

if triton is not None:

    @triton.jit
    def _rope(X, COS, SIN, Y,          # X, Y: (BH, N, E) rows; COS, SIN: (N, E/2) fp32
              N, HALF, sign,           # sign = -1 rotates backwards (the gradient)
              BLOCK: tl.constexpr):
        row = tl.program_id(0)        # one (bh, n) row
        n = row % N
        c = tl.arange(0, BLOCK)
        m = c < HALF
        x1 = tl.load(X + row * 2 * HALF + c, mask=m, other=0.0).to(tl.float32)
        x2 = tl.load(X + row * 2 * HALF + HALF + c, mask=m, other=0.0).to(tl.float32)
        cs = tl.load(COS + n * HALF + c, mask=m, other=1.0)
        sn = tl.load(SIN + n * HALF + c, mask=m, other=0.0) * sign
        tl.store(Y + row * 2 * HALF + c, (x1 * cs - x2 * sn).to(Y.dtype.element_ty), mask=m)
        tl.store(Y + row * 2 * HALF + HALF + c, (x1 * sn + x2 * cs).to(Y.dtype.element_ty), mask=m)


def _launch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    E = x.shape[-1]
    if E % 2:
        raise ValueError(f"RoPE needs an even head dim, got {E}")
    N = x.shape[-2]
    x3 = x.reshape(-1, N, E).contiguous()
    y = torch.empty_like(x3)
    c, s = cos.float().contiguous(), sin.float().contiguous()
    _rope[(x3.shape[0] * N,)](x3, c, s, y, N, E // 2, sign, BLOCK=triton.next_power_of_2(E // 2))
    return y.view(x.shape)


class _TritonRope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _launch(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, dy):
        cos, sin = ctx.saved_tensors
        return _launch(dy, cos, sin, -1.0), None, None


def apply_rope_triton(x, cos, sin):
    if triton is None:
        raise RuntimeError("triton is not installed")
    return _TritonRope.apply(x, cos, sin)


# ----------------------------------------------------------------------------- dispatcher
def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate head dims by position angles; Triton on CUDA, the PyTorch reference elsewhere."""
    if choose(x) == "triton":
        return apply_rope_triton(x, cos, sin)
    return apply_rope_reference(x, cos, sin)
