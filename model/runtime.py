"""Process-level compute settings: the compute dtype for this device, and glibc's allocator.

The one place that decides fp32 or bf16. Everything that runs a model (the streaming engine, the
app, evaluation rollouts, training autocast, the benchmarks) asks ``compute_dtype(requested)``:

- CUDA: bf16 (fp32 where the GPU has no bf16).
- CPU: bf16 only where it is native *and* measured faster: the CPU must report AVX512_BF16 or
  AMX-BF16 and torch must run its AVX-512 kernels, and then a short matmul + conv probe (tens of
  milliseconds, once per process) must find bf16 ahead of fp32. Everywhere else fp32: on an
  AVX2-only CPU (most laptops, Zen 3 servers) bf16 is emulated in software, over 100x slower.

``requested`` is ``auto`` (the rule above), ``float32`` or ``bfloat16`` (forced, e.g. by a test or
``--dtype``). ``precision_info()`` says what ran and why, for readouts and benchmark JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import math
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CHOICES = ("auto", *DTYPES)
NAMES = {v: k for k, v in DTYPES.items()}
STORAGE_DTYPE = torch.bfloat16    # shipped weights on disk (half fp32's size); loading casts them to fp32
BF16_FLAGS = ("avx512_bf16", "amx_bf16")          # /proc/cpuinfo flags of native bf16 arithmetic


# ---------------------------------------------------------------------------- the CPU
@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_capability() -> str:
    """The kernels torch dispatches to on this CPU: ``AVX2``, ``AVX512``, ... (ATEN_CPU_CAPABILITY
    lowers it)."""
    return torch.backends.cpu.get_cpu_capability()


def native_bf16_cpu() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware and torch runs the kernels that use it."""
    return bool(cpu_flags() & set(BF16_FLAGS)) and cpu_capability().startswith("AVX512")


def _best_ms(fn, repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed calls after a warm-up: other processes only ever add time,
    so the minimum, not the median, is what the hardware does (a median under load once made a
    native-bf16 CPU pick fp32)."""
    fn()                                                          # warm-up (oneDNN primitive creation)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


@functools.lru_cache(maxsize=None)
def probe_cpu() -> dict[str, float]:
    """Milliseconds of a 512^3 matmul and a 64-channel 3x3 conv at 64x64 (the engine's two kinds
    of work: the DiT's matmuls, the decoder's convs), in fp32 and bf16, best of 5, on one thread (the
    dtypes' ratio is the instruction set's; several threads on a busy machine add scheduling noise of
    tens of milliseconds). About 50 ms where bf16 is native; called only there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _probe()
    finally:
        torch.set_num_threads(threads)


def _probe() -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 512, generator=g)
    x, w = torch.randn(1, 64, 64, 64, generator=g), torch.randn(64, 64, 3, 3, generator=g)
    out = {}
    with torch.no_grad():
        for name, dt in DTYPES.items():
            a_, b_, x_, w_ = a.to(dt), b.to(dt), x.to(dt), w.to(dt)
            out[f"matmul_{name}_ms"] = _best_ms(lambda: a_ @ b_)
            out[f"conv_{name}_ms"] = _best_ms(lambda: torch.nn.functional.conv2d(x_, w_, padding=1))
    return {k: round(v, 3) for k, v in out.items()}


# ---------------------------------------------------------------------------- the decision
@functools.lru_cache(maxsize=None)
def _auto(device_type: str) -> tuple[torch.dtype, str]:
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "CUDA with bf16"
        return torch.float32, "CUDA without bf16"
    if device_type != "cpu":
        return torch.float32, f"{device_type}: fp32"
    if not native_bf16_cpu():
        return torch.float32, f"CPU {cpu_capability()} without native bf16 (bf16 would be emulated)"
    p = probe_cpu()
    # the geometric mean of the two speed-ups: one op slowed by another process cannot outvote the other
    gain = math.sqrt(p["matmul_float32_ms"] / p["matmul_bfloat16_ms"] * p["conv_float32_ms"] / p["conv_bfloat16_ms"])
    if gain > 1.0:
        return torch.bfloat16, f"CPU {cpu_capability()} with native bf16, {gain:.1f}x fp32 in the probe"
    return torch.float32, f"CPU {cpu_capability()} with bf16 flags, but bf16 {1 / gain:.1f}x slower in the probe"


def _device_type(device: str | torch.device | None) -> str:
    return torch.device(device if device is not None else "cpu").type


def compute_dtype(requested: str | torch.dtype = "auto", device: str | torch.device | None = "cpu") -> torch.dtype:
    """The dtype to compute in on ``device``: ``requested`` when forced, else the rule in the module
    docstring (decided once per process and device type)."""
    if isinstance(requested, torch.dtype):
        if requested not in NAMES:
            raise ValueError(f"compute dtype must be one of {list(DTYPES)}, got {requested}")
        return requested
    if requested == "auto":
        return _auto(_device_type(device))[0]
    if requested not in DTYPES:
        raise ValueError(f"dtype must be one of {CHOICES}, got {requested!r}")
    return DTYPES[requested]


def dtype_name(dtype: torch.dtype) -> str:
    return NAMES.get(dtype, str(dtype).removeprefix("torch."))


def precision_info(dtype: torch.dtype | None = None, device: str | torch.device | None = "cpu") -> dict:
    """What ran and why, for readouts and benchmark JSON: the dtype, the CPU's capability, whether
    bf16 is native, what ``auto`` picks here and why."""
    dt = _device_type(device)
    auto, why = _auto(dt)
    out = {"dtype": dtype_name(dtype if dtype is not None else auto), "auto_dtype": dtype_name(auto), "auto_reason": why,
           "device": dt, "cpu_capability": cpu_capability(), "native_bf16": native_bf16_cpu()}
    if dt == "cpu" and native_bf16_cpu():
        out["probe_ms"] = probe_cpu()
    return out


def autocast(dtype: torch.dtype, device: str | torch.device | None = "cpu"):
    """Autocast to ``dtype`` on ``device``; fp32 is no autocast at all."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device_type(device), dtype=dtype)


def add_dtype_argument(parser: argparse.ArgumentParser) -> None:
    """``--dtype auto|float32|bfloat16`` (default auto)."""
    parser.add_argument("--dtype", choices=CHOICES, default="auto",
                        help="compute dtype: auto (bf16 on CUDA and on CPUs with native, faster bf16; "
                             "fp32 elsewhere), float32 or bfloat16")


# ---------------------------------------------------------------------------- glibc
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Stop glibc from returning large freed blocks to the OS after every op.

    By default each big tensor is mmapped and unmapped, so every training step page-faults its
    whole working set again (half the CPU time went to the kernel in an early probe; fp32 steps
    ran 2.7x slower here). Returns False where glibc's mallopt is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum on 64-bit
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        ok &= libc.mallopt(_M_TOP_PAD, 256 << 20)
        return bool(ok)
    except (OSError, AttributeError):
        return False
