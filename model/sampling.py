"""Samplers of the DiT: multi-step (teacher, adapted model) and one-step streaming rollouts.

All work on normalised latents. ``z0`` (B, C, h, w) is the first frame's code; ``control``
(B, 1 + K, T, Cc) holds per-token controls of latent frames 0..K (row 0 unused); ``warp``
(B, 1 + K, 3, 3), for models that reproject, the maps from each latent frame's camera to the
previous one's (row 0 the identity). Multi-step
sampling uses diffusers' FlowMatchEulerDiscreteScheduler with the shifted schedule of App. B.
"""
from __future__ import annotations

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from model.dit import VideoDiT, maps_from_first


def make_scheduler(steps: int, shift: float) -> FlowMatchEulerDiscreteScheduler:
    """Euler flow-matching scheduler over sigmas shift(1 - i/steps), i = 0..steps-1, then 0."""
    s = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    s.set_timesteps(sigmas=list(np.linspace(1.0, 1.0 / steps, steps)))
    return s


def _v_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Flow velocity v = eps - x0 = (x_t - x0) / sigma for x_t = (1 - sigma) x0 + sigma eps."""
    return (x_t - x0) / sigma


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Noise drawn on the generator's device (seeded streams stay the same on every device)."""
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def _control_or_none(dit: VideoDiT, control: torch.Tensor | None) -> torch.Tensor | None:
    return control if dit.config.control_features else None


@torch.no_grad()
def sample_bidirectional(dit: VideoDiT, z0: torch.Tensor, control: torch.Tensor | None, K: int, steps: int,
                         shift: float, generator: torch.Generator | None = None,
                         warp: torch.Tensor | None = None) -> torch.Tensor:
    """The offline teacher: all K frames denoised jointly, the first frame concatenated to each
    on channels (image-to-video conditioning). Returns (B, 1 + K, C, h, w)."""
    B = z0.shape[0]
    x = _randn((B, K, *z0.shape[1:]), z0, generator)
    recycled = z0[:, None].expand(B, 1 + K, *z0.shape[1:])           # the first frame on every frame
    warp = None if warp is None else maps_from_first(warp)            # reprojected from the first frame
    sched = make_scheduler(steps, shift)
    for i, ts in enumerate(sched.timesteps):
        sigma = float(sched.sigmas[i])
        t = torch.full((B, 1 + K), sigma, device=z0.device)
        t[:, 0] = 0.0
        x0 = dit(recycled, torch.cat([z0[:, None], x], 1), _control_or_none(dit, control), t, mode="bidirectional",
                 warp=warp)
        x = sched.step(_v_from_x0(x, x0[:, 1:], sigma), ts, x).prev_sample
    return torch.cat([z0[:, None], x], 1)


@torch.no_grad()
def causal_frame(dit: VideoDiT, out, k: int, noise: torch.Tensor, control: torch.Tensor | None,
                 warp: torch.Tensor | None, steps: int, shift: float) -> torch.Tensor:
    """Latent frame k >= 1 of the adapted model's multi-step causal rollout, given the frames before it.

    ``out[j]`` (B, C, h, w) is the clean latent of frame j (``out[0]`` the first frame; only frames
    k - window - 1 .. k - 1 are read, so earlier entries may be None); ``noise[:, j - 1]`` is frame
    j's noise: frame k's starting point and, for the window's past frames, what re-noises them.
    ``control`` and ``warp`` hold rows for frames 0..k (or more). As in training, every frame of
    the attended window shares the step's noise level: past frames are re-noised from their clean
    latents, and each frame's recycled input is the clean latent before it. No KV cache (the
    cache would hold keys from other noise levels). Returns (B, C, h, w).
    """
    z0 = out[0]
    B = z0.shape[0]
    idx = list(range(max(1, k - dit.config.window), k + 1))            # window frames, current last
    pos = torch.tensor([0] + idx, device=z0.device)
    recycled = torch.stack([z0] + [out[j - 1] for j in idx], 1)
    past = idx[:-1]
    clean_past = torch.stack([out[j] for j in past], 1) if past else None
    past_noise = noise[:, [j - 1 for j in past]] if past else None
    ctrl = torch.cat([control[:, :1], control[:, idx]], 1) if dit.config.control_features else None
    w = None if warp is None else torch.cat([warp[:, :1], warp[:, idx]], 1)
    sched = make_scheduler(steps, shift)
    x = noise[:, k - 1]
    for i, ts in enumerate(sched.timesteps):
        sigma = float(sched.sigmas[i])
        parts = [z0[:, None]]
        if clean_past is not None:
            parts.append((1 - sigma) * clean_past + sigma * past_noise)
        parts.append(x[:, None])
        t = torch.full((B, len(idx) + 1), sigma, device=z0.device)
        t[:, 0] = 0.0
        x0 = dit(recycled, torch.cat(parts, 1), ctrl, t, mode="causal", positions=pos, warp=w)[:, -1]
        x = sched.step(_v_from_x0(x, x0, sigma), ts, x).prev_sample
    return x


@torch.no_grad()
def sample_causal(dit: VideoDiT, z0: torch.Tensor, control: torch.Tensor | None, K: int, steps: int,
                  shift: float, generator: torch.Generator | None = None,
                  warp: torch.Tensor | None = None) -> torch.Tensor:
    """The adapted (teacher-forced) model, frame by frame with ``steps`` steps each (``causal_frame``,
    with fixed noise per frame). Returns (B, 1 + K, C, h, w)."""
    out = [z0]
    eps_all = _randn((z0.shape[0], K, *z0.shape[1:]), z0, generator)
    for k in range(1, K + 1):
        out.append(causal_frame(dit, out, k, eps_all, control, warp, steps, shift))
    return torch.stack(out, 1)


@torch.no_grad()
def rollout_one_step(dit: VideoDiT, z0: torch.Tensor, control: torch.Tensor | None, K: int,
                     generator: torch.Generator | None = None, warp: torch.Tensor | None = None,
                     recycle=None) -> torch.Tensor:
    """The one-step generator streaming with its KV cache (1 NFE per latent frame), as in the app.

    ``recycle(k, z_k)``, if given, makes the input recycled after latent k (default: z_k itself;
    model/autoencoder.py PixelLoop re-encodes the frames shown). Returns (B, 1 + K, C, h, w), the
    generated latents.
    """
    B = z0.shape[0]
    cache = dit.new_cache(B, device=z0.device, dtype=z0.dtype)
    zero_t = torch.zeros(B, device=z0.device)
    one_t = torch.ones(B, device=z0.device)
    ctrl = (lambda k: control[:, k]) if dit.config.control_features else (lambda k: None)
    wk = (lambda k: warp[:, k]) if warp is not None else (lambda k: None)
    dit.step(cache, z0, z0, ctrl(0), zero_t, 0, wk(0))
    out, rec = [z0], z0
    for k in range(1, K + 1):
        eps = _randn(z0.shape, z0, generator)
        out.append(dit.step(cache, rec, eps, ctrl(k), one_t, k, wk(k)))
        rec = out[-1] if recycle is None else recycle(k, out[-1])
    return torch.stack(out, 1)
