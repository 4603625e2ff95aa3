"""Masked attention over a sequence or a KV cache (block-causal / sliding-window masks)."""
from __future__ import annotations

import torch
import torch.nn.functional as Fn

from model.kernels.dispatch import choose


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """q (B, H, Nq, E), k, v (B, H, Nk, E), mask (Nq, Nk) or (1, Nk) bool, True = visible.

    Every query must see at least one key. Returns (B, H, Nq, E).
    """
    return Fn.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if choose(q) == "triton":
        from model.kernels.attention_triton import attention_triton

        return attention_triton(q, k, v, mask)
    return attention_reference(q, k, v, mask)
