"""The adversarial decoder fine-tune (``--stage decoder``): a trained autoencoder's decoder made sharp.

An autoencoder trained with L1 + SSIM alone decodes the mean of what a latent could hold: about a
tenth of the truth's fine detail survives (docs/training.md). Production image and video
autoencoders add an adversarial term to their decoder's training for this reason (VQGAN, Esser
et al. 2021; SD's VAE; TAESD). Here only the decoder trains: the encoder, hence the latent space
and every generator trained in it, stays exactly as it was, so each shipped model gets the new
decoder as it is.

Per step, on random crops of training clips (``crop``), a batch of frame stacks: the last frame
of the previous latent, then the ``fpl`` frames of the current one (a ``still_fraction`` of them
a single frame repeated, as the first frame is coded). Real stacks are the truth; fake stacks are
the decoder's frames from the frozen encoder's latents (with ``latent_noise``, as generated
latents are never exact), the previous latent's frame decoded without gradients. The patch
discriminator (model/patch_discriminator.py) sees both, so the jump at a latent boundary is
judged beside the detail. Losses:
- discriminator: relativistic pairing with exact R1 and R2 (R3GAN), or hinge (``gan_loss``);
- decoder: L1 + SSIM as the anchor, the adversarial term scaled by VQGAN's adaptive weight times
  ``adv_weight``, feature matching on the discriminator's levels (``fm_weight``) and the frame-to-
  frame changes against the truth's, the step across the latent boundary weighted as much as the
  steps inside it together (``temporal_weight``: the pulse).

With ``reference`` the decoder becomes a reference decoder (model/autoencoder.py): each sample
also carries the context frame warped to every coming frame's camera (model/warp.py; for pose
clips the identity, or with ``pose_warp`` per bone to the coming poses: controls/bone_warp.py) with
its in-view mask. So that copying stays honest, the context frame
is the truth, the decoder's own frame (the previous chunk decoded with its reference, as in a
stream), the truth blurred and noisy, another sample's frame (wrong), or missing, in the shares of
``REFERENCE_MIX``; ``gdl_weight`` adds the gradient difference loss against the blur of copying.
``latent_lag``: a share of the samples are decoded from the latents of the chunk before (a generator
lagging the commanded motion) with the reference warped to the commanded frames, so that the decoder
learns to place what the reference carries where the control says, not where a stale latent has it.
``motion_weight``: each step of the stack should change the frame as much as the truth's step does
(the pulse as a loss, train/losses.py). ``ref_flow``: the decoder also moves its warped reference by a flow it reads from the latents, for
the parallax a camera's homography misses (started at zero; trained through the losses above).
``ref_kernel=1``: the reference branch's second convs become 1x1 (model/autoencoder.py with_ref_kernel),
a cheaper decode step.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.shards import ShardReader
from data.video import contact_sheet
from eval.metrics import detail_kept, psnr_per_frame, pulse
from eval.rollout import Controls
from controls.bone_warp import chunk_points, identity_points
from controls.camera import reprojection_map
from controls.pose import NUM_LANDMARKS
from model.autoencoder import VideoAutoencoder, with_ref_kernel, with_reference
from model.patch_discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from train import losses
from train.config import TrainConfig
from train.data import gaussian_blur, to_pixels, to_uint8
from model.warp import crop_maps, warp_reference
from train.stage import Stage, default_device, split_dir, stage_dir


STACK, START, STILL = 0, 1, 2    # kinds of sample: a chunk after two chunks, after the first frame, a still
# what the reference decoder's context frame is, and how often: the truth, the decoder's own last frame
# of the chunk before (decoded from the truth before that, as a stream decodes each chunk from the last),
# the truth blurred (sigma 0.5-1.5 px) with noise, another sample's, none
REFERENCE_MIX = {"truth": 0.3, "decoded": 0.35, "blurred": 0.2, "wrong": 0.05, "missing": 0.1}


class StackSampler:
    """Random crops of consecutive chunks: (pp, prev, cur), each (B, 1 + fpl, 3, c, c) in [-1, 1],
    with cur[:, 0] = prev[:, -1] the context frame, each sample's kind (B,): STACK, START (the
    chunk before ``prev`` is the clip's first frame, coded alone: pp is that frame repeated) or
    STILL (a single frame repeated, coded alone, as the first frame of a stream), and the warps
    from each of prev's and cur's new frames to their context frame, on the crop: the commanded
    camera's homographies (B, 2, fpl, 3, 3) where the clips have cameras, the per-bone point
    fields (B, 2, fpl, c, c, 2) of controls/bone_warp.py where they have landmarks, else the identity."""

    def __init__(self, reader: ShardReader, fpl: int, crop: int, still_fraction: float, pose_warp: bool = False):
        self.reader, self.fpl, self.crop, self.still = reader, fpl, crop, still_fraction
        self.pose_warp = pose_warp and reader.truth(0, "landmarks") is not None
        self.F, self.H, self.W = reader.frame_shape[:3]
        if crop > min(self.H, self.W):
            raise ValueError(f"crop {crop} larger than frames {self.H}x{self.W}")
        if self.F < 1 + 2 * fpl:
            raise ValueError(f"clips need at least {1 + 2 * fpl} frames, got {self.F}")

    def sample(self, batch: int, rng: np.random.Generator):
        n, fpl = 1 + self.fpl, self.fpl
        out = np.empty((3, batch, n, self.crop, self.crop, 3), np.uint8)
        kind = np.full(batch, STACK)
        maps = np.tile(np.eye(3, dtype=np.float32), (batch, 2, fpl, 1, 1))
        ys, xs, flips = np.zeros(batch, np.int64), np.zeros(batch, np.int64), np.zeros(batch, bool)
        poses = np.zeros((batch, 2, 1 + fpl, NUM_LANDMARKS, 2), np.float32)     # context frame, new frames
        for b in range(batch):
            i = int(rng.integers(len(self.reader)))
            clip = self.reader.frames(i)
            y, x = rng.integers(0, self.H - self.crop + 1), rng.integers(0, self.W - self.crop + 1)
            ys[b], xs[b] = y, x
            crop = clip[:, y:y + self.crop, x:x + self.crop]
            if rng.random() < 0.5:
                crop = crop[:, :, ::-1]
                flips[b] = True
            if rng.random() < self.still:
                kind[b] = STILL
                out[:, b] = crop[int(rng.integers(self.F))]
                continue
            # the current chunk's context frame s; the previous chunk ends there and starts at s - fpl,
            # which is the first frame (coded alone) or the end of the chunk before
            s = fpl * int(rng.integers(1, (self.F - 1) // fpl))
            out[2, b], out[1, b] = crop[s:s + n], crop[s - fpl:s + 1]
            K, w2c = self.reader.truth(i, "K"), self.reader.truth(i, "w2c")
            if K is not None and w2c is not None:
                for c, a in enumerate((s - fpl, s)):
                    for j in range(fpl):
                        maps[b, c, j] = reprojection_map(K[a], w2c[a], K[a + 1 + j], w2c[a + 1 + j], self.W, self.H)
            if self.pose_warp:
                lm = self.reader.truth(i, "landmarks")
                for c, a in enumerate((s - fpl, s)):
                    poses[b, c] = lm[a:a + 1 + fpl, :, :2]
            if s == fpl:
                kind[b] = START
                out[0, b] = crop[0]
            else:
                out[0, b] = crop[s - 2 * fpl:s - fpl + 1]
        pp, prev, cur = (to_pixels(o) for o in out)
        if self.pose_warp:     # every new frame from its context frame; a still's stays the identity
            lm = torch.from_numpy(poses).flatten(0, 1)                      # (2B, 1 + fpl, 33, 2)
            maps = chunk_points(lm[:, 0], lm[:, 1:], self.W).view(batch, 2 * fpl, self.H, self.W, 2)
            identity = identity_points(self.W)
            maps = torch.where(torch.from_numpy(kind == STILL).view(-1, 1, 1, 1, 1), identity, maps)
        else:
            maps = torch.from_numpy(maps).flatten(1, 2)
        maps = crop_maps(maps, self.W, self.crop, torch.from_numpy(ys), torch.from_numpy(xs),
                         torch.from_numpy(flips)).unflatten(1, (2, fpl))
        return pp, prev, cur, torch.from_numpy(kind), maps


class DecoderGanStage(Stage):
    """See the module docstring."""
    phases = ("disc", "gen")

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = default_device()
        init = cfg.init or stage_dir(cfg, "autoencoder") / "final" / "model"     # "": the run's own autoencoder
        self.ae = VideoAutoencoder.from_pretrained(init).to(self.device)
        if cfg.reference:
            self.ae = with_reference(self.ae, cfg.pose_warp, cfg.ref_flow)
            if cfg.ref_kernel:
                self.ae = with_ref_kernel(self.ae, cfg.ref_kernel)
        self.ae.encoder.requires_grad_(False)
        fpl = self.ae.config.frames_per_latent
        if cfg.d_init:
            self.disc = PatchDiscriminator.from_pretrained(cfg.d_init).to(self.device)
            if self.disc.config.frames != 1 + fpl:
                raise ValueError(f"{cfg.d_init}: a discriminator of {self.disc.config.frames} frames, the stage "
                                 f"judges {1 + fpl}")
        else:
            self.disc = PatchDiscriminator(PatchDiscriminatorConfig(frames=1 + fpl)).to(self.device)
        self.models = {"model": self.ae, "discriminator": self.disc}
        self.ema_model = "model" if cfg.ema > 0 else None
        self.phase_params = {"disc": list(self.disc.parameters()), "gen": list(self.ae.decoder.parameters())}
        self.phase_lr = {"disc": cfg.d_lr or cfg.lr, "gen": cfg.lr}
        self.train = ShardReader(split_dir(cfg, "train"))
        self.val = ShardReader(split_dir(cfg, "val"))
        self.sampler = StackSampler(self.train, fpl, cfg.crop, cfg.still_fraction, self.ae.config.pose_warp)
        self._batch: tuple[int, tuple] | None = None       # (step, batch): the gen phase reuses the disc phase's

    def active(self, phase: str, step: int) -> bool:
        return phase == "disc" or step >= self.cfg.d_warmup

    # ------------------------------------------------------------------ the batch
    def _sample(self, step: int, rng: np.random.Generator, gen: torch.Generator):
        """Real stacks, the latents of the current chunk and its predecessor, and the fake stacks'
        context frame (decoded from the predecessor without gradients). One batch per step."""
        if self._batch is not None and self._batch[0] == step:
            return self._batch[1]
        pp, prev, cur, kind, maps = (x.to(self.device) for x in self.sampler.sample(self.cfg.batch_size, rng))
        B = cur.shape[0]
        with torch.no_grad():
            z = self.ae.encode_chunks(torch.cat([cur, prev, pp]))          # (3B, C, h, w)
            z_cur, z_prev, z_pp = z[:B], z[B:2 * B], z[2 * B:]
            coded_alone = self.ae.encode_image(pp[:, 0])                  # the first frame (START), the frame (STILL)
            k = kind.view(B, 1, 1, 1)
            z_pp = torch.where(k != STACK, coded_alone, z_pp)
            z_prev = torch.where(k == STILL, coded_alone, z_prev)
            z_cur = torch.where(k == STILL, coded_alone, z_cur)
            # a lagging generator: the latents of the chunk before, the truth of this one
            lag = (rng.random(B) < self.cfg.latent_lag) if self.cfg.latent_lag else np.zeros(B, bool)
            lag = torch.from_numpy(lag & (kind.cpu().numpy() == STACK))
            lag4 = lag.to(self.device).view(B, 1, 1, 1)
            z_cur, z_prev_in = torch.where(lag4, z_prev, z_cur), torch.where(lag4, z_pp, z_prev)
            noise = self.cfg.latent_noise * torch.randn((2, *z_cur.shape), generator=gen).to(self.device, z_cur.dtype)
            z_cur, z_prev_in, z_prev = z_cur + noise[0], z_prev_in + noise[1], z_prev + noise[1]
            ref = None
            if self.cfg.reference:             # the previous chunk decoded as a stream would: from the truth before it
                ref = warp_reference(prev[:, 0], maps[:, 0]) * (kind != STILL).view(B, 1, 1, 1, 1)
            ctx = self.ae.decode_step(z_prev, z_pp, ref)[:, -1:]           # (B, 1, 3, c, c)
            if self.cfg.reference:
                ref = self._reference(cur[:, 0], ctx[:, 0].float(), maps[:, 1], kind, rng, lag.numpy())
        batch = (cur, z_cur, z_prev_in, ctx, ref)
        self._batch = (step, batch)
        return batch

    def _reference(self, truth: torch.Tensor, decoded: torch.Tensor, maps: torch.Tensor, kind: torch.Tensor,
                   rng: np.random.Generator, lag: np.ndarray | None = None) -> torch.Tensor:
        """The context frame each sample's reference is made of (``REFERENCE_MIX``; a still's is
        its truth or missing; a lagging sample's never wrong or missing: the reference is all that
        knows the pose), warped by ``maps``: (B, fpl, 4, c, c)."""
        B = truth.shape[0]
        names = list(REFERENCE_MIX)
        pick = rng.choice(len(names), size=B, p=np.array(list(REFERENCE_MIX.values())))
        still = (kind == STILL).cpu().numpy()
        pick[still & (pick != names.index("missing"))] = names.index("truth")
        if lag is not None:
            pick[lag & np.isin(pick, [names.index("wrong"), names.index("missing")])] = names.index("decoded")
        sigma = float(rng.uniform(0.5, 1.5))
        blurred = gaussian_blur(truth, sigma) + float(rng.uniform(0.0, 0.05)) * torch.randn_like(truth)
        options = {"truth": truth, "decoded": decoded, "blurred": blurred, "wrong": truth.roll(1, 0),
                   "missing": truth}
        frame = torch.stack([options[names[p]][b] for b, p in enumerate(pick)])
        ref = warp_reference(frame, maps)
        keep = torch.from_numpy(pick != names.index("missing")).to(ref.device).view(B, 1, 1, 1, 1)
        return ref * keep

    def _fake(self, z_cur: torch.Tensor, z_prev: torch.Tensor, ctx: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([ctx.to(torch.float32), self.ae.decode_step(z_cur, z_prev, ref).float()], 1)

    # ------------------------------------------------------------------ losses
    def loss(self, phase, step, rng, gen):
        cur, z_cur, z_prev, ctx, ref = self._sample(step, rng, gen)
        if phase == "disc":
            with torch.no_grad():
                fake = self._fake(z_cur, z_prev, ctx, ref)
            real = cur.detach().requires_grad_(True)
            fake = fake.detach().requires_grad_(True)
            d_real, _ = self.disc(real)
            d_fake, _ = self.disc(fake)
            if self.cfg.gan_loss == "hinge":
                adv = losses.hinge_d_loss(d_real, d_fake)
            else:
                adv = losses.relativistic_d_loss(d_fake, d_real)
            # exact zero-centred penalties on real (R1) and fake (R2) inputs (R3GAN); fp32 double backward
            r1 = losses.exact_r_penalty(d_real.float(), real)
            r2 = losses.exact_r_penalty(d_fake.float(), fake)
            loss = adv + self.cfg.r_gamma / 2 * (r1 + r2)
            acc = (d_real.float() > d_fake.float()).float().mean()
            return loss, {"d_loss": adv.item(), "r1": r1.item(), "r2": r2.item(), "d_acc": acc.item()}
        fake = self._fake(z_cur, z_prev, ctx, ref)
        rec = losses.reconstruction_loss(fake[:, 1:], cur[:, 1:], self.cfg.ssim_weight)
        d_fake, f_fake = self.disc(fake)
        with torch.no_grad():
            d_real, f_real = self.disc(cur)
        if self.cfg.gan_loss == "hinge":
            adv = losses.hinge_g_loss(d_fake)
        else:
            adv = losses.relativistic_g_loss(d_fake, d_real)
        fm = losses.feature_matching_loss(f_fake, f_real)
        tmp = losses.temporal_difference_loss(fake, cur)
        gdl = losses.gradient_difference_loss(fake[:, 1:], cur[:, 1:]) if self.cfg.gdl_weight else torch.zeros(())
        mot = losses.motion_energy_loss(fake, cur) if self.cfg.motion_weight else torch.zeros(())
        w = losses.adaptive_weight(rec, adv, self.ae.decoder.conv_out.weight) if torch.is_grad_enabled() else 1.0
        loss = (rec + self.cfg.adv_weight * w * adv + self.cfg.fm_weight * fm + self.cfg.temporal_weight * tmp
                + self.cfg.gdl_weight * gdl + self.cfg.motion_weight * mot)
        return loss, {"rec": rec.item(), "g_adv": adv.item(), "fm": fm.item(), "temporal": tmp.item(),
                      "gdl": gdl.item(), "motion": mot.item(), "adv_w": float(w)}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, step, out_dir):
        """Whole-clip encode and decode of the first 4 val clips of each source: PSNR, detail kept
        (Laplacian variance over the truth's) and pulse, beside the truth's own pulse."""
        self.ae.eval()
        fpl = self.ae.config.frames_per_latent
        F = 1 + fpl * ((self.val.frame_shape[0] - 1) // fpl)
        out, rows, psnrs, details, pulses, truth_pulses = {}, [], [], [], [], []
        for val_dir, first, n in self.val.sources():
            for i in range(first, first + min(4, n)):
                gt = np.asarray(self.val.frames(i)[:F])
                x = to_pixels(gt)[None].to(self.device)
                ctl = Controls(K=self.val.truth(i, "K"), w2c=self.val.truth(i, "w2c"),
                               landmarks=self.val.truth(i, "landmarks"))
                maps = ctl.frame_maps(gt.shape[1], F, fpl, self.ae.config.pose_warp)
                video = to_uint8(self.ae.decode(self.ae.encode(x), maps, x[:, 0]).float()[0])
                psnrs.append(float(psnr_per_frame(video[1:], gt[1:]).mean()))
                details.append(detail_kept(video[1:], gt[1:]))
                pulses.append(pulse(video, fpl))
                truth_pulses.append(pulse(gt, fpl))
                rows += [gt[::4], video[::4]]
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        contact_sheet(rows, Path(out_dir) / f"step-{step:07d}.png")
        self.ae.train()
        self.ae.encoder.eval()
        out.update(val_psnr=float(np.mean(psnrs)), val_detail=float(np.nanmean(details)),
                   val_pulse=float(np.nanmean(pulses)), val_truth_pulse=float(np.nanmean(truth_pulses)))
        return out

    def export(self, out_dir, models):
        """The autoencoder (same encoder and latent statistics, the new decoder) and the discriminator."""
        models["model"].save_pretrained(Path(out_dir) / "model")
        models["discriminator"].save_pretrained(Path(out_dir) / "discriminator")
