"""Shared helpers of the benchmarks: model presets, peak matmul speed, memory, statistics."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from model.autoencoder import PRESETS as AE_PRESETS
from model.autoencoder import VideoAutoencoder
from model.config import replace
from model.dit import PRESETS as DIT_PRESETS
from model.dit import VideoDiT
from model.engine import StreamingEngine

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# bench preset -> (autoencoder preset, DiT preset, resolution, control, shipped model dir)
PRESETS = {
    "world-128": ("small", "small", 128, "camera", "world"),
    "avatar-128": ("small", "small", 128, "pose", "avatar"),
    "world-256": ("small", "small-256", 256, "camera", "world-256"),
}
DEFAULT = "world-128"


def build_models(preset: str, model: str | Path | None = None) -> tuple[VideoAutoencoder, VideoDiT, bool]:
    """(autoencoder, generator, trained?): the weights in ``model`` (a model directory), else the
    shipped ones when they exist, else random ones."""
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    ae_p, dit_p, size, control, shipped = PRESETS[preset]
    d = Path(model) if model else ASSETS / shipped
    if model and not ((d / "generator").is_dir() and (d / "autoencoder").is_dir()):
        raise SystemExit(f"{d} has no autoencoder/ and generator/")
    if (d / "generator").is_dir() and (d / "autoencoder").is_dir():
        return VideoAutoencoder.from_pretrained(d / "autoencoder"), VideoDiT.from_pretrained(d / "generator"), True
    ae = VideoAutoencoder(AE_PRESETS[ae_p])
    dit = VideoDiT(replace(DIT_PRESETS[dit_p], latent_channels=ae.config.latent_channels,
                           latent_size=size // ae.config.spatial_factor, control=control,
                           frames_per_latent=ae.config.frames_per_latent))
    with torch.no_grad():  # random but not degenerate (adaLN-Zero would make every block the identity)
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return ae, dit, False


def engine_for(preset: str, compile: bool = False, dtype: str | torch.dtype = "auto", model: str | None = None,
               reencode: bool = False) -> tuple[StreamingEngine, bool]:
    ae, dit, trained = build_models(preset, model)
    return StreamingEngine(ae, dit, compile=compile, dtype=dtype, reencode=reencode), trained


def matmul_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Measured dense matmul throughput on this machine in ``dtype`` (median of ``repeats``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n ** 3 / float(np.median(ts)) / 1e9


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; falls back to ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def camera_controls(n: int, seed: int = 0) -> np.ndarray:
    """(n, 4, 7) human-like camera controls for n steps (from the training trajectories)."""
    from data.trajectories import camera_trajectory

    c = camera_trajectory(np.random.default_rng(seed), 1 + 4 * n)[1:]
    return c.reshape(n, 4, -1)


def pose_controls(n: int) -> np.ndarray:
    """(n, 4, 33, 4) landmarks of a standing person swaying (synthetic, for timing)."""
    base = np.zeros((33, 4), np.float32)
    base[:, 0] = np.linspace(0.35, 0.65, 33)
    base[:, 1] = np.linspace(0.2, 0.9, 33)
    base[:, 3] = 1.0
    out = np.repeat(base[None, None], n, 0).repeat(4, 1)
    out[..., 0] += 0.05 * np.sin(np.arange(n * 4).reshape(n, 4, 1) / 10.0)
    return out


def controls_for(engine: StreamingEngine, n: int) -> list:
    if engine.mode == "camera":
        return list(camera_controls(n))
    if engine.mode == "pose":
        return list(pose_controls(n))
    return [None] * n


def set_threads() -> int:
    n = int(os.environ.get("BENCH_THREADS", "0")) or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n
