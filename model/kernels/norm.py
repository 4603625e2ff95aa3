"""Fused LayerNorm (no affine) + adaLN modulation: y = LN(x) * (1 + scale) + shift.

Reference, then the Triton forward/backward kernels (one program per row), the autograd
Function, and the dispatcher ``modulated_norm``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as Fn

from model.kernels.dispatch import choose


# ----------------------------------------------------------------------------- reference
def modulated_norm_reference(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x, shift, scale: (..., D) -> (..., D). Statistics in fp32, output in x's dtype."""
    y = Fn.layer_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    return y * (1 + scale) + shift


# ----------------------------------------------------------------------------- Triton
try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None

if triton is not None:

    @triton.jit
    def _mnorm_fwd(X, SHIFT, SCALE, Y, RSTD,   # X, SHIFT, SCALE, Y: (R, D) rows; RSTD: (R,) fp32
                   D, eps, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < D
        x = tl.load(X + row * D + cols, mask=m, other=0.0).to(tl.float32)
        mean = tl.sum(x, 0) / D
        xc = tl.where(m, x - mean, 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, 0) / D + eps)
        sc = tl.load(SCALE + row * D + cols, mask=m, other=0.0).to(tl.float32)
        sh = tl.load(SHIFT + row * D + cols, mask=m, other=0.0).to(tl.float32)
        y = xc * rstd * (1.0 + sc) + sh
        tl.store(Y + row * D + cols, y.to(Y.dtype.element_ty), mask=m)
        tl.store(RSTD + row, rstd)

    @triton.jit
    def _mnorm_bwd(X, SCALE, RSTD, DY, DX, DSHIFT, DSCALE, D, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < D
        x = tl.load(X + row * D + cols, mask=m, other=0.0).to(tl.float32)
        dy = tl.load(DY + row * D + cols, mask=m, other=0.0).to(tl.float32)
        sc = tl.load(SCALE + row * D + cols, mask=m, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row)
        mean = tl.sum(x, 0) / D
        xhat = tl.where(m, (x - mean) * rstd, 0.0)
        g = dy * (1.0 + sc)                                   # d loss / d xhat
        dx = rstd * (g - tl.sum(g, 0) / D - xhat * tl.sum(g * xhat, 0) / D)
        tl.store(DX + row * D + cols, dx.to(DX.dtype.element_ty), mask=m)
        tl.store(DSHIFT + row * D + cols, dy.to(DSHIFT.dtype.element_ty), mask=m)
        tl.store(DSCALE + row * D + cols, (dy * xhat).to(DSCALE.dtype.element_ty), mask=m)


class _TritonModulatedNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, shift, scale, eps):
        D = x.shape[-1]
        shift, scale = torch.broadcast_to(shift, x.shape), torch.broadcast_to(scale, x.shape)
        x2, sh2, sc2 = (t.reshape(-1, D).contiguous() for t in (x, shift, scale))
        y = torch.empty_like(x2)
        rstd = torch.empty(x2.shape[0], device=x.device, dtype=torch.float32)
        block = triton.next_power_of_2(D)
        _mnorm_fwd[(x2.shape[0],)](x2, sh2, sc2, y, rstd, D, eps, BLOCK=block)
        ctx.save_for_backward(x2, sc2, rstd)
        ctx.shape, ctx.block = x.shape, block
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x2, sc2, rstd = ctx.saved_tensors
        D = x2.shape[-1]
        dy2 = dy.reshape(-1, D).contiguous()
        dx, dsh, dsc = torch.empty_like(x2), torch.empty_like(x2), torch.empty_like(x2)
        _mnorm_bwd[(x2.shape[0],)](x2, sc2, rstd, dy2, dx, dsh, dsc, D, BLOCK=ctx.block)
        s = ctx.shape
        return dx.view(s), dsh.view(s), dsc.view(s), None


def modulated_norm_triton(x, shift, scale, eps=1e-6):
    if triton is None:
        raise RuntimeError("triton is not installed")
    return _TritonModulatedNorm.apply(x, shift, scale, eps)


# ----------------------------------------------------------------------------- dispatcher
def modulated_norm(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LN(x) * (1 + scale) + shift; Triton on CUDA, the PyTorch reference elsewhere."""
    if choose(x) == "triton":
        return modulated_norm_triton(x, shift, scale, eps)
    return modulated_norm_reference(x, shift, scale, eps)
