"""The recipe's stages (paper App. B), each a ``Stage`` (train/stage.py) for the one loop in
train/loop.py: the one registry of stage name -> implementation.

- autoencoder: train/autoencoder_stage.py
- teacher, adapt, distill: train/diffusion.py
- adversarial, long: train/adversarial.py
- pose_reader: train/pose_reader_stage.py
- decoder (the adversarial decoder fine-tune): train/decoder_gan.py
"""
from __future__ import annotations

from train.adversarial import AdversarialStage
from train.autoencoder_stage import AutoencoderStage
from train.config import TrainConfig
from train.decoder_gan import DecoderGanStage
from train.diffusion import DiffusionStage, DistillStage
from train.pose_reader_stage import PoseReaderStage
from train.stage import Stage

STAGE_CLASSES: dict[str, type[Stage]] = {
    "autoencoder": AutoencoderStage,
    "teacher": DiffusionStage,
    "adapt": DiffusionStage,
    "distill": DistillStage,
    "adversarial": AdversarialStage,
    "long": AdversarialStage,
    "pose_reader": PoseReaderStage,
    "decoder": DecoderGanStage,
}


def build_stage(cfg: TrainConfig) -> Stage:
    if cfg.stage not in STAGE_CLASSES:
        raise ValueError(f"stage {cfg.stage!r} is not implemented")
    return STAGE_CLASSES[cfg.stage](cfg)
