"""Our 1-NFE streaming step against slower ways to make the same latent frame, side by side.

    python -m bench.compare [--preset world-128] [--steps 24] [--repeats 3] --json

Every ratio is (their time per latent frame) / (ours), all measured in this one run on the same
network (shipped weights when they exist, else random ones), in the same dtype (``--dtype``,
default auto: model/runtime.py), same threads:
- ``vs_multistep_8``: the same network sampled with 8 steps over the KV cache (7 passes that
  read it, the 8th writes it): the cheapest 8-step causal sampler;
- ``vs_two_pass``: denoise, then re-run on the clean frame to fill the cache (diffusion forcing,
  CausVid, Self-Forcing); AAPT's recycled input makes the second pass unnecessary (paper §2.1);
- ``vs_no_kv_cache``: no cache, every step recomputes the attended window (first frame + N
  previous frames + the new one);
- ``vs_diffusers_skyreels_df``: diffusers' ``SkyReelsV2DiffusionForcingPipeline`` with a random
  transformer of the same width, depth, heads and tokens per frame, 8 steps, no guidance,
  latents out (no VAE), generating 9 latent frames; its time divided by 9.
Times are medians over ``--repeats`` runs of ``--steps`` latent frames each.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bench.common import DEFAULT, PRESETS, build_models, matmul_peak_gflops, set_threads
from model.dit import VideoDiT
from model.runtime import add_dtype_argument, autocast, compute_dtype, keep_freed_memory, precision_info


def _inputs(dit: VideoDiT, dtype: torch.dtype):
    c = dit.config
    z = torch.randn(1, c.latent_channels, c.latent_size, c.latent_size, dtype=dtype)
    ctrl = torch.randn(1, c.tokens_per_frame, c.control_features, dtype=dtype) if c.control_features else None
    warp = torch.eye(3)[None] if c.reproject else None
    return z, ctrl, warp


@torch.no_grad()
def time_cached(dit: VideoDiT, steps: int, passes: int, dtype: torch.dtype) -> float:
    """ms per latent frame with the KV cache and ``passes`` network calls per frame (the last
    one writes the cache)."""
    z, ctrl, warp = _inputs(dit, dtype)
    cache = dit.new_cache(1, dtype=dtype)
    zero, one = torch.zeros(1), torch.ones(1)
    dit.step(cache, z, z, ctrl, zero, 0, warp)
    t = time.perf_counter()
    for k in range(1, steps + 1):
        for p in range(passes):
            z = dit.step(cache, z, torch.randn_like(z), ctrl, one if p < passes - 1 else zero, k, warp,
                         update_cache=p == passes - 1)
    return (time.perf_counter() - t) * 1e3 / steps


@torch.no_grad()
def time_no_cache(dit: VideoDiT, steps: int, dtype: torch.dtype) -> float:
    """ms per latent frame recomputing the attended window every step (block-causal, no cache)."""
    z, ctrl, warp = _inputs(dit, dtype)
    N = dit.config.window
    frames = [z]
    t = time.perf_counter()
    for k in range(1, steps + 1):
        idx = list(range(max(1, k - N), k))
        pos = torch.tensor([0] + idx + [k])
        rec = torch.stack([frames[0]] + [frames[i - 1] for i in idx] + [frames[-1]], 1)
        noisy = torch.stack([frames[0]] + [frames[i] for i in idx] + [torch.randn_like(z)], 1)
        F = len(pos)
        c = None if ctrl is None else ctrl[:, None].expand(1, F, *ctrl.shape[1:])
        w = None if warp is None else warp[:, None].expand(1, F, 3, 3)
        tt = torch.ones(1, F)
        tt[:, :-1] = 0.0
        out = dit(rec, noisy, c, tt, mode="causal", positions=pos, warp=w)[:, -1]
        frames.append(out)
    return (time.perf_counter() - t) * 1e3 / steps


@torch.no_grad()
def time_skyreels_df(dit: VideoDiT, dtype: torch.dtype, latent_frames: int = 9, steps: int = 8) -> float:
    """ms per latent frame of diffusers' diffusion-forcing pipeline with a transformer of our size."""
    from diffusers import (AutoencoderKLWan, SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel,
                           UniPCMultistepScheduler)

    c = dit.config
    heads = c.heads
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, c.patch, c.patch), num_attention_heads=heads, attention_head_dim=c.dim // heads,
        in_channels=c.latent_channels, out_channels=c.latent_channels, text_dim=64, freq_dim=256,
        ffn_dim=int(c.dim * c.mlp_ratio), num_layers=c.depth, rope_max_seq_len=1024).eval()
    vae = AutoencoderKLWan(base_dim=8, z_dim=c.latent_channels, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True]).eval()
    pipe = SkyReelsV2DiffusionForcingPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                                              scheduler=UniPCMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True,
                                                                                prediction_type="flow_prediction"))
    pipe.set_progress_bar_config(disable=True)
    size = c.latent_size * 8
    emb = torch.randn(1, 16, 64, dtype=dtype)
    kw = dict(prompt=None, prompt_embeds=emb, negative_prompt_embeds=emb, height=size, width=size,
              num_frames=1 + 4 * (latent_frames - 1), base_num_frames=1 + 4 * (latent_frames - 1),
              num_inference_steps=steps, guidance_scale=1.0, output_type="latent", causal_block_size=1)
    # fp32 weights under autocast: its matmuls run in our dtype, while the modules diffusers keeps
    # in fp32 (rope, norms, time embedding) stay there
    with autocast(dtype):
        pipe(**dict(kw, num_inference_steps=1))                           # warm-up
        t = time.perf_counter()
        pipe(**kw)
    return (time.perf_counter() - t) * 1e3 / latent_frames


def run(preset: str, steps: int, repeats: int, dtype: str = "auto") -> dict:
    keep_freed_memory()
    threads = set_threads()
    _, dit, trained = build_models(preset)
    dtype = compute_dtype(dtype)
    dit = dit.to(dtype).eval()
    time_cached(dit, 3, 1, dtype)                                         # warm-up
    names = ("ours", "multistep_8", "two_pass", "no_kv_cache", "diffusers_skyreels_df")
    res: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(repeats):  # interleaved, so machine noise hits every method alike
        res["ours"].append(time_cached(dit, steps, 1, dtype))
        res["multistep_8"].append(time_cached(dit, steps, 8, dtype))
        res["two_pass"].append(time_cached(dit, steps, 2, dtype))
        res["no_kv_cache"].append(time_no_cache(dit, steps, dtype))
        res["diffusers_skyreels_df"].append(time_skyreels_df(dit, dtype))
    med = {k: float(np.median(v)) for k, v in res.items()}
    out = {"preset": preset, "trained": trained, "threads": threads, "steps": steps, "repeats": repeats,
           "window": dit.config.window, "tokens_per_frame": dit.config.tokens_per_frame,
           "precision": precision_info(dtype), "matmul_peak_gflops": round(matmul_peak_gflops(dtype), 1)}
    out.update({f"ms_per_latent_{k}": round(v, 2) for k, v in med.items()})
    out.update({f"vs_{k}": round(v / med["ours"], 2) for k, v in med.items() if k != "ours"})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT)
    p.add_argument("--steps", type=int, default=24, help="latent frames per timed run")
    p.add_argument("--repeats", type=int, default=3)
    add_dtype_argument(p)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    r = run(a.preset, a.steps, a.repeats, a.dtype)
    print(json.dumps(r) if a.json else "\n".join(f"{k:28s} {v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
