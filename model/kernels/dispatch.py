"""Choosing between a Triton kernel and its PyTorch reference."""
from __future__ import annotations

import contextlib
import os
import threading

import torch

_state = threading.local()


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreter() -> bool:
    """Whether Triton kernels run in its CPU interpreter (TRITON_INTERPRET=1, set by the tests)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


@contextlib.contextmanager
def use_impl(impl: str | None):
    """Force "torch" or "triton" (or None = automatic) for the kernels called in this block."""
    if impl not in (None, "torch", "triton"):
        raise ValueError(f"impl must be 'torch', 'triton' or None, got {impl!r}")
    old = getattr(_state, "impl", None)
    _state.impl = impl
    try:
        yield
    finally:
        _state.impl = old


def choose(*tensors: torch.Tensor) -> str:
    """'triton' on CUDA tensors when Triton imports (or when forced), else 'torch'."""
    forced = getattr(_state, "impl", None)
    if forced is not None:
        return forced
    if all(t.is_cuda for t in tensors) and triton_available():
        return "triton"
    return "torch"
