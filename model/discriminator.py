"""Discriminator: the generator's block-causal backbone with one logit per latent frame (App. B).

It judges a latent video in one parallel pass: frame k's tokens see, on channels, frame k-1
in the recycled slot (conditions shifted to line up) and frame k, noised to level t ~ U(0, 1),
in the noise slot, plus frame k's control. Block-causal attention makes logit k depend on
frames 0..k only, so every duration is judged at once. It is built from the adapted
diffusion model's weights plus a new head.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from einops import rearrange

from model.dit import DiTConfig, VideoDiT
from model.io import Pretrained


@dataclass
class DiscriminatorConfig:
    """The backbone's DiT config plus the head width."""
    dit: DiTConfig = field(default_factory=DiTConfig)
    head_hidden: int = 256


class Discriminator(Pretrained):
    """Per-frame logits of a latent video under its controls."""
    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        self.backbone = VideoDiT(config.dit)
        D = config.dit.dim
        self.head = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, config.head_hidden), nn.SiLU(),
                                  nn.Linear(config.head_hidden, 1))
        # the backbone's x0 output layer is unused: freeze it so optimisers and DDP ignore it
        for p in list(self.backbone.out.parameters()) + list(self.backbone.final_ada.parameters()):
            p.requires_grad_(False)

    @classmethod
    def from_generator(cls, dit: VideoDiT, head_hidden: int = 256) -> "Discriminator":
        d = cls(DiscriminatorConfig(dit=dit.config, head_hidden=head_hidden))
        d.backbone.load_state_dict(dit.state_dict())
        return d

    def forward(self, z: torch.Tensor, control: torch.Tensor | None, t: torch.Tensor, eps: torch.Tensor,
                warp: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, F, C, h, w) latent video with the first frame at index 0; control (B, F, T, Cc);
        t (B,) noise level; eps like z; warp (B, F, 3, 3) maps from each frame's camera to the
        camera of the frame in its recycled slot (reprojecting backbones). Returns logits
        (B, F - 1) for frames 1..F-1."""
        B, F = z.shape[:2]
        T = self.config.dit.tokens_per_frame
        tt = t.view(B, 1, 1, 1, 1)
        noisy = torch.cat([z[:, :1], (1 - tt) * z[:, 1:] + tt * eps[:, 1:]], 1)
        recycled = torch.cat([z[:, :1], z[:, :-1]], 1)
        tf = t[:, None].expand(B, F).clone()
        tf[:, 0] = 0.0
        feats = self.backbone(recycled, noisy, control, tf, mode="causal", return_features=True,
                              warp=warp)                                                    # (B, F*T, D)
        pooled = rearrange(feats, "b (f t) d -> b f t d", t=T).mean(2)                           # (B, F, D)
        return self.head(pooled)[..., 0][:, 1:].float()
