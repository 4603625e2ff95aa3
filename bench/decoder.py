"""Decoder benchmark: one streaming decode step (a latent frame -> 4 video frames, with the
reference warp where the decoder has one), as the engine runs it (NHWC, the compute dtype),
side by side in one process:

- ``plain``: the decoder without a reference branch, upsampling convs run as upsample + conv
  (the decoder before the reference decoders and the fused upsampling);
- ``reference_unfused``: the model's decoder with its upsampling convs run as upsample + conv;
- ``reference``: the model's decoder as it runs (upsampling convs fused into transposed convs,
  model/autoencoder.py UpsampleConv);
- ``reference_light``: where the model's reference branch has 3x3 second convs, the same decoder
  with them made 1x1 (model/autoencoder.py with_ref_kernel; what ``--set ref_kernel=1`` trains).

    python -m bench.decoder [--model assets/world] [--repeats 10] [--threads N] [--dtype auto] --json

Prints one JSON object: the median ms of each variant over ``repeats`` rounds of 8 steps (the
variants alternate round by round, so a noisy machine slows them alike), the ratios, the dtype
and the CPU. Uses the model's shipped autoencoder (random weights for a preset name)."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.common import ASSETS, set_threads
from model.autoencoder import (REFERENCE_TENSORS, PRESETS, StreamingDecoder, UpsampleConv, VideoAutoencoder, with_ref_kernel,
                               with_reference)
from model.runtime import add_dtype_argument, compute_dtype, precision_info


def _load(model: str) -> VideoAutoencoder:
    d = Path(model) / "autoencoder"
    if d.is_dir():
        return VideoAutoencoder.from_pretrained(d)
    if model in PRESETS:
        return with_reference(VideoAutoencoder(PRESETS[model]))
    raise SystemExit(f"{model}: neither a model directory with autoencoder/ nor a preset ({sorted(PRESETS)})")


def _fused(ae: VideoAutoencoder, fused: bool) -> VideoAutoencoder:
    for m in ae.decoder.modules():
        if isinstance(m, UpsampleConv):
            m.fused = fused
    return ae


def run(model: str = str(ASSETS / "world"), repeats: int = 10, dtype: str = "auto", size: int = 128,
        threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    else:
        threads = set_threads()
    dt = compute_dtype(dtype)
    ae = _load(model).eval()
    plain = VideoAutoencoder(replace(ae.config, reference=False, pose_warp=False, ref_flow=False)).eval()
    plain.load_state_dict({k: v for k, v in ae.state_dict().items() if not k.startswith(REFERENCE_TENSORS)})
    # name -> (autoencoder, fused upsampling); the model's own decoder runs both ways, switched per round
    variants = {"plain": (plain, False), "reference_unfused": (ae, False), "reference": (ae, True)}
    if ae.config.reference and ae.config.ref_kernel != 1:
        variants["reference_light"] = (with_ref_kernel(ae, 1).eval(), True)
    fpl, C = ae.config.frames_per_latent, ae.config.latent_channels
    h = size // ae.config.spatial_factor
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, C, h, h, generator=g).to(dt)
    first = (torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(dt)
    maps = torch.eye(3).expand(1, fpl, 3, 3).clone()
    maps[..., 0, 2] = torch.linspace(0.01, 0.04, fpl)          # a pan: every frame warped
    times = {k: [] for k in variants}
    streams = {}
    with torch.no_grad():
        for k, (m, _) in variants.items():
            m.decoder.to(dt, memory_format=torch.channels_last)
            s = StreamingDecoder(m)
            s.reset(first if m.config.reference else None)
            s(z)
            streams[k] = s
        for _ in range(repeats):
            for k, s in streams.items():
                _fused(s.ae, variants[k][1])
                s(z, maps)                                        # warm (caches, allocator)
                for _ in range(8):
                    t = time.perf_counter()
                    s(z, maps)
                    times[k].append((time.perf_counter() - t) * 1e3)
    ms = {k: round(float(np.median(v)), 2) for k, v in times.items()}
    return {
        "model": model, "resolution": size, "threads": threads, "steps_each": 8 * repeats,
        "decode_ms_p50": ms,
        "reference_over_plain": round(ms["reference"] / ms["plain"], 3),
        "unfused_over_fused": round(ms["reference_unfused"] / ms["reference"], 3),
        **({"light_over_plain": round(ms["reference_light"] / ms["plain"], 3)} if "reference_light" in ms else {}),
        "precision": precision_info(dt),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ASSETS / "world"), help="model directory (autoencoder/) or an autoencoder preset")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: BENCH_THREADS or every core, as bench.stream)")
    add_dtype_argument(p)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    out = run(a.model, a.repeats, a.dtype, threads=a.threads)
    print(json.dumps(out) if a.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
