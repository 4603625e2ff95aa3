"""Each method of the evaluation makes a video from a first frame and a control sequence.

Methods (paper Table/§4 layout), by the model directory they load under a model's assets:
- ``teacher``: bidirectional, multi-step, a clip at a time; a longer video chains clips, each
  starting from the last frame of the one before (what an offline image-to-video model can do);
- ``adapt``: block-causal, multi-step, frame by frame (teacher-forced training);
- ``distill``: one step per latent frame (consistency distillation);
- ``adversarial``: one step, adversarial post-training with student forcing, no long stage;
- ``aapt``: the full recipe (the shipped generator);
- ``adversarial_tf``: the ablation, adversarial training with teacher forcing.
All decode with the shipped autoencoder; controls are camera poses (K, w2c per video frame)
or landmarks (F, 33, 4). ``reconstruct`` is the bound beside them: the ground truth itself
encoded and decoded, the best any generator in this latent space can score.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from controls.bone_warp import clip_pose_points
from controls.camera import clip_camera_tokens, clip_frame_maps, clip_reprojection_maps
from controls.pose import clip_pose_tokens
from model.autoencoder import PixelLoop, VideoAutoencoder
from model.dit import VideoDiT
from model.runtime import autocast, compute_dtype
from model.sampling import rollout_one_step, sample_bidirectional, sample_causal
from train.data import to_pixels, to_uint8


@dataclass(frozen=True)
class Method:
    name: str
    model: str          # directory under the model's assets
    sampler: str        # bidirectional | causal | one-step
    steps: int = 1
    reencode: bool = False  # one-step: recycle the frames shown, encoded again (model/autoencoder.py PixelLoop)
    warp: bool = False      # ... the last frame shown moved per bone to the coming poses (pose models)


METHODS = {
    "teacher": Method("teacher", "teacher", "bidirectional", 16),
    "adapt": Method("adapt", "adapt", "causal", 8),
    "distill": Method("distill", "distill", "one-step"),
    "adversarial": Method("adversarial", "adversarial", "one-step"),
    "aapt": Method("aapt", "generator", "one-step"),
    "aapt_reencode": Method("aapt_reencode", "generator", "one-step", reencode=True),
    "aapt_warp": Method("aapt_warp", "generator", "one-step", reencode=True, warp=True),
    # where the shipped generator interpolates the adversarial and the long stage's weights
    # (train/soup.py), the long stage's own generator beside it
    "long": Method("long", "long", "one-step"),
    "adversarial_tf": Method("adversarial_tf", "adversarial-tf", "one-step"),
}


@dataclass
class Controls:
    """What drives a video of 1 + 4k frames: cameras (camera models) or landmarks (pose models)."""
    K: np.ndarray | None = None          # (F, 3, 3)
    w2c: np.ndarray | None = None        # (F, 4, 4)
    landmarks: np.ndarray | None = None  # (F, 33, 4)

    def tokens(self, dit: VideoDiT, size: int, a: int, b: int, fpl: int = 4) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Control tokens (1, 1 + k, T, Cc) and warp maps (1, 1 + k, 3, 3) of video frames a..b
        (b - a = fpl k), with frame a as the start."""
        grid = dit.config.latent_size // dit.config.patch
        k = (b - a) // fpl
        warp = np.tile(np.eye(3, dtype=np.float32), (1 + k, 1, 1))
        if dit.config.control == "camera":
            ctrl = clip_camera_tokens(self.K[a:b + 1], self.w2c[a:b + 1], size, size, grid, fpl)
            warp = clip_reprojection_maps(self.K[a:b + 1], self.w2c[a:b + 1], size, size, fpl)
        elif dit.config.control == "pose":
            ctrl = clip_pose_tokens(self.landmarks[a:b + 1], grid, fpl)
        else:
            ctrl = None
        c = None if ctrl is None else torch.from_numpy(ctrl)[None]
        return c, torch.from_numpy(warp)[None]

    def frame_maps(self, size: int, n_frames: int, fpl: int = 4, pose_warp: bool = False) -> torch.Tensor | None:
        """(1, k, fpl, 3, 3) maps of every video frame to the last frame of the latent before (what
        a reference decoder warps, model/autoencoder.py); with ``pose_warp`` and landmarks, the
        per-bone point fields (1, k, fpl, size, size, 2) (controls/bone_warp.py); else None (the identity)."""
        if self.K is None or self.w2c is None:
            if pose_warp and self.landmarks is not None:
                return torch.from_numpy(clip_pose_points(self.landmarks[:n_frames], size, fpl))[None]
            return None
        return torch.from_numpy(clip_frame_maps(self.K[:n_frames], self.w2c[:n_frames], size, size, fpl))[None]


def load_method(model_dir: str | Path, method: str) -> VideoDiT:
    m = METHODS[method]
    return VideoDiT.from_pretrained(Path(model_dir) / m.model).eval()


@torch.no_grad()
def decode_latents(ae: VideoAutoencoder, z: torch.Tensor, chunk: int = 32, maps: torch.Tensor | None = None,
                   first: np.ndarray | None = None) -> np.ndarray:
    """(1, 1 + k, C, h, w) normalised latents -> (1 + fpl k, H, W, 3) uint8, decoded in chunks
    (the decoder sees each latent with its predecessor, so chunks join exactly). A reference
    decoder decodes latent by latent from ``first`` (H, W, 3) uint8, the stream's first frame,
    each latent's frames from the last frame before them warped by ``maps`` (1, k, fpl, 3, 3)."""
    raw = ae.denormalize(z.float())[0]
    if ae.config.reference:
        x0 = None if first is None else to_pixels(first)[None]
        return to_uint8(ae.decode(raw[None], maps, x0).float()[0])
    out = [to_uint8(ae.decode(raw[:1][None]).float()[0])]
    for s in range(1, raw.shape[0], chunk):
        prev = raw[s - 1:s - 1 + min(chunk, raw.shape[0] - s)]
        cur = raw[s:s + chunk]
        frames = ae.decoder(torch.cat([cur, prev], 1))                    # (n, fpl, 3, H, W)
        out.append(to_uint8(frames.float().flatten(0, 1)))
    return np.concatenate(out)


@torch.no_grad()
def reconstruct(ae: VideoAutoencoder, video: np.ndarray, chunk: int = 32, dtype: str | torch.dtype = "auto",
                maps: torch.Tensor | None = None) -> np.ndarray:
    """(1 + 4k, H, W, 3) uint8 ground truth -> the same frames through the autoencoder (encoded in
    chunks of ``chunk`` latents, each with its context frame, so chunks join exactly); a reference
    decoder starts from the true first frame and warps by ``maps`` (Controls.frame_maps)."""
    fpl = ae.config.frames_per_latent
    x = to_pixels(video)                                                    # (F, 3, H, W)
    with autocast(compute_dtype(dtype)):
        zs = [ae.encode_image(x[:1]).float()]
        for s in range(0, x.shape[0] - 1, chunk * fpl):
            part = x[s:s + chunk * fpl + 1]                                 # context frame + chunk
            zs.append(ae.encode(part[None]).float()[0, 1:])
        z = ae.normalize(torch.cat(zs)[None])
        return decode_latents(ae, z, maps=maps, first=video[0])


@torch.no_grad()
def generate(ae: VideoAutoencoder, dit: VideoDiT, method: str, first: np.ndarray, controls: Controls,
             n_frames: int, seed: int = 0, clip_latents: int = 9, shift: float = 3.0,
             dtype: str | torch.dtype = "auto") -> np.ndarray:
    """(n_frames, H, W, 3) uint8 video from ``first`` (H, W, 3) under ``controls``; frame 0 is
    the first frame itself. n_frames - 1 must be a multiple of 4. The models keep fp32 weights
    and run under autocast to ``dtype`` (model/runtime.py: ``auto`` picks it for this CPU)."""
    m = METHODS[method]
    fpl = ae.config.frames_per_latent
    size = first.shape[0]
    k = (n_frames - 1) // fpl
    gen = torch.Generator().manual_seed(seed)
    maps = controls.frame_maps(size, 1 + fpl * k, fpl, ae.config.pose_warp)
    with autocast(compute_dtype(dtype)):
        z0 = ae.normalize(ae.encode_image(to_pixels(first)[None]).float())
        if m.sampler != "bidirectional":
            ctrl, warp = controls.tokens(dit, size, 0, fpl * k, fpl)
            if m.reencode:
                loop, shown = PixelLoop(ae, to_pixels(first)[None]), []
                loop.start(z0)

                ahead = None
                if m.warp:
                    if controls.landmarks is None:
                        raise ValueError(f"{method} moves the last frame by the coming poses: a pose model's method")
                    ahead = maps if ae.config.pose_warp else torch.from_numpy(
                        clip_pose_points(controls.landmarks[:1 + fpl * k], size, fpl))[None]

                def recycle(j, z):
                    frames, z_in = loop(z, None if maps is None else maps[:, j - 1], encode=ahead is None)
                    shown.append(to_uint8(frames.float()[0]))
                    if ahead is not None and j < k:
                        z_in = loop.warped(ahead[:, j], z.dtype)
                    return z_in

                rollout_one_step(dit, z0, ctrl, k, gen, warp, recycle)
                video = np.concatenate([first[None], *shown])
            elif m.sampler == "one-step":
                z = rollout_one_step(dit, z0, ctrl, k, gen, warp)
                video = decode_latents(ae, z, maps=maps, first=first)
            else:
                z = sample_causal(dit, z0, ctrl, k, m.steps, shift, gen, warp)
                video = decode_latents(ae, z, maps=maps, first=first)
        else:  # clip by clip, each from the last frame of the one before
            video, start, cur = [first[None]], 0, z0
            while start < fpl * k:
                kk = min(clip_latents - 1, k - start // fpl)
                ctrl, warp = controls.tokens(dit, size, start, start + fpl * kk, fpl)
                z = sample_bidirectional(dit, cur, ctrl, kk, m.steps, shift, gen, warp)
                part = None if maps is None else maps[:, start // fpl:start // fpl + kk]
                frames = decode_latents(ae, z, maps=part, first=video[-1][-1])[1:]
                video.append(frames)
                start += fpl * kk
                cur = ae.normalize(ae.encode_image(to_pixels(frames[-1])[None]).float())
            video = np.concatenate(video)
    video[0] = first
    return video[:n_frames]
