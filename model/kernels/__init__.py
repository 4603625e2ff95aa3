"""Triton kernels for the generator hot path, each beside its PyTorch reference and a dispatcher.

``attention``, ``modulated_norm`` and ``apply_rope`` pick the Triton kernel for CUDA tensors
(when Triton is importable) and the PyTorch reference otherwise. ``use_impl("torch")`` or
``use_impl("triton")`` forces one path (tests run the Triton one in the CPU interpreter).
"""
from model.kernels.dispatch import use_impl
from model.kernels.attention import attention
from model.kernels.norm import modulated_norm
from model.kernels.rope import apply_rope

__all__ = ["attention", "modulated_norm", "apply_rope", "use_impl"]
