"""First light: a model's rollouts against the dumb baselines on held-out ground truth.

    python -m eval.baselines --model runs/world-128/adapt/final/model --ae runs/world-128/autoencoder/final/model \
        --data runs/data/world-128/test --clips 32 --json [--sampler causal --steps 8] [--strip out.png]

From each test clip's true first frame, with its true camera controls, the model generates 96
frames; PSNR against the ground-truth render over frames 1-24 (the first second) and 25-96, for:
the model, "repeat the first frame", and "warp": the first frame warped by the commanded camera
rotation (the homography of the known rotation; translation has no honest homography, so it is
ignored, as the dumb baseline would). Also "latent_warp": the first frame's latent warped by the
same rotations in latent space and decoded (what a reprojecting model starts from, with no model),
which bounds how much a latent-space warp can give.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from controls.bone_warp import chunk_points
from controls.camera import clip_camera_tokens, clip_reprojection_maps
from data.shards import ShardReader
from data.video import contact_sheet
from eval.metrics import psnr_per_frame, rotation_homography, warp_frame
from model.autoencoder import VideoAutoencoder
from model.dit import VideoDiT, maps_from_first
from model.warp import reproject_latents, warp_filled
from model.sampling import rollout_one_step, sample_causal
from model.runtime import add_dtype_argument, autocast, compute_dtype, precision_info
from train.data import to_pixels, to_uint8


def warp_baseline(frames: np.ndarray, K: np.ndarray, w2c: np.ndarray) -> np.ndarray:
    """Each frame = the first frame warped by the rotation from camera 0 to camera f."""
    return np.stack([frames[0]] + [warp_frame(frames[0], rotation_homography(K[0], w2c[0], K[f], w2c[f]))
                                   for f in range(1, len(frames))])


@torch.no_grad()
def moved_per_bone(first: np.ndarray, body: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """The first frame (S, S, 3) uint8 moved per bone from its pose ``body`` (33, >=2) to each of
    ``poses`` (n, 33, >=2) (controls/bone_warp.py) -> (n, S, S, 3); what the warp cannot fill (the
    room the body uncovered) stays the first frame's."""
    x0 = to_pixels(first[None])                                               # (1, 3, S, S)
    pts = chunk_points(torch.from_numpy(np.asarray(body, np.float32)[None]),
                       torch.from_numpy(np.asarray(poses, np.float32)[None]), first.shape[0])
    return to_uint8(warp_filled(x0, pts)[0])                                 # (n, S, S, 3)


def pose_warp_baseline(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Each frame = the first frame warped per bone from pose 0 to pose f."""
    return np.concatenate([frames[:1], moved_per_bone(frames[0], landmarks[0], landmarks[1:len(frames)])])


@torch.no_grad()
def latent_warp_baseline(ae: VideoAutoencoder, frames: np.ndarray, K: np.ndarray, w2c: np.ndarray,
                         dtype: str | torch.dtype = "auto") -> np.ndarray:
    """(F, H, W, 3) uint8: the first frame's latent warped to every latent frame by the commanded
    camera (homographies from the first camera, as the model's reprojection does) and decoded."""
    fpl = ae.config.frames_per_latent
    k = (frames.shape[0] - 1) // fpl
    H, W = frames.shape[1:3]
    maps = maps_from_first(torch.from_numpy(clip_reprojection_maps(K[:1 + fpl * k], w2c[:1 + fpl * k], W, H, fpl))[None])
    with autocast(compute_dtype(dtype)):
        z0 = ae.encode_image(to_pixels(frames[:1])).float()                  # (1, C, h, w)
        z = reproject_latents(z0[:, None].expand(-1, 1 + k, -1, -1, -1).contiguous(), maps)
        x = ae.decode(z).float()[0]
    out = to_uint8(x)
    out[0] = frames[0]
    return out


@torch.no_grad()
def model_rollout(ae: VideoAutoencoder, dit: VideoDiT, frames: np.ndarray, K: np.ndarray, w2c: np.ndarray,
                  sampler: str, steps: int, shift: float, seed: int, dtype: str | torch.dtype = "auto") -> np.ndarray:
    """(F, H, W, 3) uint8 generated from frames[0] with the clip's camera controls."""
    fpl = ae.config.frames_per_latent
    F = frames.shape[0]
    k = (F - 1) // fpl
    H, W = frames.shape[1:3]
    grid = dit.config.latent_size // dit.config.patch
    ctrl = torch.from_numpy(clip_camera_tokens(K[:1 + fpl * k], w2c[:1 + fpl * k], W, H, grid, fpl))[None]
    warp = torch.from_numpy(clip_reprojection_maps(K[:1 + fpl * k], w2c[:1 + fpl * k], W, H, fpl))[None]
    x0 = to_pixels(frames[:1])                                             # (1, 3, H, W)
    with autocast(compute_dtype(dtype)):
        z0 = ae.normalize(ae.encode_image(x0).float())
        gen = torch.Generator().manual_seed(seed)
        if sampler == "one-step":
            z = rollout_one_step(dit, z0, ctrl, k, gen, warp)
        else:
            z = sample_causal(dit, z0, ctrl, k, steps, shift, gen, warp)
        x = ae.decode(ae.denormalize(z.float())).float()[0]
    out = to_uint8(x)
    out[0] = frames[0]
    return out


def evaluate(model: str, ae_dir: str, data: str, clips: int, sampler: str, steps: int, shift: float,
             frames: int = 97, strip: str | None = None, threads: int = 0, dtype: str = "auto") -> dict:
    if threads:
        torch.set_num_threads(threads)
    dtype = compute_dtype(dtype)
    ae = VideoAutoencoder.from_pretrained(ae_dir).eval()
    dit = VideoDiT.from_pretrained(model).eval()
    reader = ShardReader(data)
    n = min(clips, len(reader))
    res = {k: [] for k in ("model", "repeat", "warp", "latent_warp")}
    rows = []
    t0 = time.time()
    for i in range(n):
        gt = np.asarray(reader.frames(i)[:frames])
        K, w2c = reader.truth(i, "K")[:frames], reader.truth(i, "w2c")[:frames]
        gen = model_rollout(ae, dit, gt, K, w2c, sampler, steps, shift, seed=i, dtype=dtype)
        outs = {"model": gen, "repeat": np.repeat(gt[:1], len(gt), 0), "warp": warp_baseline(gt, K, w2c),
                "latent_warp": latent_warp_baseline(ae, gt, K, w2c, dtype)}
        for k_, v in outs.items():
            res[k_].append(psnr_per_frame(v, gt))
        if strip and i < 6:
            sel = [0, 6, 12, 24, 48, 72, 96]
            sel = [s for s in sel if s < len(gt)]
            rows += [gt[sel], gen[sel], outs["warp"][sel]]
    out = {"clips": n, "sampler": sampler, "steps": steps if sampler != "one-step" else 1,
           "seconds": round(time.time() - t0, 1), "precision": precision_info(dtype)}
    for k_, v in res.items():
        p = np.stack(v)                                                     # (n, F)
        out[f"psnr_1s_{k_}"] = float(p[:, 1:25].mean())
        out[f"psnr_late_{k_}"] = float(p[:, 25:97].mean()) if p.shape[1] > 25 else float("nan")
    if strip:
        contact_sheet(rows, strip)
        out["strip"] = str(strip)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="DiT model directory")
    p.add_argument("--ae", required=True, help="autoencoder model directory")
    p.add_argument("--data", required=True, help="test shard directory")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--frames", type=int, default=97)
    p.add_argument("--sampler", choices=("causal", "one-step"), default="causal")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--shift", type=float, default=3.0)
    p.add_argument("--strip", default=None, help="write a strip PNG (rows: truth, model, warp) here")
    p.add_argument("--threads", type=int, default=0)
    add_dtype_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    a = p.parse_args(argv)
    r = evaluate(a.model, a.ae, a.data, a.clips, a.sampler, a.steps, a.shift, a.frames, a.strip, a.threads, a.dtype)
    if a.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"{k:24s} {v}")


if __name__ == "__main__":
    main()
