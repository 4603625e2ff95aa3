"""Pose reader: the driving pose read back out of a latent frame (a training-time critic).

A small convolutional network trained on ground-truth latents to predict the pose control
features the avatar DiT is given (controls/pose.py: per token and per video frame of the
latent, a Gaussian bump of each of the 33 landmarks, weighted by visibility): heatmap
regression, as in stacked-hourglass pose estimation (Newell et al. 2016), on the latent
instead of the image. Frozen, it scores how well a generated latent frame shows the pose it
was asked for; the long stage's ``pose_weight`` term back-propagates that score into the
generator, a reward-consistency loss on the control (ControlNet++, Li et al. 2024) that
needs no decoder and no MediaPipe in the loop.

Shapes: N latent frames, C latent channels, h = w latent pixels, g = h / 2 tokens per side,
T = g * g tokens, Cc = 33 * frames_per_latent features per token.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from einops import rearrange

from model.io import Pretrained


@dataclass
class PoseReaderConfig:
    latent_channels: int = 16
    latent_size: int = 16          # h = w
    control_features: int = 132    # Cc: 33 landmarks x 4 video frames
    width: int = 64                # channels at latent resolution; twice that at token resolution
    blocks: int = 4                # residual blocks at token resolution (receptive field: the whole frame)


class _Res(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PoseReader(Pretrained):
    """Latent frames (N, C, h, w) -> pose control features (N, T, Cc)."""
    config_class = PoseReaderConfig

    def __init__(self, config: PoseReaderConfig):
        super().__init__()
        self.config = config
        W = config.width
        self.net = nn.Sequential(
            nn.Conv2d(config.latent_channels, W, 3, padding=1), _Res(W),
            nn.Conv2d(W, 2 * W, 2, stride=2),                                  # latent pixels -> tokens (patch 2)
            *[_Res(2 * W) for _ in range(config.blocks)],
            nn.GroupNorm(8, 2 * W), nn.SiLU(), nn.Conv2d(2 * W, config.control_features, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return rearrange(self.net(z), "n c g k -> n (g k) c")                  # row-major tokens, as pose_tokens


def pose_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of predicted against commanded pose features over a batch, relative to the
    commanded features' energy (so 1.0 is what predicting no pose at all scores): a scalar."""
    return (pred.float() - target.float()).pow(2).sum() / target.float().pow(2).sum().clamp_min(1e-6)


@torch.no_grad()
def peak_distance(pred: torch.Tensor, target: torch.Tensor, grid: int) -> torch.Tensor:
    """Token distance between the strongest token of each predicted and commanded landmark map,
    over landmarks present in the target (peak > 0.5). pred, target (N, T, Cc) -> (M,)."""
    p, t = pred.float().transpose(1, 2).flatten(0, 1), target.float().transpose(1, 2).flatten(0, 1)   # (N Cc, T)
    keep = t.amax(-1) > 0.5
    ip, it = p[keep].argmax(-1), t[keep].argmax(-1)
    dy, dx = (ip // grid - it // grid).float(), (ip % grid - it % grid).float()
    return torch.sqrt(dy * dy + dx * dx)
