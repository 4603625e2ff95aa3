"""Streaming engine: one object per user session, one DiT call (1 NFE) per latent frame.

    engine = StreamingEngine.from_pretrained("assets/world")
    first = engine.reset(image, seed=0)          # (H, W, 3) uint8, what the model starts from
    frames = engine.step(controls)               # (fpl, H, W, 3) uint8, the next fpl video frames

Each step: [recycled latent | noise | control] -> DiT with the KV cache (first frame + sliding
window) -> next latent -> streaming decoder -> fpl RGB frames (4 in the shipped models). Time
and memory per step are constant for unlimited length. A plain Python object (no UI imports);
one per thread is safe.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from controls.camera import (APP_PITCH_LIMIT, APP_ROLL_LIMIT, CONTROL_DIM, CameraPose, CameraRig, CameraState,
                             RigLimits, plucker_tokens, reprojection_map)
from controls.bone_warp import chunk_points
from controls.pose import NUM_LANDMARKS, pose_tokens
from model.autoencoder import PixelLoop, StreamingDecoder, VideoAutoencoder
from model.dit import VideoDiT
from model.runtime import compute_dtype


class ControlError(ValueError):
    """A control that does not fit the model's mode (shape or kind)."""


def check_pair(ae: VideoAutoencoder, dit: VideoDiT) -> None:
    """ValueError saying what differs when ``dit`` cannot run on ``ae``'s latents."""
    a, d = ae.config, dit.config
    why = []
    if a.latent_channels != d.latent_channels:
        why.append(f"its autoencoder makes {a.latent_channels}-channel latents, its generator expects {d.latent_channels}")
    if a.frames_per_latent != d.frames_per_latent:
        why.append(f"its autoencoder packs {a.frames_per_latent} video frames per latent, its generator "
                   f"{d.frames_per_latent}")
    if why:
        raise ValueError("; ".join(why))


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """Any (H, W, 3|4) or (H, W) image -> (size, size, 3) uint8: centre crop to square, resize."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"expected an RGB image, got an array of shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float64)), 0, 255 if a.max() > 1.0 else 1.0)
        a = (a * (255.0 if a.max() <= 1.0 else 1.0)).astype(np.uint8)
    a = a[..., :3]
    H, W = a.shape[:2]
    s = min(H, W)
    a = a[(H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s]
    # np.array, not asarray: a PIL image's buffer is read-only, and torch.from_numpy warns on those
    return np.array(Image.fromarray(a).resize((size, size), Image.BICUBIC if s < size else Image.LANCZOS))


@dataclass
class StepTiming:
    """Milliseconds of the last step, by part."""
    control_ms: float = 0.0
    dit_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class EngineState:
    frame_index: int = 0                      # latent frames generated, first frame included
    prev: torch.Tensor | None = None          # last latent (normalised), (1, C, h, w)
    rig: CameraRig | None = None
    ref: CameraPose | None = None             # the last video frame's camera (camera mode)
    pose: np.ndarray | None = None            # the last video frame's landmarks (33, 4) (pose mode; None: unknown)
    timing: StepTiming = field(default_factory=StepTiming)


class StreamingEngine:
    """Real-time generator session (see the module docstring)."""

    def __init__(self, ae: VideoAutoencoder, dit: VideoDiT, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype = "auto", compile: bool = False, reencode: bool = False):
        """``reencode``: the generator recycles the frames shown, encoded again (PixelLoop), not
        its own last latent."""
        check_pair(ae, dit)
        self.device = torch.device(device)
        self.dtype = compute_dtype(dtype, self.device)
        self.ae = ae.to(self.device).eval()
        self.dit = dit.to(self.device, self.dtype).eval()
        # NHWC: the decoder's convs run 1.3x (fp32, AVX2) to 1.9x (bf16, AVX-512) faster than in NCHW
        self.ae.decoder.to(self.dtype, memory_format=torch.channels_last)
        self.decoder = StreamingDecoder(self.ae)
        self.reencode = reencode
        self.loop: PixelLoop | None = None
        if reencode:
            self.ae.encoder.to(self.dtype, memory_format=torch.channels_last)
        self.fpl = ae.config.frames_per_latent
        self.size = dit.config.latent_size * ae.config.spatial_factor
        self.grid = dit.config.latent_size // dit.config.patch
        self.mode = dit.config.control
        self.cache = dit.new_cache(1, self.device, self.dtype)
        self.state = EngineState()
        self.generator = torch.Generator(device=self.device)
        self._dit_call = torch.compile(self.dit.step, dynamic=False) if compile else self.dit.step
        self.default_fov = 60.0

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kw) -> "StreamingEngine":
        """``directory`` holds ``autoencoder/`` and ``generator/`` model directories."""
        d = Path(directory)
        return cls(VideoAutoencoder.from_pretrained(d / "autoencoder"), VideoDiT.from_pretrained(d / "generator"), **kw)

    # ------------------------------------------------------------------ session
    @torch.no_grad()
    def reset(self, first_frame: np.ndarray, seed: int = 0, pose: np.ndarray | None = None) -> np.ndarray:
        """Start a new stream from an image; returns the (size, size, 3) frame the model starts from.
        ``pose``: the person's (33, >=2) landmarks in that frame (normalised to the model's square),
        where known: a reference decoder that warps per bone then moves the first frame's body too."""
        img = prepare_image(first_frame, self.size)
        x = torch.from_numpy(img).to(self.device).float().div(127.5).sub(1).permute(2, 0, 1)[None]
        enc_dtype = next(self.ae.encoder.parameters()).dtype
        z = self.ae.normalize(self.ae.encode_image(x.to(enc_dtype)).float())  # (1, C, h, w)
        self.cache.reset()
        self.decoder.reset(x.to(self.dtype) if self.ae.config.reference else None)
        self.generator.manual_seed(int(seed))
        z = z.to(self.dtype)
        ctrl0 = self._zero_control()
        self._dit_call(self.cache, z, z, ctrl0, torch.zeros(1, device=self.device), 0, self._identity_warp())
        rig = None
        if self.mode == "camera":
            rig = CameraRig(self.size, self.size, CameraState(fov_x=self.default_fov),
                            RigLimits(pitch_deg=APP_PITCH_LIMIT, roll_deg=APP_ROLL_LIMIT))
        body = None if pose is None else np.asarray(pose, np.float32)
        self.state = EngineState(frame_index=1, prev=z, rig=rig, ref=rig.pose() if rig else None, pose=body)
        if self.reencode:
            self.loop = PixelLoop(self.ae, x.to(self.dtype), self.decoder)
            self.loop.start(z)
        else:
            self.decoder(self.ae.denormalize(z.float()).to(self.dtype))   # primes the decoder's state
        return img

    @torch.no_grad()
    def step(self, control: np.ndarray | None = None) -> np.ndarray:
        """Generate the next latent frame; returns its (fpl, size, size, 3) uint8 video frames.

        control: camera mode (fpl, 7) or (7,) per-frame camera controls (controls/camera.py);
        pose mode (fpl, 33, 4) or (33, 4) landmarks; none mode: ignored.
        """
        if self.state.prev is None:
            raise RuntimeError("call reset(first_frame) before step()")
        t0 = time.perf_counter()
        ctrl, warp, maps = self._control_tokens(control)
        t1 = time.perf_counter()
        eps = torch.randn(self.state.prev.shape, generator=self.generator, device=self.device).to(self.dtype)
        z = self._dit_call(self.cache, self.state.prev, eps, ctrl, torch.ones(1, device=self.device),
                           self.state.frame_index, warp)
        t2 = time.perf_counter()
        if self.loop is not None:
            frames, z = self.loop(z, maps)                                # z: the frames shown, encoded again
        else:
            frames = self.decoder(self.ae.denormalize(z.float()).to(self.dtype), maps)  # (1, fpl, 3, H, W)
        out = ((frames[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        t3 = time.perf_counter()
        self.state.prev = z
        self.state.frame_index += 1
        self.state.timing = StepTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3)
        return out

    # ------------------------------------------------------------------ controls
    def _zero_control(self) -> torch.Tensor | None:
        if not self.dit.config.control_features:
            return None
        return torch.zeros(1, self.grid * self.grid, self.dit.config.control_features, device=self.device, dtype=self.dtype)

    def _identity_warp(self) -> torch.Tensor | None:
        return torch.eye(3, device=self.device)[None] if self.dit.config.reproject else None

    def _control_tokens(self, control: np.ndarray | None) -> tuple[torch.Tensor | None, ...]:
        """Control features (1, T, Cc); for reprojecting models, the DiT's warp map (1, 3, 3); the
        reference decoder's warps of the coming frames from the last one: for camera models the
        maps (1, fpl, 3, 3), for pose models that warp per bone the point fields (1, fpl, H, W, 2)
        (controls/bone_warp.py; from the second step on where the first frame's pose is unknown);
        None elsewhere (the identity)."""
        warp = maps = None
        if self.mode == "none":
            return None, None, None
        if control is None:
            raise ControlError(f"a {self.mode} model needs a control for every step")
        c = np.asarray(control, dtype=np.float64)
        if self.mode == "camera":
            if c.shape == (CONTROL_DIM,):
                c = np.repeat(c[None], self.fpl, 0)
            if c.shape != (self.fpl, CONTROL_DIM):
                raise ControlError(f"camera control must have shape ({CONTROL_DIM},) or ({self.fpl}, {CONTROL_DIM}), got {c.shape}")
            poses = []
            for row in c:
                self.state.rig.step(row)
                poses.append(self.state.rig.pose())
            ref = self.state.ref
            feats = plucker_tokens(np.stack([p.K for p in poses]), np.stack([p.w2c for p in poses]), ref.K, ref.w2c,
                                   self.size, self.size, self.grid)
            if self.ae.config.reference:
                maps = torch.from_numpy(np.stack([reprojection_map(ref.K, ref.w2c, p.K, p.w2c, self.size, self.size)
                                                  for p in poses]))[None].to(self.device)
            if self.dit.config.reproject:
                m = reprojection_map(ref.K, ref.w2c, poses[-1].K, poses[-1].w2c, self.size, self.size)
                warp = torch.from_numpy(m)[None].to(self.device)
            self.state.ref = poses[-1]
        else:
            if c.shape == (NUM_LANDMARKS, 4):
                c = np.repeat(c[None], self.fpl, 0)
            if c.shape != (self.fpl, NUM_LANDMARKS, 4):
                raise ControlError(f"pose control must have shape ({NUM_LANDMARKS}, 4) or ({self.fpl}, {NUM_LANDMARKS}, 4), got {c.shape}")
            feats = pose_tokens(c, self.grid)
            if self.ae.config.reference and self.ae.config.pose_warp:
                if self.state.pose is not None:
                    coming = torch.from_numpy(c[None]).float()
                    maps = chunk_points(torch.from_numpy(self.state.pose[None]), coming, self.size).to(self.device)
                self.state.pose = c[-1].astype(np.float32)
        return torch.from_numpy(feats)[None].to(self.device, self.dtype), warp, maps

    @property
    def timing(self) -> StepTiming:
        return self.state.timing
