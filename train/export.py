"""Ship trained stage models as assets: bf16 safetensors + config.json, no optimiser state.

    python -m train.export --run runs/world-128 --out assets/world \
        --take autoencoder=autoencoder/final/model teacher=teacher/final/model generator=adversarial/final/generator

Each NAME=PATH (relative to --run) is loaded, validated and written to <out>/<NAME>/.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from model.autoencoder import VideoAutoencoder
from model.dit import VideoDiT
from model.discriminator import Discriminator
from model.patch_discriminator import PatchDiscriminator
from model.pose_reader import PoseReader
from model.runtime import STORAGE_DTYPE

CLASSES = {"VideoAutoencoder": VideoAutoencoder, "VideoDiT": VideoDiT, "Discriminator": Discriminator,
           "PoseReader": PoseReader, "PatchDiscriminator": PatchDiscriminator}


def model_class(path: Path) -> type:
    """The class of a saved model, from the fields of its config."""
    cfg = json.loads((path / "config.json").read_text())
    if "enc_widths" in cfg:
        return VideoAutoencoder
    if "head_hidden" in cfg:
        return Discriminator
    if "blocks" in cfg:
        return PoseReader
    if "widths" in cfg and "frames" in cfg:
        return PatchDiscriminator
    return VideoDiT


def export(run: Path, out: Path, take: dict[str, str], dtype: torch.dtype = STORAGE_DTYPE) -> list[Path]:
    written = []
    for name, rel in take.items():
        src = run / rel
        m = model_class(src).from_pretrained(src)
        m.save_pretrained(out / name, dtype=dtype)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--take", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--fp32", action="store_true", help="keep fp32 instead of bf16")
    a = p.parse_args(argv)
    take = dict(t.split("=", 1) for t in a.take)
    for w in export(Path(a.run), Path(a.out), take, torch.float32 if a.fp32 else STORAGE_DTYPE):
        print(w)


if __name__ == "__main__":
    main()
