"""The diffusion stages of the recipe (paper App. B): the teacher and its causal adaptation (flow
matching), and consistency distillation to one step; with the latent cache the DiT stages train on."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from data.shards import ShardReader
from data.video import contact_sheet, write_mp4
from model.autoencoder import VideoAutoencoder
from model.config import replace
from model.dit import PRESETS as DIT_PRESETS
from model.dit import VideoDiT, maps_from_first, transfer_weights
from model.engine import check_pair
from model.sampling import rollout_one_step, sample_bidirectional, sample_causal
from train import losses
from train.config import TrainConfig
from train.data import to_pixels, to_uint8
from train.distributed import rank
from train.latents import LatentWindows, encode_shards
from train.stage import Stage, default_device, image_psnr, split_dir, stage_dir

VAL_LATENT_CLIPS = 16      # val clips of each data directory in the DiT stages' latent cache
PREVIOUS = {"adapt": "teacher", "distill": "adapt", "adversarial": "distill", "long": "adversarial"}


@dataclass(frozen=True)
class ValSource:
    """One data directory of the validation mix, as the DiT stages' rollouts read it: the val
    latents hold the first VAL_LATENT_CLIPS clips of each directory, the pixel reader all of them."""
    name: str               # the source's name (the directory's parent)
    first_latent: int       # its first clip in the val latent cache
    first_pixel: int        # its first clip in the val pixel reader
    rollouts: int           # its clips rolled out at each evaluation


def load_autoencoder(cfg: TrainConfig) -> VideoAutoencoder:
    path = Path(cfg.ae) if cfg.ae else stage_dir(cfg, "autoencoder") / "final" / "model"
    return VideoAutoencoder.from_pretrained(path).eval()


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's weights and config (names the latent cache it made)."""
    h = hashlib.sha256(repr(getattr(model, "config", None)).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def latent_cache(cfg: TrainConfig, ae: VideoAutoencoder, split: str, grid: int, limit: int | None = None) -> LatentWindows:
    """The latent cache of a split, encoded on first use, one file per data directory (adding
    a source to a mix encodes only the new one); each is named by the autoencoder's fingerprint,
    its directory and its number of clips, so a retrained autoencoder or a grown dataset never
    reads latents made for another. ``limit`` caps the clips taken from each directory."""
    ae_fp = model_fingerprint(ae)
    parts = []
    for shards in split_dir(cfg, split).split(","):
        n = len(ShardReader(shards))
        n = min(n, limit) if limit else n
        data = hashlib.sha256(shards.encode()).hexdigest()[:6]
        path = Path(cfg.run_dir) / "latents" / f"{split}-{cfg.control}-{ae_fp}-{data}-{n}.npz"
        # under torchrun rank 0 encodes while the others wait (all ranks pass the barrier, whether
        # or not they saw the file)
        stale = False
        if path.exists() and cfg.recycle == "frames":
            with np.load(path) as z:
                stale = "frame_maps" not in z.files
        if rank() == 0 and (stale or not path.exists()):    # a cache made before frame maps: encode it again
            encode_shards(ae, shards, path, cfg.control, grid, tuple(range(0, 17, 2)), limit,
                          cfg.compute_dtype(next(ae.parameters()).device))
        if dist.is_initialized():
            dist.barrier()
        parts.append(LatentWindows.load(path))
    return LatentWindows.concat(parts)


class DiffusionStage(Stage):
    """Stages 1-2 (App. B): flow matching with shifted t, the same t for every frame.

    teacher: bidirectional, the first frame in every frame's recycled slot (the offline model);
    adapt:   block-causal, the ground-truth previous latent recycled (teacher forcing).
    """
    phases = ("main",)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = default_device()
        self.ae = load_autoencoder(cfg).to(self.device)
        for p_ in self.ae.parameters():
            p_.requires_grad_(False)
        self.val_pixels = ShardReader(split_dir(cfg, "val"))
        H = self.val_pixels.frame_shape[1]
        self.latent_size = H // self.ae.config.spatial_factor
        self.dit = self.build_model().to(self.device)
        check_pair(self.ae, self.dit)
        self.dit.gradient_checkpointing = cfg.grad_checkpointing
        grid = self.latent_size // self.dit.config.patch
        self.train = latent_cache(cfg, self.ae, "train", grid, limit=cfg.latent_clips or None)
        self.val = latent_cache(cfg, self.ae, "val", grid, limit=VAL_LATENT_CLIPS)
        self.val_sources: list[ValSource] = []
        lat = 0
        for d, pix, n in self.val_pixels.sources():
            self.val_sources.append(ValSource(d.parent.name, first_latent=lat, first_pixel=pix, rollouts=min(n, 2)))
            lat += min(n, VAL_LATENT_CLIPS)
        self.models = {"model": self.dit}
        self.ema_model = "model"
        self.phase_params = {"main": [p_ for p_ in self.dit.parameters() if p_.requires_grad]}
        self.phase_lr = {"main": cfg.lr}
        self.mode = "bidirectional" if cfg.stage == "teacher" else "causal"

    def init_path(self) -> Path | None:
        if self.cfg.init:
            return Path(self.cfg.init)
        prev = PREVIOUS.get(self.cfg.stage)
        return stage_dir(self.cfg, prev) / "final" / "model" if prev else None

    def build_model(self) -> VideoDiT:
        init = None if self.cfg.transfer else self.init_path()
        if init is not None:
            return VideoDiT.from_pretrained(init)
        dc = replace(DIT_PRESETS[self.cfg.dit_preset], latent_channels=self.ae.config.latent_channels,
                     latent_size=self.latent_size, control=self.cfg.control, reproject=self.cfg.reproject,
                     frames_per_latent=self.ae.config.frames_per_latent)
        model = VideoDiT(dc)
        if self.cfg.transfer:
            left = transfer_weights(model, VideoDiT.from_pretrained(self.cfg.transfer))
            print(f"transferred weights from {self.cfg.transfer}; new: {left}")
        return model

    def frozen_dit(self, path: Path) -> VideoDiT:
        """A model the stage reads and never trains (a teacher): on the device, eval mode, no gradients."""
        return VideoDiT.from_pretrained(path).to(self.device).eval().requires_grad_(False)

    def to_device(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Batches and noise are drawn on the CPU (seeded, resumable) and moved here."""
        return [x.to(self.device) for x in tensors]

    def randn(self, shape, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(shape, generator=gen).to(self.device)

    def inputs(self, z: torch.Tensor, noisy: torch.Tensor, warp: torch.Tensor,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(recycled, noisy, warp) inputs for a teacher-forced clip z (B, F, C, h, w) whose
        frame-to-previous-frame maps are ``warp`` (B, F, 3, 3)."""
        if self.cfg.stage == "teacher":
            # image-to-video conditioning (as SVD / Wan I2V): the first frame on every frame's channels
            # (reprojected from the first frame's camera); adaptation then swaps in the previous
            # frame, so the residual head transfers
            recycled = z[:, :1].expand_as(z)
            warp = maps_from_first(warp)
        else:
            prev = torch.cat([z[:, :1], z[:, :-1]], 1)
            if self.cfg.recycle_noise > 0:
                std = self.cfg.recycle_noise * torch.rand((z.shape[0], z.shape[1], 1, 1, 1), generator=gen)
                std[:, :1] = 0.0  # the first frame is given exactly
                prev = prev + std.to(self.device) * self.randn(z.shape, gen)
            recycled = prev
        return recycled, torch.cat([z[:, :1], noisy[:, 1:]], 1), warp

    def loss(self, phase, step, rng, gen):
        z, ctrl, warp = self.to_device(*self.train.sample(self.cfg.batch_size, self.cfg.clip_latents - 1, rng))
        B, F = z.shape[:2]                                                                  # z (B, F, C, h, w)
        t = losses.shift_t(torch.rand(B, generator=gen), self.cfg.shift).to(self.device)   # same t per clip
        tf = t[:, None].expand(B, F).clone()
        tf[:, 0] = 0.0                                                                      # the given first frame
        eps = self.randn(z.shape, gen)
        recycled, noisy, warp = self.inputs(z, losses.flow_interpolate(z, eps, tf), warp, gen)
        x0 = self.dit(recycled, noisy, ctrl if self.dit.config.control_features else None, tf, mode=self.mode,
                      warp=warp)
        loss = losses.v_loss_from_x0(x0[:, 1:], z[:, 1:], tf[:, 1:], self.cfg.t_min)
        return loss, {"loss": loss.item()}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def generate(self, z0: torch.Tensor, ctrl: torch.Tensor, K: int, gen: torch.Generator,
                 warp: torch.Tensor) -> torch.Tensor:
        if self.cfg.stage == "teacher":
            return sample_bidirectional(self.dit, z0, ctrl, K, self.cfg.sample_steps, self.cfg.shift, gen, warp)
        if self.cfg.stage == "adapt":
            return sample_causal(self.dit, z0, ctrl, K, self.cfg.sample_steps, self.cfg.shift, gen, warp)
        return rollout_one_step(self.dit, z0, ctrl, K, gen, warp)

    @torch.no_grad()
    def evaluate(self, step, out_dir):
        self.dit.eval()
        K = self.cfg.clip_latents - 1
        gen = torch.Generator().manual_seed(1234)
        rng = np.random.default_rng(1234)
        z, ctrl, warp = self.to_device(*self.val.sample(4, K, rng))
        metrics = {}
        # one call from the clean previous frame at t = 1 (teacher forced) vs copying that frame
        if self.cfg.stage != "teacher":
            tf = torch.ones(z.shape[:2], device=self.device)
            tf[:, 0] = 0
            recycled = torch.cat([z[:, :1], z[:, :-1]], 1)
            noisy = torch.cat([z[:, :1], self.randn(z[:, 1:].shape, gen)], 1)
            x0 = self.dit(recycled, noisy, ctrl if self.dit.config.control_features else None, tf, mode="causal",
                          warp=warp)
            # frames 2.. only: frame 1's recycled input is the still code of the first frame
            metrics["onecall_mse"] = float(((x0[:, 2:] - z[:, 2:]) ** 2).mean())
            metrics["copy_prev_mse"] = float(((z[:, 1:-1] - z[:, 2:]) ** 2).mean())
        # rollouts decoded to pixels against the ground-truth clip
        fpl = self.ae.config.frames_per_latent
        psnr_m, psnr_r, rows, by_source = [], [], [], {}
        clips = [(src.name, src.first_latent + j, src.first_pixel + j)
                 for src in self.val_sources for j in range(src.rollouts)]
        for i, (name, i_lat, i_pix) in enumerate(clips):
            first, chunks, c, w = self.val.window(i_lat, 0, K)
            zc, cc, wc = self.to_device(torch.from_numpy(np.concatenate([first[None], chunks]))[None].float(),
                                        torch.from_numpy(c)[None].float(), torch.from_numpy(w)[None].float())
            zg = self.generate(zc[:, 0], cc, K, gen, wc)
            x_gen = self.ae.decode(self.ae.denormalize(zg)).float().clamp(-1, 1)[0]          # (1 + fpl K, 3, H, W)
            x_gt = to_pixels(self.val_pixels.frames(i_pix)[: 1 + fpl * K]).to(self.device)
            psnr_m.append(np.mean([image_psnr(a, b) for a, b in zip(x_gen[1:], x_gt[1:])]))
            psnr_r.append(np.mean([image_psnr(x_gt[0], b) for b in x_gt[1:]]))
            by_source.setdefault(f"psnr_model_{name}", []).append(psnr_m[-1])
            by_source.setdefault(f"psnr_repeat_{name}", []).append(psnr_r[-1])
            rows += [to_uint8(x_gt[::fpl]), to_uint8(x_gen[::fpl])]
            if i == 0:
                write_mp4(out_dir / f"step-{step:07d}.mp4", np.concatenate([to_uint8(x_gt), to_uint8(x_gen)], 2))
        contact_sheet(rows, out_dir / f"step-{step:07d}.png")
        if len(self.val_sources) > 1:                           # a mix: each source's rollouts too
            metrics.update({k: float(np.mean(v)) for k, v in by_source.items()})
        metrics.update(psnr_model=float(np.mean(psnr_m)), psnr_repeat=float(np.mean(psnr_r)))
        self.dit.train()
        return metrics

    def export(self, out_dir, models):
        models["model"].save_pretrained(out_dir / "model")


class DistillStage(DiffusionStage):
    """Stage 3 (App. B): consistency distillation to one step, teacher forced.

    A fixed grid of ``distill_steps`` shifted noise levels; the frozen adapted model takes one
    Euler step from t_{n+1} to t_n; the student at t_{n+1} must match its own prediction at t_n
    (no EMA target, stop-gradient), or the teacher's clean estimate when t_n = 0.
    """

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.teacher = self.frozen_dit(Path(cfg.teacher) if cfg.teacher else self.init_path())
        n = torch.arange(cfg.distill_steps + 1, dtype=torch.float32) / cfg.distill_steps
        self.grid = losses.shift_t(n, cfg.shift)                  # (N + 1,), grid[0] = 0, grid[N] = 1

    def loss(self, phase, step, rng, gen):
        z, ctrl, warp = self.to_device(*self.train.sample(self.cfg.batch_size, self.cfg.clip_latents - 1, rng))
        B, F = z.shape[:2]
        ctrl = ctrl if self.dit.config.control_features else None
        n = torch.randint(0, self.cfg.distill_steps, (B,), generator=gen)
        t_hi, t_lo = self.grid[n + 1].to(self.device), self.grid[n].to(self.device)

        def per_frame(t):
            tf = t[:, None].expand(B, F).clone()
            tf[:, 0] = 0.0
            return tf

        eps = self.randn(z.shape, gen)
        x_hi = losses.flow_interpolate(z, eps, per_frame(t_hi))
        recycled, x_hi, warp = self.inputs(z, x_hi, warp, gen)
        with torch.no_grad():
            x0_t = self.teacher(recycled, x_hi, ctrl, per_frame(t_hi), mode="causal", warp=warp)
            th = t_hi.view(B, 1, 1, 1, 1)
            x_lo = x_hi + (t_lo - t_hi).view(B, 1, 1, 1, 1) * (x_hi - x0_t) / th     # one Euler step
            x_lo[:, 0] = z[:, 0]
            target = self.dit(recycled, x_lo, ctrl, per_frame(t_lo), mode="causal", warp=warp)
            at_zero = (t_lo == 0).view(B, 1, 1, 1, 1)
            target = torch.where(at_zero, x_lo, target)
        pred = self.dit(recycled, x_hi, ctrl, per_frame(t_hi), mode="causal", warp=warp)
        loss = ((pred[:, 1:].float() - target[:, 1:].float()) ** 2).mean()
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, step, out_dir):
        metrics = super().evaluate(step, out_dir)
        # the one-step student against the teacher's full ODE solution from the same noise
        self.dit.eval()
        rng = np.random.default_rng(99)
        gen = torch.Generator().manual_seed(99)
        z, ctrl, warp = self.to_device(*self.val.sample(4, self.cfg.clip_latents - 1, rng))
        ctrl = ctrl if self.dit.config.control_features else None
        recycled = torch.cat([z[:, :1], z[:, :-1]], 1)
        x = torch.cat([z[:, :1], self.randn(z[:, 1:].shape, gen)], 1)
        B, F = z.shape[:2]
        ones = torch.ones(B, F, device=self.device)
        ones[:, 0] = 0
        one_step = self.dit(recycled, x, ctrl, ones, mode="causal", warp=warp)
        for i in range(self.cfg.distill_steps, 0, -1):
            t_hi, t_lo = float(self.grid[i]), float(self.grid[i - 1])
            tf = torch.full((B, F), t_hi, device=self.device)
            tf[:, 0] = 0
            x0 = self.teacher(recycled, x, ctrl, tf, mode="causal", warp=warp)
            x = torch.cat([z[:, :1], x[:, 1:] + (t_lo - t_hi) * (x[:, 1:] - x0[:, 1:]) / t_hi], 1)
        metrics["ode_gap_mse"] = float(((one_step[:, 1:] - x[:, 1:]) ** 2).mean())
        self.dit.train()
        return metrics
