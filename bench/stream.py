"""Streaming benchmark: the engine's real-time step, as the app runs it.

    python -m bench.stream [--preset world-128] [--model DIR] [--reencode] [--frames 1440] [--compile] [--dtype auto] --json

Prints one JSON object: fps (video frames per second at the median step), step_ms_p50/p95,
step_ms_p95 near frame 100 and at the end (flatness), first_frame_ms, decode_ms_p50, dit_ms_p50,
rss_mb_start/end, resolution, nfe_per_latent_frame; the GFLOP of one step counted by torch (DiT,
decoder and both) and the GFLOP/s each achieves, beside the matmul peak of the dtype in use
measured in the same run; ``precision``: the dtype that ran, the CPU's capability and why
``auto`` picks what it picks here (model/runtime.py). Uses the shipped weights when they exist
(``trained: true``), random ones otherwise. ``--frames`` counts video frames (4 per step).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import DEFAULT, PRESETS, controls_for, engine_for, matmul_peak_gflops, rss_mb, set_threads
from model.runtime import add_dtype_argument, keep_freed_memory, precision_info


def flops_per_step(engine) -> tuple[float, float]:
    """FLOPs of one step's generator call and of its decode (counted by torch on a throwaway
    cache and decoder state)."""
    dit = engine.dit
    cache = dit.new_cache(1, dtype=engine.dtype)
    z = engine.state.prev
    ctrl, warp = engine._zero_control(), engine._identity_warp()
    with torch.no_grad():
        dit.step(cache, z, z, ctrl, torch.zeros(1), 0, warp)
        with FlopCounterMode(display=False) as fc:
            dit.step(cache, z, z, ctrl, torch.ones(1), 1, warp)
        with FlopCounterMode(display=False) as fd:
            engine.ae.decode_step(z, z)
            if engine.reencode:                   # the frames shown, encoded again (model/autoencoder.py PixelLoop)
                x = torch.zeros(1, 1 + engine.fpl, 3, engine.size, engine.size, dtype=next(engine.ae.encoder.parameters()).dtype)
                engine.ae.encode_chunks(x)
    return float(fc.get_total_flops()), float(fd.get_total_flops())


def run(preset: str, frames: int, compile: bool = False, dtype: str = "auto", model: str | None = None,
        reencode: bool = False) -> dict:
    keep_freed_memory()
    threads = set_threads()
    engine, trained = engine_for(preset, compile, dtype, model, reencode)
    steps = max(2, frames // engine.fpl)
    first = np.random.default_rng(0).integers(0, 255, (engine.size, engine.size, 3), dtype=np.uint8)
    controls = controls_for(engine, steps)
    engine.reset(first, seed=0)
    for c in controls[:5]:                                           # warm-up (and compile)
        engine.step(c)
    t = time.perf_counter()
    engine.reset(first, seed=0)
    first_ms = (time.perf_counter() - t) * 1e3
    rss0 = rss_mb()
    step_ms, dit_ms, dec_ms, ctl_ms = [], [], [], []
    for c in controls:
        t = time.perf_counter()
        engine.step(c)
        step_ms.append((time.perf_counter() - t) * 1e3)
        dit_ms.append(engine.timing.dit_ms)
        dec_ms.append(engine.timing.decode_ms)
        ctl_ms.append(engine.timing.control_ms)
    rss1 = rss_mb()
    dit_flops, dec_flops = flops_per_step(engine)
    peak = matmul_peak_gflops(engine.dtype)
    s = np.array(step_ms)
    early = s[25:50] if len(s) >= 50 else s[: max(1, len(s) // 4)]   # around video frame 100-200
    late = s[-25:]
    return {
        "preset": preset, "model": model, "trained": trained, "reference_decoder": engine.ae.config.reference,
        "pose_warp": engine.ae.config.pose_warp,
        "reencode": reencode, "resolution": engine.size, "frames": steps * engine.fpl,
        "threads": threads, "compile": compile,
        "fps": round(engine.fpl * 1000.0 / float(np.median(s)), 2),
        "step_ms_p50": round(float(np.median(s)), 2), "step_ms_p95": round(float(np.percentile(s, 95)), 2),
        "step_ms_p95_early": round(float(np.percentile(early, 95)), 2),
        "step_ms_p95_late": round(float(np.percentile(late, 95)), 2),
        "first_frame_ms": round(first_ms, 2),
        "control_ms_p50": round(float(np.median(ctl_ms)), 2),     # controls to tokens (and a pose model's bone warps)
        "dit_ms_p50": round(float(np.median(dit_ms)), 2), "decode_ms_p50": round(float(np.median(dec_ms)), 2),
        "decode_ms_per_frame": round(float(np.median(dec_ms)) / engine.fpl, 2),
        "rss_mb_start": round(rss0, 1), "rss_mb_end": round(rss1, 1),
        "nfe_per_latent_frame": 1,
        "precision": precision_info(engine.dtype, engine.device),
        "dit_gflop_per_step": round(dit_flops / 1e9, 3),
        "decode_gflop_per_step": round(dec_flops / 1e9, 3),
        "step_gflop": round((dit_flops + dec_flops) / 1e9, 3),
        "dit_achieved_gflops": round(dit_flops / float(np.median(dit_ms)) / 1e6, 1),
        "decode_achieved_gflops": round(dec_flops / float(np.median(dec_ms)) / 1e6, 1),
        "step_achieved_gflops": round((dit_flops + dec_flops) / float(np.median(s)) / 1e6, 1),
        "matmul_peak_gflops": round(peak, 1),
        "step_share_of_peak": round((dit_flops + dec_flops) / float(np.median(s)) / 1e6 / peak, 3),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT)
    p.add_argument("--frames", type=int, default=1440, help="video frames to generate (4 per step)")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator step")
    p.add_argument("--model", default=None, help="model directory (autoencoder/ and generator/) instead of the shipped one")
    p.add_argument("--reencode", action="store_true", help="recycle the frames shown, encoded again (PixelLoop)")
    add_dtype_argument(p)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    r = run(a.preset, a.frames, a.compile, a.dtype, a.model, a.reencode)
    print(json.dumps(r) if a.json else "\n".join(f"{k:22s} {v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
