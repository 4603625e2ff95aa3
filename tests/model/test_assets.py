"""The shipped models load, and the shipped autoencoder still reconstructs held-out renders."""
from pathlib import Path

import numpy as np
import pytest
import torch

from data.sources import make_clip, split_seed
from eval.metrics import psnr
from model.autoencoder import VideoAutoencoder
from model.dit import VideoDiT
from train.data import to_pixels, to_uint8

ASSETS = Path(__file__).resolve().parents[2] / "assets"


# measured at export on validation clips: world 30.7 dB, avatar 28.7 dB; a broken file or layout falls far below
@pytest.mark.parametrize("model,source,floor", [("world", "world", 24.0), ("avatar", "avatar", 23.0)])
def test_shipped_autoencoder_reconstructs_test_clips(model, source, floor):
    d = ASSETS / model / "autoencoder"
    if not d.is_dir():
        pytest.skip(f"no shipped {model} autoencoder")
    ae = VideoAutoencoder.from_pretrained(d).eval()
    clip = make_clip(source, split_seed("test", 5), 9, 128)
    x = to_pixels(clip.frames)[None]
    with torch.no_grad():
        y = to_uint8(ae.decode(ae.encode(x))[0])
    assert psnr(y, clip.frames) > floor


@pytest.mark.parametrize("model,control", [("world", "camera"), ("avatar", "pose")])
@pytest.mark.parametrize("name", ["teacher", "adapt", "distill", "adversarial", "adversarial-tf", "long", "generator"])
def test_shipped_generators_load(model, control, name):
    d = ASSETS / model / name
    if not d.is_dir():
        pytest.skip(f"no shipped {model} {name}")
    m = VideoDiT.from_pretrained(d)
    assert m.config.control == control and all(torch.isfinite(p).all() for p in m.parameters())
    assert np.isfinite(sum(float(p.float().abs().sum()) for p in m.parameters()))
