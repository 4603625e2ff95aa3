"""Fused LayerNorm (no affine) + adaLN modulation: y = LN(x) * (1 + scale) + shift."""
from __future__ import annotations

import torch
import torch.nn.functional as Fn

from model.kernels.dispatch import choose


def modulated_norm_reference(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x, shift, scale: (..., D) -> (..., D). Statistics in fp32, output in x's dtype."""
    y = Fn.layer_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    return y * (1 + scale) + shift


def modulated_norm(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    if choose(x) == "triton":
        from model.kernels.norm_triton import modulated_norm_triton

        return modulated_norm_triton(x, shift, scale, eps)
    return modulated_norm_reference(x, shift, scale, eps)
