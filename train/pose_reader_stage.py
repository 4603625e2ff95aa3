"""The pose reader's stage (``--stage pose_reader``): the frozen critic the adversarial stages' pose
term reads (model/pose_reader.py)."""
from __future__ import annotations

import torch

from data.shards import ShardReader
from model.pose_reader import PoseReader, PoseReaderConfig, peak_distance, pose_error
from train.config import TrainConfig
from train.diffusion import VAL_LATENT_CLIPS, latent_cache, load_autoencoder
from train.stage import Stage, default_device, split_dir


class PoseReaderStage(Stage):
    """The pose reader (model/pose_reader.py): heatmap regression from ground-truth latent frames
    to the pose control features they were rendered with. Its input latents get noise of a random
    std up to ``latent_noise``, so that it reads the pose of a generator's latents too, which are
    not exactly on the autoencoder's manifold."""
    phases = ("main",)
    ema_model = None

    def __init__(self, cfg: TrainConfig):
        if cfg.control != "pose":
            raise ValueError("the pose reader is for pose-controlled presets (control=pose)")
        self.cfg = cfg
        self.device = default_device()
        ae = load_autoencoder(cfg)
        size = ShardReader(split_dir(cfg, "val")).frame_shape[1] // ae.config.spatial_factor
        self.grid = size // 2
        self.train = latent_cache(cfg, ae, "train", self.grid, limit=cfg.latent_clips or None)
        self.val = latent_cache(cfg, ae, "val", self.grid, limit=VAL_LATENT_CLIPS)
        if cfg.init:
            self.reader = PoseReader.from_pretrained(cfg.init)
        else:
            self.reader = PoseReader(PoseReaderConfig(latent_channels=ae.config.latent_channels, latent_size=size,
                                                      control_features=self.train.control.shape[-1]))
        self.reader.to(self.device)
        self.models = {"model": self.reader}
        self.phase_params = {"main": list(self.reader.parameters())}
        self.phase_lr = {"main": cfg.lr}

    def loss(self, phase, step, rng, gen):
        z, ctrl, _ = self.train.sample(self.cfg.batch_size, self.cfg.clip_latents - 1, rng)
        z, ctrl = z[:, 1:].flatten(0, 1), ctrl[:, 1:].flatten(0, 1)           # (N, C, h, w), (N, T, Cc)
        std = self.cfg.latent_noise * torch.rand(z.shape[0], 1, 1, 1, generator=gen)
        z = z + std * torch.randn(z.shape, generator=gen)
        loss = pose_error(self.reader(z.to(self.device)), ctrl.to(self.device))
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, step, out_dir):
        """Relative error (1.0 = no pose read) and the distance of each landmark's peak token from
        the commanded one, on the val clips' latents, clean and with noise of std 0.2."""
        self.reader.eval()
        z = torch.from_numpy(self.val.chunks).float().flatten(0, 1)
        ctrl = torch.from_numpy(self.val.control[:, 1:]).float().flatten(0, 1)
        metrics = {}
        for name, std in (("clean", 0.0), ("noisy", 0.2)):
            zz = z + std * torch.randn(z.shape, generator=torch.Generator().manual_seed(7))
            pred = torch.cat([self.reader(zz[i:i + 256].to(self.device)).float().cpu() for i in range(0, len(z), 256)])
            d = peak_distance(pred, ctrl, self.grid)
            metrics.update({f"{name}_error": float(pose_error(pred, ctrl)),
                            f"{name}_peak_tokens": float(d.mean()), f"{name}_peak_within_1": float((d <= 1).float().mean())})
        self.reader.train()
        return metrics
