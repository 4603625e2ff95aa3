"""Stage 0 of the recipe (paper App. B): the video autoencoder, and the latent statistics the DiTs
normalise with."""
from __future__ import annotations

import numpy as np
import torch

from data.shards import ShardReader
from data.video import contact_sheet, write_mp4
from model.autoencoder import PRESETS as AE_PRESETS
from model.autoencoder import VideoAutoencoder, transfer_autoencoder
from model.config import replace
from model.runtime import autocast
from train import losses
from train.config import TrainConfig
from train.data import ChunkSampler, to_pixels, to_uint8
from train.stage import Stage, default_device, image_psnr, split_dir


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
                    psnrs.append(image_psnr(x_hat, x))
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
