"""Regression: the shipped generators still score what they scored when they shipped, on a few
short held-out test clips (the same code path as ``python -m eval``: eval.rollout.generate).

The reference numbers were measured with this exact setup (test seeds 0-3, 25 frames, seed i)
on the shipped weights; a broken export, a changed sampler or a regression in the model code
moves them by far more than the margin. Every check runs in both compute dtypes (model/runtime.py),
bf16 only where the CPU has it natively (elsewhere it is emulated, 100x slower than fp32). Measured
side by side on one CPU (Xeon Sapphire Rapids, AMX), the dtypes differ by at most 0.16 dB and, on the
avatar's AKD, by up to 30 % (figures beside each reference below), inside the margins.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from data.sources import make_clip, split_seed
from eval.metrics import psnr_per_frame
from eval.rollout import Controls, generate, load_method
from model.autoencoder import VideoAutoencoder
from model.runtime import native_bf16_cpu

DTYPES = ["float32", pytest.param("bfloat16", marks=pytest.mark.skipif(
    not native_bf16_cpu(), reason="this CPU has no native bf16 (emulated, 100x slower than fp32): the bf16 "
                                  "references are checked on CPUs that have it"))]

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CLIPS = 4
MARGIN_DB = 1.0
# References: the shipped models as they are (the generators of docs/training.md's record, decoding with the
# adversarially fine-tuned decoders of "The adversarial decoder"), fp32 / bf16 on one CPU (Xeon Sapphire
# Rapids); PSNR in dB over frames 1-24. With the previous, softer decoders the same checks scored 25.65
# (world), 18.20 (photos), 25.36 / 18.51 (world-mix) and 18.63 / 0.800 (avatar): sharper frames cost
# 0.1-0.5 dB of PSNR against the truth.
# The world and world-mix models decode with one light reference decoder (docs/training.md, "A light reference
# branch": fine-tuned on world and photo-pan clips, partly from lagging latents; the encoders are unchanged).
# Its streamed frames copy the warped past, so the dtypes part by up to 0.16 dB. fp32 measured on a Zen 3;
# the references sit half the gap the previous reference decoder showed between fp32 and bf16 below fp32
# (that decoder: world 29.952 / 29.796, photos 22.034 / 21.986; world-mix 29.972 / 29.818, 23.246 / 23.131).
# The world generator was then trained in the app's loop (docs/training.md, "The long stage in the app's
# loop"; before it: fp32 30.265 world, 23.469 photos); its references sit as far below fp32 as before.
WORLD_PSNR = 30.12      # fp32 30.193
PHOTO_PSNR = 23.69      # the world model on 4 photo-pan test clips (repeating the first frame: 21.44): fp32 23.721
# world-mix: the world model fine-tuned on the world + photo-pan mix: fp32 30.355 (world), 25.051 (photo pans)
WORLD_MIX_PSNR = {"world": 30.28, "photo": 24.99}
# The avatar's rooms hang photos from this machine's photo library (data/photo.py), which grows with
# Debian's opencv-doc (.ci/run installs it): references with and without it (PSNR dB over frames 1-24,
# AKD in torso lengths over frames 0-48; MediaPipe finds nobody in clip 0), with the avatar's reference
# decoder (with the adversarial decoder: 18.37 / 0.766 and 18.52 / 0.741), fp32 / bf16: with opencv-doc
# 18.838 / 18.800 dB, AKD 0.525 / 0.711; without it 18.702 / 18.664 dB, AKD 0.541 / 0.658. The dtypes
# part more on AKD than before (the frames copy their own past, so rounding carries on); the reference is
# their mean. Three clips of 49 frames are too few to rank AKD by; the 8-clip tables in docs/results.md do.
AVATAR_REFS = {True: (18.82, 0.618), False: (18.68, 0.600)}


def _test_seeds(source: str) -> list[int]:
    """The first test seeds of a source. Photo pans: only seeds whose photo is not one of
    opencv-doc's, which are then the same clips with or without it (rendezvous hashing)."""
    if source != "photo":
        return [split_seed("test", i) for i in range(CLIPS)]
    from data.photo import pick_photo

    seeds = (split_seed("test", i) for i in range(1000))
    return [s for s in seeds if not pick_photo(s).startswith("opencv-doc/")][:CLIPS]


def _first_second(name: str, source: str, dtype: str, frames: int = 25):
    d = ASSETS / name
    if not (d / "generator").is_dir():
        pytest.skip(f"no shipped {name} model")
    ae = VideoAutoencoder.from_pretrained(d / "autoencoder").eval()
    dit = load_method(d, "aapt")
    out = []
    for i, seed in enumerate(_test_seeds(source)):
        clip = make_clip(source, seed, frames, 128)
        ctl = Controls(K=clip.K, w2c=clip.w2c, landmarks=clip.landmarks)
        with torch.no_grad():
            video = generate(ae, dit, "aapt", clip.frames[0], ctl, frames, seed=i, dtype=dtype)
        out.append((clip, video))
    return out


def _first_second_psnr(runs) -> float:
    """Mean PSNR over frames 1-24 of (clip, video) pairs."""
    return float(np.mean([psnr_per_frame(v[1:25], c.frames[1:25]).mean() for c, v in runs]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_world_generator_first_second_psnr(dtype):
    score = _first_second_psnr(_first_second("world", "world", dtype))
    assert score > WORLD_PSNR - MARGIN_DB, score


@pytest.mark.parametrize("dtype", DTYPES)
def test_world_generator_continues_photos(dtype):
    """Uploaded photos: the world generator on held-out photo pans."""
    score = _first_second_psnr(_first_second("world", "photo", dtype))
    assert score > PHOTO_PSNR - MARGIN_DB, score


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("source", ["world", "photo"])
def test_world_mix_generator_first_second_psnr(source, dtype):
    score = _first_second_psnr(_first_second("world-mix", source, dtype))
    assert score > WORLD_MIX_PSNR[source] - MARGIN_DB, score


@pytest.mark.parametrize("dtype", DTYPES)
def test_avatar_generator_first_second_psnr_and_pose(dtype):
    pytest.importorskip("mediapipe")
    from eval.pose import pose_errors

    from data.photo import list_photos

    ref_psnr, ref_akd = AVATAR_REFS[any(n.startswith("opencv-doc/") for n in list_photos())]
    runs = _first_second("avatar", "avatar", dtype, frames=49)
    score = _first_second_psnr(runs)
    assert score > ref_psnr - MARGIN_DB, score
    akd = [pose_errors(v, c.landmarks)["akd"] for c, v in runs]
    assert np.isfinite(akd).sum() >= 2, akd           # MediaPipe finds the generated person
    akd = float(np.nanmean(akd))
    assert akd < ref_akd * 1.25, akd


def test_shipped_fvd_lite_network_sees_motion():
    """The shipped FVD-lite features, on held-out ground truth (8 test worlds): the same videos
    shifted by 4 frames stay close (measured 0.05), while the same windows frozen on their first
    frame (0.24) or played backwards (0.26) are pushed away; the content alone does not decide it.
    The network was trained on the train split only."""
    import json

    from eval.features import VideoFeatureNet, frechet_distance, window_features

    d = ASSETS / "eval" / "features"
    if not d.is_dir():
        pytest.skip("no shipped FVD-lite network")
    meta = json.loads((d / "training.json").read_text())
    assert all("/train" in p or "/val" in p for p in meta["data"] + meta["val_data"]), meta   # no test split
    net = VideoFeatureNet.from_pretrained(d).eval()
    clips = [make_clip("world", split_seed("test", i), 81, 128).frames for i in range(8)]

    def feats(videos):
        return np.concatenate([window_features(net, v, stride=8) for v in videos])

    a = feats([v[:65] for v in clips])
    shifted = feats([v[4:69] for v in clips])
    frozen = feats([np.repeat(v[s:s + 1], 16, 0) for v in clips for s in range(0, 50, 8)])
    backwards = feats([v[:65][::-1].copy() for v in clips])
    near = frechet_distance(a, shifted)
    assert near < 0.5 * frechet_distance(a, frozen) and near < 0.5 * frechet_distance(a, backwards)
