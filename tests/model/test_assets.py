"""The shipped models load, and the shipped autoencoder still reconstructs held-out renders."""
from pathlib import Path

import numpy as np
import pytest
import torch

from data.sources import make_clip, split_seed
from eval.metrics import psnr
from eval.rollout import Controls, reconstruct
from model.autoencoder import VideoAutoencoder
from model.dit import VideoDiT

ASSETS = Path(__file__).resolve().parents[2] / "assets"


# Decoded as a stream decodes (eval.rollout.reconstruct): from the true first frame, a reference decoder
# warping the last frame shown by the clip's commanded cameras. Test clip 5, 9 frames, fp32: world 35.3 dB,
# world-mix 35.3 (world) and 37.8 (photo pan), avatar 27.1; a broken file or layout falls far below the floors.
@pytest.mark.parametrize("model,source,floor", [("world", "world", 30.0), ("world-mix", "world", 30.0),
                                                ("world-mix", "photo", 30.0), ("avatar", "avatar", 24.0)])
def test_shipped_autoencoder_reconstructs_test_clips(model, source, floor):
    d = ASSETS / model / "autoencoder"
    if not d.is_dir():
        pytest.skip(f"no shipped {model} autoencoder")
    ae = VideoAutoencoder.from_pretrained(d).eval()
    clip = make_clip(source, split_seed("test", 5), 9, 128)
    maps = Controls(K=clip.K, w2c=clip.w2c, landmarks=clip.landmarks).frame_maps(128, 9, 4, ae.config.pose_warp)
    y = reconstruct(ae, clip.frames, dtype="float32", maps=maps)
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
