"""What every stage is: the ``Stage`` the one loop (train/loop.py) drives, and the small helpers all
stages share (where a split's shards are, the device, a stage's run directory, PSNR of images)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from eval.metrics import psnr
from train.config import TrainConfig


class Stage:
    """What a stage provides to the loop (train/stages.py names the implementations)."""
    models: dict          # name -> Pretrained module saved in checkpoints
    phases: tuple         # optimiser phases per step, e.g. ("main",) or ("disc", "gen")
    phase_params: dict    # phase -> list of parameters
    phase_lr: dict        # phase -> base lr
    ema_model: str | None  # name of the model whose EMA is kept (exported instead of the raw one)
    phase_optimizer: dict = {}  # phase -> optimiser name, when phases share one

    def loss(self, phase: str, step: int, rng: np.random.Generator, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def active(self, phase: str, step: int) -> bool:
        """Whether ``phase`` runs at ``step`` (e.g. the generator waits while the discriminator warms up)."""
        return True

    def evaluate(self, step: int, out_dir: Path) -> dict:
        return {}

    def export(self, out_dir: Path, models: dict) -> None:
        for name, m in models.items():
            m.save_pretrained(out_dir / name)


def split_dir(cfg: TrainConfig, split: str) -> str:
    """The shard directories of a split: ``cfg.data`` may join several datasets with commas
    (a mix, e.g. world clips and photo pans), each with train/, val/ and test/."""
    return ",".join(str(Path(d.strip()) / split) for d in cfg.data.split(","))


def default_device() -> torch.device:
    """This rank's GPU under torchrun (or the only GPU), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def stage_dir(cfg: TrainConfig, stage: str) -> Path:
    return Path(cfg.run_dir) / stage


def image_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (``a`` clamped to that range)."""
    return psnr(a.float().clamp(-1, 1).cpu().numpy(), b.float().cpu().numpy(), peak=2.0)
