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


@pytest.mark.skipif(not (ASSETS / "world" / "autoencoder").is_dir(), reason="no shipped world autoencoder")
def test_world_autoencoder_reconstructs_test_clips():
    ae = VideoAutoencoder.from_pretrained(ASSETS / "world" / "autoencoder").eval()
    clip = make_clip("world", split_seed("test", 5), 9, 128)
    x = to_pixels(clip.frames)[None]
    with torch.no_grad():
        y = to_uint8(ae.decode(ae.encode(x))[0])
    # measured 30.7 dB mean on validation clips at export; a broken file or layout falls far below
    assert psnr(y, clip.frames) > 24.0


@pytest.mark.parametrize("name", ["teacher", "adapt", "generator"])
def test_shipped_generators_load(name):
    d = ASSETS / "world" / name
    if not d.is_dir():
        pytest.skip(f"no shipped world {name}")
    m = VideoDiT.from_pretrained(d)
    assert m.config.control == "camera" and all(torch.isfinite(p).all() for p in m.parameters())
    assert np.isfinite(sum(float(p.float().abs().sum()) for p in m.parameters()))
