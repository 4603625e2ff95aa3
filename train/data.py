"""Batches for training: pixel chunks from shards (autoencoder) and latent windows (DiT)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as Fn

from data.shards import ShardReader


def to_pixels(frames_uint8: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.array(frames_uint8, copy=True)).float().div_(127.5).sub_(1.0)
    return x.movedim(-1, -3)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred by a Gaussian of ``sigma`` pixels (separable, reflected edges)."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = (g / g.sum()).to(x.dtype)
    C = x.shape[1]
    x = Fn.pad(x, (r, r, r, r), mode="reflect")
    x = Fn.conv2d(x, g.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return Fn.conv2d(x, g.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


class ChunkSampler:
    """Random crops of what the decoder sees at inference, in three kinds:
    - first chunk: the predecessor latent is the still code of the context frame;
    - later chunk: the predecessor latent is the code of the 4 frames before;
    - still: a single frame as its own chunk (how the first frame is coded).
    """

    def __init__(self, reader: ShardReader, fpl: int, crop: int, still_fraction: float, first_fraction: float = 0.3):
        self.reader, self.fpl, self.crop = reader, fpl, crop
        self.still, self.first = still_fraction, first_fraction
        F, H, W, _ = reader.frame_shape
        if crop > min(H, W):
            raise ValueError(f"crop {crop} larger than frames {H}x{W}")
        if F < 1 + 2 * fpl:
            raise ValueError(f"clips need at least {1 + 2 * fpl} frames, got {F}")
        self.F, self.H, self.W = F, H, W

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(prev, cur): each (B, 1 + fpl, 3, crop, crop) in [-1, 1]; targets are cur[:, 1:]."""
        n = 1 + self.fpl
        prev = np.empty((batch, n, self.crop, self.crop, 3), np.uint8)
        cur = np.empty_like(prev)
        for b in range(batch):
            clip = self.reader.frames(int(rng.integers(len(self.reader))))
            y, x = rng.integers(0, self.H - self.crop + 1), rng.integers(0, self.W - self.crop + 1)
            crop = clip[:, y:y + self.crop, x:x + self.crop]
            u = rng.random()
            if u < self.still:
                f = crop[int(rng.integers(self.F))]
                prev[b] = f
                cur[b] = f
            elif u < self.still + self.first:
                s = int(rng.integers(0, self.F - self.fpl))
                prev[b] = crop[s]
                cur[b] = crop[s:s + n]
            else:
                s = int(rng.integers(self.fpl, self.F - self.fpl))
                prev[b] = crop[s - self.fpl:s + 1]
                cur[b] = crop[s:s + n]
            if rng.random() < 0.5:
                prev[b], cur[b] = prev[b, :, :, ::-1], cur[b, :, :, ::-1]
        return to_pixels(prev), to_pixels(cur)
