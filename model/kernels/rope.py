"""Rotary position embedding, half-split pairs: dims i and i + E/2 rotate by angle[i]."""
from __future__ import annotations

import torch

from model.kernels.dispatch import choose


def apply_rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, N, E); cos, sin (N, E/2) -> (B, H, N, E)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)
    return out.to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    if choose(x) == "triton":
        from model.kernels.rope_triton import apply_rope_triton

        return apply_rope_triton(x, cos, sin)
    return apply_rope_reference(x, cos, sin)
