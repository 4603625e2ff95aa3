"""The one place that picks the compute dtype (model/runtime.py): its rule on every kind of device,
its probe, its autocast, and that nothing else in the project hard-codes bf16."""
import math
import re
from pathlib import Path

import pytest
import torch

from model import runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(monkeypatch):
    """The decision is cached per process: clear it around each test that fakes the hardware."""
    runtime._auto.cache_clear()
    yield monkeypatch
    runtime._auto.cache_clear()


def _probe(fp32_ms: float, bf16_ms: float) -> dict:
    return {"matmul_float32_ms": fp32_ms, "conv_float32_ms": fp32_ms,
            "matmul_bfloat16_ms": bf16_ms, "conv_bfloat16_ms": bf16_ms}


def test_forced_dtypes_are_taken_as_they_are():
    assert runtime.compute_dtype("float32") == torch.float32
    assert runtime.compute_dtype("bfloat16") == torch.bfloat16
    assert runtime.compute_dtype(torch.float32) == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        runtime.compute_dtype("fp8")
    with pytest.raises(ValueError):
        runtime.compute_dtype(torch.float16)


def test_an_avx2_cpu_computes_in_fp32_without_probing(fresh):
    fresh.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    fresh.setattr(runtime, "cpu_capability", lambda: "AVX2")
    fresh.setattr(runtime, "probe_cpu", lambda: pytest.fail("an AVX2 CPU must not run the bf16 probe (emulated: slow)"))
    assert runtime.compute_dtype() == torch.float32
    info = runtime.precision_info()
    assert info["dtype"] == "float32" and info["cpu_capability"] == "AVX2" and not info["native_bf16"]
    assert "emulated" in info["auto_reason"]


def test_bf16_flags_with_torch_held_to_avx2_kernels_compute_in_fp32(fresh):
    fresh.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    fresh.setattr(runtime, "cpu_capability", lambda: "AVX2")           # ATEN_CPU_CAPABILITY=avx2
    assert runtime.compute_dtype() == torch.float32


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_a_native_bf16_cpu_computes_in_bf16_where_the_probe_finds_it_faster(fresh, flag):
    fresh.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512f", flag}))
    fresh.setattr(runtime, "cpu_capability", lambda: "AVX512")
    fresh.setattr(runtime, "probe_cpu", lambda: _probe(1.0, 0.3))
    assert runtime.compute_dtype() == torch.bfloat16
    runtime._auto.cache_clear()
    fresh.setattr(runtime, "probe_cpu", lambda: _probe(1.0, 1.5))      # flags, but slower in practice
    assert runtime.compute_dtype() == torch.float32
    assert "slower" in runtime.precision_info()["auto_reason"]


def test_one_op_slowed_by_another_process_does_not_flip_the_choice(fresh):
    """The two speed-ups are combined geometrically: a conv that another process slowed to 0.8x
    cannot outvote a matmul 25x faster in bf16 (a sum of milliseconds did, under load)."""
    fresh.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    fresh.setattr(runtime, "cpu_capability", lambda: "AVX512")
    fresh.setattr(runtime, "probe_cpu", lambda: {"matmul_float32_ms": 7.5, "matmul_bfloat16_ms": 0.3,
                                                 "conv_float32_ms": 32.0, "conv_bfloat16_ms": 39.0})
    assert runtime.compute_dtype() == torch.bfloat16


def test_the_probe_runs_on_one_thread_and_restores_the_count():
    if not runtime.native_bf16_cpu():
        pytest.skip("no native bf16 here: the probe never runs on this CPU")
    n = torch.get_num_threads()
    runtime.probe_cpu.cache_clear()
    runtime.probe_cpu()
    assert torch.get_num_threads() == n


def test_cuda_computes_in_bf16_where_the_gpu_has_it(fresh):
    fresh.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.compute_dtype("auto", "cuda") == torch.bfloat16
    runtime._auto.cache_clear()
    fresh.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.compute_dtype("auto", "cuda") == torch.float32


def test_the_decision_is_made_once_per_process(fresh):
    calls = []
    fresh.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    fresh.setattr(runtime, "cpu_capability", lambda: "AVX512")
    fresh.setattr(runtime, "probe_cpu", lambda: calls.append(1) or _probe(1.0, 0.5))
    for _ in range(3):
        runtime.compute_dtype()
    assert len(calls) == 1


def test_the_real_probe_times_both_dtypes():
    p = runtime.probe_cpu() if runtime.native_bf16_cpu() else None
    if p is None:
        pytest.skip("no native bf16 here: the probe never runs on this CPU (bf16 is emulated)")
    assert set(p) == {f"{op}_{dt}_ms" for op in ("matmul", "conv") for dt in ("float32", "bfloat16")}
    assert all(math.isfinite(v) and v > 0 for v in p.values())


def test_the_auto_choice_on_this_machine_follows_its_capability():
    dt = runtime.compute_dtype()
    if not runtime.native_bf16_cpu():
        assert dt == torch.float32
    info = runtime.precision_info(dt)
    assert info["dtype"] == runtime.dtype_name(dt) and info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_autocast_to_fp32_is_no_autocast_and_to_bf16_is():
    a = torch.randn(8, 8)
    with runtime.autocast(torch.float32):
        assert (a @ a).dtype == torch.float32
    with runtime.autocast(torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16


def test_every_command_takes_dtype():
    """``--dtype auto|float32|bfloat16`` on the app, the benchmarks, eval and train."""
    import argparse

    for mod in ("app/__main__.py", "bench/stream.py", "bench/app.py", "bench/soak.py", "bench/compare.py",
                "eval/__main__.py", "eval/baselines.py", "train/__main__.py"):
        text = (ROOT / mod).read_text()
        assert "add_dtype_argument(" in text or "CHOICES" in text, mod
    p = argparse.ArgumentParser()
    runtime.add_dtype_argument(p)
    assert p.parse_args([]).dtype == "auto" and p.parse_args(["--dtype", "float32"]).dtype == "float32"
    with pytest.raises(SystemExit):
        p.parse_args(["--dtype", "half"])


def test_no_bf16_literal_outside_the_runtime_module():
    """The compute dtype is decided in one place: code outside model/runtime.py never names
    torch.bfloat16 (tests that force a dtype on purpose may)."""
    hits = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("tests/", "runs/", ".venv/", "venv/")) or rel == "model/runtime.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"torch\.bfloat16|dtype=torch\.half\b", line):
                hits.append(f"{rel}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)
