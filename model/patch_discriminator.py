"""Patch discriminator on short frame stacks: the critic of the adversarial decoder fine-tune.

It sees what a viewer sees across one latent's frames: the last frame of the previous latent
followed by the latent's ``fpl`` frames, stacked on channels, so a soft picture, a flicker or a
jump at the latent boundary (the 6-Hz pulse) all separate real from decoded. Convolutions with
stride 2 and leaky ReLUs, no normalisation layers (the gradient penalties of R3GAN take their
place: Huang et al. 2024, "The GAN is dead; long live the GAN!"), one logit per patch of about
a third of a 64-pixel crop (PatchGAN: Isola et al. 2017). ``forward`` also returns every
level's features for feature matching (Wang et al. 2018, pix2pixHD).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as Fn
from einops import rearrange

from model.io import Pretrained


@dataclass
class PatchDiscriminatorConfig:
    frames: int = 5                               # frames per stack: 1 of context + frames per latent
    widths: tuple[int, ...] = (64, 128, 256)      # one stride-2 level each


class PatchDiscriminator(Pretrained):
    """(B, frames, 3, H, W) stacks in [-1, 1] -> (B, H / 2^L, W / 2^L) logits and the levels' features."""
    config_class = PatchDiscriminatorConfig

    def __init__(self, config: PatchDiscriminatorConfig):
        super().__init__()
        self.config = config
        chans = [3 * config.frames, *config.widths]
        self.levels = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(chans, chans[1:]))
        self.head = nn.Conv2d(chans[-1], 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.shape[1] != self.config.frames:
            raise ValueError(f"expected stacks of {self.config.frames} frames, got {x.shape[1]}")
        h = rearrange(x, "b f c h w -> b (f c) h w")
        feats = []
        for conv in self.levels:
            h = Fn.leaky_relu(conv(h), 0.2)
            feats.append(h)
        return self.head(h)[:, 0], feats
