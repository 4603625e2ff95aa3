"""The recipe's stages (paper App. B), each a ``Stage`` for the one loop in train/loop.py."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from data.shards import ShardReader
from data.video import contact_sheet, write_mp4
from eval.metrics import psnr
from model.autoencoder import PRESETS as AE_PRESETS
from model.config import replace
from model.runtime import autocast
from model.autoencoder import VideoAutoencoder, transfer_autoencoder
from train import losses
from train.config import TrainConfig
from train.data import ChunkSampler, to_pixels, to_uint8
from train.loop import Stage, _rank


def split_dir(cfg: TrainConfig, split: str) -> str:
    """The shard directories of a split: ``cfg.data`` may join several datasets with commas
    (a mix, e.g. world clips and photo pans), each with train/, val/ and test/."""
    return ",".join(str(Path(d.strip()) / split) for d in cfg.data.split(","))


def default_device() -> torch.device:
    """This rank's GPU under torchrun (or the only GPU), else the CPU."""
    if torch.cuda.is_available():
        import os

        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (``a`` clamped to that range)."""
    return psnr(a.float().clamp(-1, 1).cpu().numpy(), b.float().cpu().numpy(), peak=2.0)


class AutoencoderStage(Stage):
    """Stage 0: reconstruction (L1 + SSIM) of random crops; noisy latents make a robust decoder."""
    phases = ("main",)
    ema_model = None

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = default_device()
        if cfg.transfer:                    # a wider autoencoder started from a trained one
            self.ae = VideoAutoencoder(AE_PRESETS[cfg.ae_preset])
            left = transfer_autoencoder(self.ae, VideoAutoencoder.from_pretrained(cfg.transfer))
            print(f"transferred weights from {cfg.transfer}; new: {left}")
        elif cfg.init:
            self.ae = VideoAutoencoder.from_pretrained(cfg.init)
        else:
            self.ae = VideoAutoencoder(AE_PRESETS[cfg.ae_preset])
        self.ae.to(self.device)
        self.models = {"model": self.ae}
        if cfg.ae_train == "decoder":
            self.ae.encoder.requires_grad_(False)
        self.phase_params = {"main": [p for p in self.ae.parameters() if p.requires_grad]}
        self.phase_lr = {"main": cfg.lr}
        self.train = ShardReader(split_dir(cfg, "train"))
        self.val = ShardReader(split_dir(cfg, "val"))
        self.sampler = ChunkSampler(self.train, self.ae.config.frames_per_latent, cfg.crop, cfg.still_fraction)

    def loss(self, phase, step, rng, gen):
        prev, cur = (x.to(self.device) for x in self.sampler.sample(self.cfg.batch_size, rng))  # (B, 1 + fpl, 3, c, c)
        B = cur.shape[0]
        z = self.ae.encode_chunks(torch.cat([cur, prev]))             # (2B, C, h, w)
        l2 = z.float().pow(2).mean()
        z = z + self.cfg.latent_noise * torch.randn(z.shape, generator=gen).to(self.device, z.dtype)
        x_hat = self.ae.decode_step(z[:B], z[B:])                     # (B, fpl, 3, c, c)
        rec = losses.reconstruction_loss(x_hat, cur[:, 1:], self.cfg.ssim_weight)
        return rec + self.cfg.latent_l2 * l2, {"rec": rec.item(), "z_rms": l2.sqrt().item()}

    @torch.no_grad()
    def evaluate(self, step, out_dir):
        """Reconstruction of the first 33 frames of 4 val clips of each source in the mix."""
        self.ae.eval()
        fpl = self.ae.config.frames_per_latent
        F = 1 + fpl * ((min(self.val.frame_shape[0], 33) - 1) // fpl)
        out, rows, all_psnr, all_ssim = {}, [], [], []
        with autocast(self.cfg.compute_dtype(self.device), self.device):
            for s, (val_dir, first, n) in enumerate(self.val.sources()):
                psnrs = []
                for i in range(first, first + min(4, n)):
                    x = to_pixels(self.val.frames(i)[:F])[None].to(self.device)
                    x_hat = self.ae.decode(self.ae.encode(x)).float()
                    psnrs.append(_psnr(x_hat, x))
                    all_ssim.append(losses.ssim(x_hat[0].clamp(-1, 1), x[0]).item())
                    rows += [to_uint8(x[0, ::4]), to_uint8(x_hat[0, ::4])]
                    if i == first:
                        write_mp4(out_dir / f"step-{step:07d}-{s}.mp4",
                                  np.concatenate([to_uint8(x[0]), to_uint8(x_hat[0])], 2))
                out[f"val_psnr_{val_dir.parent.name}"] = float(np.mean(psnrs))
                all_psnr += psnrs
        contact_sheet(rows, out_dir / f"step-{step:07d}.png")
        self.ae.train()
        return {"val_psnr": float(np.mean(all_psnr)), "val_ssim": float(np.mean(all_ssim)), **out}

    def export(self, out_dir, models):
        """Save with per-channel latent statistics measured on training clips (DiT normalisation)."""
        ae = models["model"]
        if self.cfg.ae_train == "decoder":   # same encoder: the DiTs' normalisation must not move
            ae.save_pretrained(out_dir / "model")
            return
        mean, std = latent_statistics(ae, self.train, clips=32)
        # a new config, not an edit of the one the model was built with (a shared preset object)
        ae.config = replace(ae.config, latent_mean=tuple(mean), latent_std=tuple(std))
        ae.save_pretrained(out_dir / "model")


@torch.no_grad()
def latent_statistics(ae: VideoAutoencoder, reader: ShardReader, clips: int) -> tuple[list, list]:
    """Per-channel mean and std of raw latents over the first ``clips`` clips."""
    fpl = ae.config.frames_per_latent
    F = 1 + fpl * ((reader.frame_shape[0] - 1) // fpl)
    zs = []
    dev = next(ae.parameters()).device
    for i in range(min(clips, len(reader))):
        zs.append(ae.encode(to_pixels(reader.frames(i)[:F])[None].to(dev)).float().cpu())
    z = torch.cat(zs, 1).transpose(1, 2).flatten(2)                 # (1, C, N)
    return z.mean(-1)[0].tolist(), z.std(-1)[0].clamp_min(1e-3).tolist()


STAGE_CLASSES = {"autoencoder": AutoencoderStage}


def build_stage(cfg: TrainConfig) -> Stage:
    if cfg.stage not in STAGE_CLASSES:
        raise ValueError(f"stage {cfg.stage!r} is not implemented")
    return STAGE_CLASSES[cfg.stage](cfg)


# ============================================================================= DiT stages
from model.dit import PRESETS as DIT_PRESETS  # noqa: E402
from model.dit import VideoDiT, maps_from_first, transfer_weights  # noqa: E402
from model.engine import check_pair  # noqa: E402
from model.sampling import causal_frame, rollout_one_step, sample_bidirectional, sample_causal  # noqa: E402
from model.pose_reader import PoseReader, PoseReaderConfig, peak_distance, pose_error  # noqa: E402
from train.latents import LatentWindows, encode_shards  # noqa: E402

VAL_LATENT_CLIPS = 16      # val clips of each data directory in the DiT stages' latent cache
PREVIOUS = {"adapt": "teacher", "distill": "adapt", "adversarial": "distill", "long": "adversarial"}


def stage_dir(cfg: TrainConfig, stage: str) -> Path:
    return Path(cfg.run_dir) / stage


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
        if _rank() == 0 and not path.exists():
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
        # (name, first latent window, first pixel clip, clips rolled out) of each source of the mix: the val latents
        # hold the first VAL_LATENT_CLIPS clips of each directory, the pixel reader all of them
        self.val_sources, lat = [], 0
        for d, pix, n in self.val_pixels.sources():
            self.val_sources.append((d.parent.name, lat, pix, min(n, 2)))
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
        clips = [(name, lat + j, pix + j) for name, lat, pix, n in self.val_sources for j in range(n)]
        for i, (name, i_lat, i_pix) in enumerate(clips):
            first, chunks, c, w = self.val.window(i_lat, 0, K)
            zc, cc, wc = self.to_device(torch.from_numpy(np.concatenate([first[None], chunks]))[None].float(),
                                        torch.from_numpy(c)[None].float(), torch.from_numpy(w)[None].float())
            zg = self.generate(zc[:, 0], cc, K, gen, wc)
            x_gen = self.ae.decode(self.ae.denormalize(zg)).float().clamp(-1, 1)[0]          # (1 + fpl K, 3, H, W)
            x_gt = to_pixels(self.val_pixels.frames(i_pix)[: 1 + fpl * K]).to(self.device)
            psnr_m.append(np.mean([_psnr(a, b) for a, b in zip(x_gen[1:], x_gt[1:])]))
            psnr_r.append(np.mean([_psnr(x_gt[0], b) for b in x_gt[1:]]))
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


STAGE_CLASSES.update(teacher=DiffusionStage, adapt=DiffusionStage)


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


class AdversarialStage(DiffusionStage):
    """Stages 4-5 (App. B): relativistic adversarial training with student forcing.

    The generator (from distill) rolls out from a real first frame exactly as at inference (one
    step per latent frame, KV cache, its own previous frame recycled and detached); a single
    parallel block-causal pass with gradients then recomputes the same frames, so gradients flow
    through the keys and values of earlier frames. The discriminator (from adapt, plus a head)
    scores every frame. ``long``: the video is rolled out segment by segment, each segment
    starting from the detached KV cache of the previous one and back-propagated on its own,
    and judged in a window that overlaps the previous segment. With ``long_burn_in`` the video
    first runs for a random number of latent frames without gradients (the generator's own
    rollout, as at inference), so the trained segments lie at a random depth of the video: the
    minutes-long drift is reached at the cost of the few segments that are trained.
    """

    def __init__(self, cfg: TrainConfig):
        self.long = cfg.stage == "long"
        super().__init__(cfg)
        self.disc = self.build_discriminator().to(self.device)
        self.models = {"generator": self.dit, "discriminator": self.disc}
        self.ema_model = "generator"
        self.S = cfg.segment_latents if self.long else cfg.clip_latents - 1
        self.n_segments = max(1, cfg.long_latents // self.S) if self.long else 1
        self.overlap = cfg.segment_overlap if self.long else 0
        self.burn = 0                                           # latent frames rolled out before segment 0
        self.phases = tuple(p for i in range(self.n_segments) for p in (f"disc{i}", f"gen{i}"))
        self.phase_optimizer = {p: p.rstrip("0123456789") for p in self.phases}
        if self.long and cfg.d_warmup:
            raise ValueError("d_warmup is for the adversarial stage (the long stage's generator phases carry the video)")
        if cfg.long_burn_in and not self.long:
            raise ValueError("long_burn_in is for the long stage")
        if self.long and cfg.teacher_forcing:
            raise ValueError("teacher forcing is an ablation of the adversarial stage only (no long ground truth)")
        if cfg.d_mismatch and (cfg.batch_size < 2 or (cfg.d_mismatch_on == "controls"
                                                       and not self.dit.config.control_features)):
            raise ValueError(f"d_mismatch pairs each real video with another clip's {cfg.d_mismatch_on}: it needs "
                             "batch_size >= 2" + (" and a controlled model" if cfg.d_mismatch_on == "controls" else ""))
        d_params = [p_ for p_ in self.disc.parameters() if p_.requires_grad]
        self._d_trainable = set(d_params)
        g_params = [p_ for p_ in self.dit.parameters() if p_.requires_grad]
        self.phase_params = {p: (d_params if p.startswith("disc") else g_params) for p in self.phases}
        self.phase_lr = {p: ((cfg.d_lr or cfg.lr) if p.startswith("disc") else cfg.lr) for p in self.phases}
        if self.overlap + self.S > self.train.chunks.shape[1]:
            raise ValueError("discriminator window longer than the training clips")
        self.teacher = None
        if cfg.teacher_weight:
            if cfg.teacher_forcing:
                raise ValueError("teacher_weight distils on the generator's own frames: not with teacher forcing")
            path = Path(cfg.teacher) if cfg.teacher else stage_dir(cfg, "adapt") / "final" / "model"
            self.teacher = self.frozen_dit(path)
        self.pose_reader = None
        if cfg.pose_weight:
            path = Path(cfg.pose_reader) if cfg.pose_reader else stage_dir(cfg, "pose_reader") / "final" / "model"
            self.pose_reader = PoseReader.from_pretrained(path).to(self.device).eval().requires_grad_(False)
            rc, dc = self.pose_reader.config, self.dit.config
            if (rc.latent_channels, rc.latent_size, rc.control_features, dc.patch) != (
                    dc.latent_channels, dc.latent_size, dc.control_features, 2):
                raise ValueError(f"pose reader {path} does not read this generator's latents and pose features")
        # generated frames kept before the segment: the discriminator's overlap, the recycled frame, and
        # the teacher's attention window (its past frames and the frame recycled into the oldest)
        self.keep = max(self.overlap, 1, self.teacher.config.window + 1 if self.teacher else 0)

    def active(self, phase: str, step: int) -> bool:
        """The generator waits for ``d_warmup`` steps: a discriminator whose new head is still
        random is fooled by any small move of the generator (measured: with the generator
        training from step 0 the discriminator never leaves chance; frozen, it separates
        real from generated within 20 steps), so it learns first."""
        return not (phase.startswith("gen") and step < self.cfg.d_warmup)

    def init_path(self) -> Path:
        if self.cfg.init:
            return Path(self.cfg.init)
        if self.long:
            return stage_dir(self.cfg, "adversarial") / "final" / "generator"
        return stage_dir(self.cfg, "distill") / "final" / "model"

    def build_discriminator(self) -> Discriminator:
        if self.long:
            return Discriminator.from_pretrained(stage_dir(self.cfg, "adversarial") / "final" / "discriminator")
        return Discriminator.from_generator(VideoDiT.from_pretrained(stage_dir(self.cfg, "adapt") / "final" / "model"))

    def _ctrl(self, c: torch.Tensor | None) -> torch.Tensor | None:
        return c if self.dit.config.control_features else None

    # ------------------------------------------------------------------ the video being made
    def _new_video(self, rng: np.random.Generator, gen: torch.Generator) -> None:
        """Pick a real first frame and a control sequence for the whole video."""
        B = self.cfg.batch_size
        self.burn = int(rng.integers(0, self.cfg.long_burn_in + 1)) if self.cfg.long_burn_in else 0
        total = self.burn + self.n_segments * self.S
        z, ctrl, warp = self.to_device(*self.train.sample(B, min(total, self.train.chunks.shape[1]), rng))
        while ctrl.shape[1] - 1 < total:  # long videos: chain controls of further clips
            _, more, more_warp = self.to_device(*self.train.sample(B, self.S, rng))
            ctrl = torch.cat([ctrl, more[:, 1:]], 1)
            warp = torch.cat([warp, more_warp[:, 1:]], 1)
        self.video = [z[:, 0]]                                  # generated latents, detached
        self.gt = z                                             # ground truth (teacher forcing, truth_weight)
        self.ctrl = ctrl                                        # (B, 1 + total, T, Cc)
        self.warp = warp                                        # (B, 1 + total, 3, 3) to the previous frame
        self.warp_first = maps_from_first(warp)                 # (B, 1 + total, 3, 3) to the first frame
        self.cache = self.dit.new_cache(B, device=self.device)
        with torch.no_grad():
            zero = torch.zeros(B, device=self.device)
            self.dit.step(self.cache, z[:, 0], z[:, 0], self._ctrl(ctrl[:, 0]), zero, 0, warp[:, 0])
            ones = torch.ones(B, device=self.device)
            prev = z[:, 0]
            for k in range(1, self.burn + 1):                   # burn-in: the video so far, no gradients
                prev = self.dit.step(self.cache, prev, self.randn(prev.shape, gen), self._ctrl(ctrl[:, k]), ones,
                                     k, warp[:, k])
                self.video = self.video[:1] + (self.video[1:] + [prev])[-self.keep:]

    def _start(self, seg: int) -> int:
        """Stream index of segment ``seg``'s first latent frame (after the first frame and the burn-in)."""
        return 1 + self.burn + seg * self.S

    def _segment_inputs(self, seg: int, gen: torch.Generator):
        """Positions, noise and controls of segment ``seg``; rolls it out without gradients."""
        a = self._start(seg)
        pos = torch.arange(a, a + self.S, device=self.device)
        eps = self.randn((self.cfg.batch_size, self.S, *self.video[0].shape[1:]), gen)
        ctrl = self.ctrl[:, a:a + self.S]
        warp = self.warp[:, a:a + self.S]
        cache = self.cache.clone()
        out = []
        prev = self.video[-1]
        ones = torch.ones(self.cfg.batch_size, device=self.device)
        with torch.no_grad():
            for i in range(self.S):
                if self.cfg.teacher_forcing:
                    prev = self.gt[:, a + i - 1]
                prev = self.dit.step(cache, prev, eps[:, i], self._ctrl(ctrl[:, i]), ones, a + i, warp[:, i])
                out.append(prev)
        return pos, eps, ctrl, warp, torch.stack(out, 1)

    def _overlap(self, seg: int) -> int:
        """Frames from before segment ``seg`` in its discriminator window (none before the first)."""
        return min(self.overlap, self._start(seg) - 1)

    def _window_conditions(self, seg: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Controls and warp maps of the discriminator's window of segment ``seg`` (the first
        overlap frame's recycled slot holds the first frame, so its map goes to the first
        frame's camera)."""
        a, o = self._start(seg), self._overlap(seg)
        w = [self.warp[:, :1]]
        if o:
            w += [self.warp_first[:, a - o:a - o + 1], self.warp[:, a - o + 1:a]]
        ctrl = torch.cat([self.ctrl[:, :1], self.ctrl[:, a - o:a + self.S]], 1)
        return ctrl, torch.cat(w + [self.warp[:, a:a + self.S]], 1)

    def _window(self, seg: int, fake_seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The discriminator's view of segment ``seg``: the first frame, the overlap from before
        and the segment, with their controls and warp maps."""
        o = self._overlap(seg)
        z = [self.video[0][:, None]] + ([torch.stack(self.video[-o:], 1)] if o else [])
        return (torch.cat(z + [fake_seg], 1), *self._window_conditions(seg))

    def _real(self, seg: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The real side of the relativistic pair. While the window lies inside the clip the
        video started from, it is that clip's ground truth: the same first frame and the same
        controls as the fake, so D(fake) - D(real) compares realism, not content (the paper's
        D(G(eps, c)) - D(x0, c)). Past the clip (long videos), real windows of other clips."""
        a, o = self._start(seg), self._overlap(seg)
        if a + self.S <= self.gt.shape[1]:
            return (torch.cat([self.gt[:, :1], self.gt[:, a - o:a + self.S]], 1), *self._window_conditions(seg))
        return self.to_device(*self.train.sample(self.cfg.batch_size, o + self.S, rng))

    def _d(self, z, ctrl, t, eps, warp):
        return self.disc(z, self._ctrl(ctrl), t, eps, warp=warp)

    def loss(self, phase, step, rng, gen):
        seg = int(phase.lstrip("discgen"))
        B = self.cfg.batch_size
        if phase.startswith("disc"):
            if seg == 0:
                self._new_video(rng, gen)
            self.seg_inputs = self._segment_inputs(seg, gen)
        pos, eps, ctrl, warp, rolled = self.seg_inputs
        real, real_ctrl, real_warp = self._real(seg, rng)
        t = torch.rand(B, generator=gen).to(self.device)        # no shift for the discriminator
        d_eps = self.randn(real.shape, gen)
        for p_ in self.disc.parameters():
            p_.requires_grad_(phase.startswith("disc") and p_ in self._d_trainable)
        if phase.startswith("disc"):
            fake, fake_ctrl, fake_warp = self._window(seg, rolled)
            if self.cfg.r_exact:
                real = real.requires_grad_(True)
                fake = fake.detach().requires_grad_(True)
            d_real = self._d(real, real_ctrl, t, d_eps, real_warp)
            d_fake = self._d(fake, fake_ctrl, t, d_eps, fake_warp)
            loss = losses.relativistic_d_loss(d_fake, d_real)
            if self.cfg.r_exact:
                r1 = losses.exact_r_penalty(d_real, real)
                r2 = losses.exact_r_penalty(d_fake, fake)
                reg = self.cfg.r_gamma / 2 * (r1 + r2)
            else:
                s = self.cfg.r_sigma
                noise_r = self.randn(real.shape, gen) * s
                noise_f = self.randn(fake.shape, gen) * s
                noise_r[:, 0] = 0
                noise_f[:, 0] = 0
                r1 = losses.approx_r_penalty(d_real, self._d(real + noise_r, real_ctrl, t, d_eps, real_warp))
                r2 = losses.approx_r_penalty(d_fake, self._d(fake + noise_f, fake_ctrl, t, d_eps, fake_warp))
                reg = self.cfg.r_lambda * (r1 + r2)
            metrics = {"d_loss": loss.item(), "r1": r1.item(), "r2": r2.item(),
                       "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}
            if self.cfg.d_mismatch:
                if self.cfg.d_mismatch_on == "controls":
                    # the same real windows under the next clip's controls (the first frame's stay)
                    wrong = torch.cat([real_ctrl[:, :1], real_ctrl[:, 1:].roll(1, 0)], 1)
                    d_wrong = self._d(real, wrong, t, d_eps, real_warp)
                else:
                    # the same real windows after the next clip's first frame: another world's start
                    wrong_z = torch.cat([real[:, :1].roll(1, 0), real[:, 1:]], 1)
                    d_wrong = self._d(wrong_z, real_ctrl, t, d_eps, real_warp)
                mm = losses.mismatch_d_loss(d_wrong, d_real)
                loss = loss + self.cfg.d_mismatch * mm
                metrics["d_mismatch"] = mm.item()
            return loss + reg, metrics
        # generator: recompute the segment with gradients, in one parallel pass over the cache
        prev = torch.cat([self.video[-1][:, None], rolled[:, :-1]], 1)
        a = int(pos[0])
        if self.cfg.teacher_forcing:
            prev = self.gt[:, a - 1:a - 1 + self.S]
        ones = torch.ones(B, self.S, device=self.device)
        fake_seg = self.dit(prev.detach(), eps, self._ctrl(ctrl), ones, mode="causal", positions=pos,
                            cache=self.cache, warp=warp)
        fake, fake_ctrl, fake_warp = self._window(seg, fake_seg)
        d_fake = self._d(fake, fake_ctrl, t, d_eps, fake_warp)
        with torch.no_grad():
            d_real = self._d(real, real_ctrl, t, d_eps, real_warp)
        loss = losses.relativistic_g_loss(d_fake, d_real)
        metrics = {"g_loss": loss.item()}
        if self.teacher is not None:
            t_loss = self._teacher_loss(seg, fake_seg, rolled, eps, gen)
            loss = loss + self.cfg.teacher_weight * t_loss
            metrics["teacher_mse"] = t_loss.item()
        if self.cfg.truth_weight and a + self.S <= self.gt.shape[1]:
            # the first frame and the poses fix the avatar's next frames: where the rollout has lost the person,
            # the true frame is where it should return (docs/training.md, "The ground truth as a target in the long
            # stage"). A world's camera reveals new ground: there the term buys PSNR with blur, FVD-lite worse over a
            # minute ("The ground truth as a target for the world")
            r_loss = ((fake_seg.float() - self.gt[:, a:a + self.S].float()) ** 2).mean()
            loss = loss + self.cfg.truth_weight * r_loss
            metrics["truth_mse"] = r_loss.item()
        if self.pose_reader is not None:
            # does each frame show the pose it was asked for, as the frozen reader sees it (ControlNet++'s
            # reward-consistency loss, on latents)
            p_loss = pose_error(self.pose_reader(fake_seg.float().flatten(0, 1)), ctrl.flatten(0, 1))
            loss = loss + self.cfg.pose_weight * p_loss
            metrics["pose_error"] = p_loss.item()
        self.video += list(fake_seg.detach().unbind(1))
        self.video = self.video[:1] + self.video[1:][-self.keep:]  # constant memory over long videos
        return loss, metrics

    def _teacher_loss(self, seg: int, fake_seg: torch.Tensor, rolled: torch.Tensor, eps: torch.Tensor,
                      gen: torch.Generator) -> torch.Tensor:
        """On-policy distillation: at ``teacher_latents`` random frames of the segment, the multi-step
        teacher's frame from the same noise, after the generator's own (detached) frames, is the
        target of the one-step frame. Consistency distillation matched the teacher after real frames
        only (teacher forcing); here it is matched where the generator's own rollout has taken it,
        deep in long videos, where the first frame's world is lost (docs/training.md)."""
        a, B = self._start(seg), self.cfg.batch_size
        n = min(self.cfg.teacher_latents, self.S)
        picks = sorted(torch.randperm(self.S, generator=gen)[:n].tolist())
        # frame j of the stream: out[j] (clean, detached) and noise[:, j - 1]
        before = self.video[1:]
        out = [None] * (a + self.S)
        out[0] = self.video[0]
        for j, z in zip(range(a - len(before), a), before):
            out[j] = z
        for i in range(self.S):
            out[a + i] = rolled[:, i]
        noise = torch.zeros(B, a + self.S - 1, *eps.shape[2:], device=self.device)
        w = min(self.teacher.config.window, a - 1)               # past frames of segment frame 0's window
        noise[:, a - 1 - w:] = self.randn((B, w + self.S, *eps.shape[2:]), gen)   # re-noises the window's frames
        noise[:, a - 1:] = eps                                  # each frame's own starting noise
        target = torch.stack([causal_frame(self.teacher, out, a + i, noise, self._ctrl(self.ctrl), self.warp,
                                           self.cfg.sample_steps, self.cfg.shift) for i in picks], 1)
        return ((fake_seg[:, picks].float() - target.float()) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, step, out_dir):
        metrics = super().evaluate(step, out_dir)
        if not self.long:
            return metrics
        # the drift the long stage is for: a val rollout as long as the training videos, its last
        # latents against the ground truth's (latent MSE) and its RMS against theirs (a growing
        # RMS is the coloured mosaic of a diverging rollout)
        self.dit.eval()
        K = min(self.cfg.long_burn_in + self.n_segments * self.S, self.val.chunks.shape[1])
        gen = torch.Generator().manual_seed(4321)
        mse, ratio, pose = [], [], []
        for i in range(min(2, len(self.val))):
            first, chunks, c, w = self.val.window(i, 0, K)
            z0, cc, wc = self.to_device(torch.from_numpy(first)[None].float(), torch.from_numpy(c)[None].float(),
                                        torch.from_numpy(w)[None].float())
            z = rollout_one_step(self.dit, z0, self._ctrl(cc), K, gen, wc)[0, -self.S:].float()
            gt = torch.from_numpy(chunks[-self.S:]).float().to(z.device)
            mse.append(float(((z - gt) ** 2).mean()))
            ratio.append(float(z.pow(2).mean().sqrt() / gt.pow(2).mean().sqrt()))
            if self.pose_reader is not None:            # does the end of the rollout still show the commanded poses
                pose.append(float(pose_error(self.pose_reader(z), cc[0, -self.S:])))
        metrics.update({"long_latents": K, "long_last_mse": float(np.mean(mse)), "long_rms_ratio": float(np.mean(ratio))})
        if pose:
            metrics["long_last_pose_error"] = float(np.mean(pose))
        self.dit.train()
        return metrics

    def export(self, out_dir, models):
        models["generator"].save_pretrained(out_dir / "generator")
        models["discriminator"].save_pretrained(out_dir / "discriminator")


from model.discriminator import Discriminator  # noqa: E402


class PoseReaderStage(Stage):
    """The pose reader (model/pose_reader.py): heatmap regression from ground-truth latent frames
    to the pose control features they were rendered with. Its input latents get noise of a random
    std up to ``latent_noise``, so that it reads the pose of a generator's latents too, which are
    not exactly on the autoencoder's manifold."""
    phases = ("main",)
    ema_model = None

    def __init__(self, cfg: TrainConfig):
        if cfg.control != "pose":
            raise ValueError("the pose reader is for pose-controlled presets (control=pose)")
        self.cfg = cfg
        self.device = default_device()
        ae = load_autoencoder(cfg)
        size = ShardReader(split_dir(cfg, "val")).frame_shape[1] // ae.config.spatial_factor
        self.grid = size // 2
        self.train = latent_cache(cfg, ae, "train", self.grid, limit=cfg.latent_clips or None)
        self.val = latent_cache(cfg, ae, "val", self.grid, limit=VAL_LATENT_CLIPS)
        if cfg.init:
            self.reader = PoseReader.from_pretrained(cfg.init)
        else:
            self.reader = PoseReader(PoseReaderConfig(latent_channels=ae.config.latent_channels, latent_size=size,
                                                      control_features=self.train.control.shape[-1]))
        self.reader.to(self.device)
        self.models = {"model": self.reader}
        self.phase_params = {"main": list(self.reader.parameters())}
        self.phase_lr = {"main": cfg.lr}

    def loss(self, phase, step, rng, gen):
        z, ctrl, _ = self.train.sample(self.cfg.batch_size, self.cfg.clip_latents - 1, rng)
        z, ctrl = z[:, 1:].flatten(0, 1), ctrl[:, 1:].flatten(0, 1)           # (N, C, h, w), (N, T, Cc)
        std = self.cfg.latent_noise * torch.rand(z.shape[0], 1, 1, 1, generator=gen)
        z = z + std * torch.randn(z.shape, generator=gen)
        loss = pose_error(self.reader(z.to(self.device)), ctrl.to(self.device))
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, step, out_dir):
        """Relative error (1.0 = no pose read) and the distance of each landmark's peak token from
        the commanded one, on the val clips' latents, clean and with noise of std 0.2."""
        self.reader.eval()
        z = torch.from_numpy(self.val.chunks).float().flatten(0, 1)
        ctrl = torch.from_numpy(self.val.control[:, 1:]).float().flatten(0, 1)
        metrics = {}
        for name, std in (("clean", 0.0), ("noisy", 0.2)):
            zz = z + std * torch.randn(z.shape, generator=torch.Generator().manual_seed(7))
            pred = torch.cat([self.reader(zz[i:i + 256].to(self.device)).float().cpu() for i in range(0, len(z), 256)])
            d = peak_distance(pred, ctrl, self.grid)
            metrics.update({f"{name}_error": float(pose_error(pred, ctrl)),
                            f"{name}_peak_tokens": float(d.mean()), f"{name}_peak_within_1": float((d <= 1).float().mean())})
        self.reader.train()
        return metrics


from train.decoder_gan import DecoderGanStage  # noqa: E402

STAGE_CLASSES.update(decoder=DecoderGanStage)
STAGE_CLASSES.update(distill=DistillStage, adversarial=AdversarialStage, long=AdversarialStage,
                     pose_reader=PoseReaderStage)
