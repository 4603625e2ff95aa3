"""First-light evaluation: the baselines are what they say, and the model rollout is reproducible."""
import json

import numpy as np
import pytest
import torch

from data.build import build
from data.shards import ShardReader
from eval.baselines import evaluate, latent_warp_baseline, main, warp_baseline
from eval.metrics import psnr_per_frame
from model.autoencoder import PRESETS as AE_PRESETS
from model.autoencoder import VideoAutoencoder
from model.config import replace
from model.dit import PRESETS, VideoDiT
from model.runtime import autocast, compute_dtype
from train.data import to_pixels, to_uint8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    build("world", "test", clips=2, n_frames=33, size=32, out=str(root / "data"), per_shard=2, workers=1)
    torch.manual_seed(0)
    ae = VideoAutoencoder(AE_PRESETS["tiny"])
    ae.save_pretrained(root / "ae")
    dit = VideoDiT(replace(PRESETS["tiny"], control="camera", reproject=True, latent_size=32 // 8,
                           latent_channels=ae.config.latent_channels))
    dit.save_pretrained(root / "dit")
    return root


def test_repeat_and_warp_baselines_match_their_definitions(setup):
    reader = ShardReader(str(setup / "data" / "test"))
    gt = np.asarray(reader.frames(0))
    K, w2c = reader.truth(0, "K"), reader.truth(0, "w2c")
    res = evaluate(str(setup / "dit"), str(setup / "ae"), str(setup / "data" / "test"), clips=1,
                   sampler="one-step", steps=1, shift=3.0, frames=33)
    repeat = psnr_per_frame(np.repeat(gt[:1], len(gt), 0), gt)[1:25].mean()
    warp = warp_baseline(gt, K, w2c)
    assert np.array_equal(warp[0], gt[0])
    assert np.isclose(res["psnr_1s_repeat"], repeat)
    assert np.isclose(res["psnr_1s_warp"], psnr_per_frame(warp, gt)[1:25].mean())
    for k in ("model", "repeat", "warp", "latent_warp"):
        assert np.isfinite(res[f"psnr_1s_{k}"]) and np.isfinite(res[f"psnr_late_{k}"])


def test_latent_warp_without_motion_is_the_autoencoders_still_image():
    """With the camera standing still the warp is the identity: every latent frame is the first
    frame's latent, decoded exactly as the autoencoder decodes a still."""
    torch.manual_seed(0)
    ae = VideoAutoencoder(AE_PRESETS["tiny"]).eval()
    frames = np.random.default_rng(0).integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)
    frames[:] = frames[:1]
    K = np.tile(np.array([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]]), (9, 1, 1))
    w2c = np.tile(np.eye(4), (9, 1, 1))
    a = latent_warp_baseline(ae, frames, K, w2c)
    with torch.no_grad(), autocast(compute_dtype()):
        z0 = ae.encode_image(to_pixels(frames[:1])).float()
        b = to_uint8(ae.decode(z0[:, None].expand(-1, 3, -1, -1, -1).contiguous()).float()[0])
    assert a.shape == frames.shape and np.abs(a[1:].astype(int) - b[1:].astype(int)).max() <= 1
    assert np.array_equal(a[0], frames[0])


def test_cli_prints_the_issue_keys_and_is_reproducible(setup, capsys, tmp_path):
    args = ["--model", str(setup / "dit"), "--ae", str(setup / "ae"), "--data", str(setup / "data" / "test"),
            "--clips", "2", "--frames", "33", "--sampler", "one-step", "--json", "--strip", str(tmp_path / "s.png")]
    main(args)
    a = json.loads(capsys.readouterr().out)
    main(args)
    b = json.loads(capsys.readouterr().out)
    for k in ("psnr_1s_model", "psnr_1s_repeat", "psnr_1s_warp", "psnr_late_model", "psnr_late_repeat",
              "psnr_late_warp"):
        assert k in a and a[k] == b[k]
    assert (tmp_path / "s.png").stat().st_size > 0
