"""Stages 4-5 of the recipe (paper App. B): adversarial training of the one-step generator with
student forcing (``adversarial``) and over long videos, segment by segment (``long``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.autoencoder import PixelLoop, StreamingDecoder
from model.dit import VideoDiT, maps_from_first
from model.discriminator import Discriminator
from model.patch_discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from model.pose_reader import PoseReader, pose_error
from model.sampling import causal_frame, rollout_one_step
from train import losses
from train.config import TrainConfig
from train.diffusion import DiffusionStage
from train.stage import stage_dir

DISC, GEN = "disc", "gen"    # the kinds of phase, each also the name of its optimiser


@dataclass(frozen=True)
class Phase:
    """One optimiser phase of the adversarial stages: the discriminator's or the generator's step
    on one segment of the video."""
    kind: str       # DISC | GEN
    segment: int

    @property
    def name(self) -> str:
        """What the loop, checkpoints and logs call it: "disc0", "gen0", "disc1", ..."""
        return f"{self.kind}{self.segment}"


@dataclass(frozen=True)
class SegmentInputs:
    """What the discriminator's and the generator's phases of one segment share: its inputs and
    its rollout without gradients."""
    positions: torch.Tensor   # (S,) stream indices of the segment's latent frames
    noise: torch.Tensor       # (B, S, C, h, w) each frame's noise
    ctrl: torch.Tensor        # (B, S, T, Cc) controls
    warp: torch.Tensor        # (B, S, 3, 3) maps to the previous frame's camera
    rolled: torch.Tensor      # (B, S, C, h, w) the one-step rollout, detached
    recycled: torch.Tensor | None = None  # recycle=frames: (B, S, C, h, w) the input each frame was made from
    after: torch.Tensor | None = None     # ... and (B, C, h, w) the input of the frame after the segment


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

    ``recycle="frames"``: the generator's next input is not its own latent but the frames a viewer is
    shown, decoded by the autoencoder's streaming (reference) decoder from the clip's cameras and
    encoded again (model/autoencoder.py PixelLoop), as the app runs world models; the rollout, the
    burn-in and the gradient pass all take those inputs.

    ``frame_weight``: a second critic judges the frames a viewer would see rather than the latents
    (model/patch_discriminator.py, the adversarial decoder's critic, new or carried over from the
    adversarial stage): each latent of the window from the second on is decoded with the frozen
    decoder from itself and its predecessor on a random ``crop`` (the same crop for the real and the
    fake window, so the pair differs in realism, not in place), after the last frame of the latent
    before, and the generator's loss gets ``frame_weight`` times its relativistic loss, the gradient
    passing through the decoder. A latent discriminator started from the adapt model can stay at
    chance against a generator already trained adversarially while the frames break into blotches
    (docs/training.md, "The avatar in the app's loop").
    """

    def __init__(self, cfg: TrainConfig):
        self.long = cfg.stage == "long"
        super().__init__(cfg)
        self.disc = self.build_discriminator().to(self.device)
        self.models = {"generator": self.dit, "discriminator": self.disc}
        self.frame_disc: PatchDiscriminator | None = None
        if cfg.frame_weight:
            self.frame_disc = self.build_frame_critic().to(self.device)
            self.models["frame_discriminator"] = self.frame_disc
        # the D phase's crop and real stacks, which the G phase of the same segment reuses
        self._frame_real: tuple[tuple[int, int, int], torch.Tensor] | None = None
        self.ema_model = "generator"
        self.S = cfg.segment_latents if self.long else cfg.clip_latents - 1
        self.n_segments = max(1, cfg.long_latents // self.S) if self.long else 1
        self.overlap = cfg.segment_overlap if self.long else 0
        self.burn = 0                                           # latent frames rolled out before segment 0
        # phase name ("disc0", "gen0", "disc1", ...: checkpoints and logs use them) -> Phase
        self.phase_of = {ph.name: ph for i in range(self.n_segments) for ph in (Phase(DISC, i), Phase(GEN, i))}
        self.phases = tuple(self.phase_of)
        self.phase_optimizer = {name: ph.kind for name, ph in self.phase_of.items()}
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
        if self.frame_disc is not None:
            d_params += list(self.frame_disc.parameters())
        g_params = [p_ for p_ in self.dit.parameters() if p_.requires_grad]
        self.phase_params = {n: (d_params if ph.kind == DISC else g_params) for n, ph in self.phase_of.items()}
        self.phase_lr = {n: ((cfg.d_lr or cfg.lr) if ph.kind == DISC else cfg.lr) for n, ph in self.phase_of.items()}
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
        self.frames = cfg.recycle == "frames"
        if self.frames and self.ae.config.pose_warp:
            raise ValueError("recycle=frames decodes with camera maps: a decoder that warps per bone is not supported")
        self.loop: PixelLoop | None = None                      # recycle=frames: the video's pixel loop,
        self.frame_maps: torch.Tensor | None = None             # its frames' maps (B, 1 + total, fpl, 3, 3)
        self.next_in: torch.Tensor | None = None                # and the next frame's input

    def active(self, phase: str, step: int) -> bool:
        """The generator waits for ``d_warmup`` steps: a discriminator whose new head is still
        random is fooled by any small move of the generator (measured: with the generator
        training from step 0 the discriminator never leaves chance; frozen, it separates
        real from generated within 20 steps), so it learns first."""
        return not (self.phase_of[phase].kind == GEN and step < self.cfg.d_warmup)

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

    def build_frame_critic(self) -> PatchDiscriminator:
        """The long stage carries the adversarial stage's frame critic over where it has one."""
        fpl = self.ae.config.frames_per_latent
        path = stage_dir(self.cfg, "adversarial") / "final" / "frame_discriminator"
        if self.long and path.exists():
            critic = PatchDiscriminator.from_pretrained(path)
            if critic.config.frames != 1 + fpl:
                raise ValueError(f"{path}: a critic of {critic.config.frames} frames, the stage judges {1 + fpl}")
            return critic
        return PatchDiscriminator(PatchDiscriminatorConfig(frames=1 + fpl))

    def _ctrl(self, c: torch.Tensor | None) -> torch.Tensor | None:
        return c if self.dit.config.control_features else None

    # ------------------------------------------------------------------ the video being made
    def _new_video(self, rng: np.random.Generator, gen: torch.Generator) -> None:
        """Pick a real first frame and a control sequence for the whole video."""
        B = self.cfg.batch_size
        self.burn = int(rng.integers(0, self.cfg.long_burn_in + 1)) if self.cfg.long_burn_in else 0
        total = self.burn + self.n_segments * self.S
        z, ctrl, warp, *fm = self.to_device(*self.train.sample(B, min(total, self.train.chunks.shape[1]), rng,
                                                               with_frame_maps=self.frames))
        while ctrl.shape[1] - 1 < total:  # long videos: chain controls of further clips
            _, more, more_warp, *more_fm = self.to_device(*self.train.sample(B, self.S, rng, with_frame_maps=self.frames))
            ctrl = torch.cat([ctrl, more[:, 1:]], 1)
            warp = torch.cat([warp, more_warp[:, 1:]], 1)
            fm = [torch.cat([fm[0], more_fm[0]], 1)] if self.frames else []
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
            if self.frames:
                # the latents hold no pixels: the first frame is the first frame's code decoded
                self.frame_maps = torch.cat([torch.zeros_like(fm[0][:, :1]), fm[0]], 1)  # (B, 1 + total, fpl, 3, 3)
                first = StreamingDecoder(self.ae)(self.ae.denormalize(prev.float()))[:, 0]
                self.loop = PixelLoop(self.ae, first)
                self.loop.start(prev)
            for k in range(1, self.burn + 1):                   # burn-in: the video so far, no gradients
                out = self.dit.step(self.cache, prev, self.randn(prev.shape, gen), self._ctrl(ctrl[:, k]), ones,
                                    k, warp[:, k])
                self.video = self.video[:1] + (self.video[1:] + [out])[-self.keep:]
                prev = self._recycled(out, k)
            if self.frames:
                self.next_in = prev

    def _recycled(self, z: torch.Tensor, k: int) -> torch.Tensor:
        """The input of the frame after stream frame ``k`` (B, C, h, w), made from its latent ``z``:
        ``z`` itself, or with recycle=frames its frames as shown, encoded again."""
        if not self.frames:
            return z
        return self.loop(z, self.frame_maps[:, k])[1]

    def _start(self, seg: int) -> int:
        """Stream index of segment ``seg``'s first latent frame (after the first frame and the burn-in)."""
        return 1 + self.burn + seg * self.S

    def _segment_inputs(self, seg: int, gen: torch.Generator) -> SegmentInputs:
        """Positions, noise and controls of segment ``seg``; rolls it out without gradients."""
        a = self._start(seg)
        pos = torch.arange(a, a + self.S, device=self.device)
        eps = self.randn((self.cfg.batch_size, self.S, *self.video[0].shape[1:]), gen)
        ctrl = self.ctrl[:, a:a + self.S]
        warp = self.warp[:, a:a + self.S]
        cache = self.cache.clone()
        out, inputs = [], []
        prev = self.next_in if self.frames else self.video[-1]
        ones = torch.ones(self.cfg.batch_size, device=self.device)
        with torch.no_grad():
            for i in range(self.S):
                if self.cfg.teacher_forcing:
                    prev = self.gt[:, a + i - 1]
                inputs.append(prev)
                z = self.dit.step(cache, prev, eps[:, i], self._ctrl(ctrl[:, i]), ones, a + i, warp[:, i])
                out.append(z)
                prev = self._recycled(z, a + i)
        if self.frames:
            return SegmentInputs(pos, eps, ctrl, warp, torch.stack(out, 1), torch.stack(inputs, 1), prev)
        return SegmentInputs(pos, eps, ctrl, warp, torch.stack(out, 1))

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

    def _crop_box(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """A random square of the latent grid, (top, left, size), ``crop`` pixels wide."""
        h = self.video[0].shape[-1]
        c = max(1, min(h, self.cfg.crop // self.ae.config.spatial_factor))
        y, x = (int(v) for v in rng.integers(0, h - c + 1, 2))
        return y, x, c

    def _frame_stacks(self, window: torch.Tensor, box: tuple[int, int, int]) -> torch.Tensor:
        """(B, L, C, h, w) normalised latents of consecutive stream frames, L >= 3 -> the frame critic's
        stacks (B (L - 2), 1 + fpl, 3, c', c') in [-1, 1] (c' = the crop in pixels): latent k >= 2 decoded
        from itself and latent k - 1, after the last frame decoded from latent k - 1 (and k - 2)."""
        y, x, c = box
        z = self.ae.denormalize(window[..., y:y + c, x:x + c].float())
        B, L = z.shape[:2]
        dtype = next(self.ae.decoder.parameters()).dtype
        frames = self.ae.decode_step(z[:, 1:].flatten(0, 1).to(dtype), z[:, :-1].flatten(0, 1).to(dtype))
        frames = frames.unflatten(0, (B, L - 1)).float()                # (B, L - 1, fpl, 3, c', c')
        return torch.cat([frames[:, :-1, -1:], frames[:, 1:]], 2).flatten(0, 1)

    def loss(self, phase, step, rng, gen):
        seg, disc = self.phase_of[phase].segment, self.phase_of[phase].kind == DISC
        B = self.cfg.batch_size
        if disc:
            if seg == 0:
                self._new_video(rng, gen)
            self.seg_inputs = self._segment_inputs(seg, gen)
        inp = self.seg_inputs
        real, real_ctrl, real_warp = self._real(seg, rng)
        t = torch.rand(B, generator=gen).to(self.device)        # no shift for the discriminator
        d_eps = self.randn(real.shape, gen)
        for p_ in self.disc.parameters():
            p_.requires_grad_(disc and p_ in self._d_trainable)
        if self.frame_disc is not None:
            self.frame_disc.requires_grad_(disc)
        if disc:
            fake, fake_ctrl, fake_warp = self._window(seg, inp.rolled)
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
            if self.frame_disc is not None:
                box = self._crop_box(rng)
                with torch.no_grad():
                    real_f = self._frame_stacks(real[:, 1:], box)
                    fake_f = self._frame_stacks(fake[:, 1:], box)
                self._frame_real = (box, real_f)
                real_f, fake_f = real_f.requires_grad_(True), fake_f.requires_grad_(True)
                fd_real, _ = self.frame_disc(real_f)
                fd_fake, _ = self.frame_disc(fake_f)
                f_loss = losses.relativistic_d_loss(fd_fake, fd_real)
                # exact zero-centred penalties on real (R1) and fake (R2) stacks (R3GAN), as the decoder stage's
                f_r = losses.exact_r_penalty(fd_real.float(), real_f) + losses.exact_r_penalty(fd_fake.float(), fake_f)
                reg = reg + self.cfg.r_gamma / 2 * f_r
                loss = loss + f_loss
                metrics.update({"fd_loss": f_loss.item(), "fd_r": f_r.item(),
                                "fd_acc": (fd_real.float() > fd_fake.float()).float().mean().item()})
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
        if self.frames:
            prev = inp.recycled
            self.next_in = inp.after
        else:
            prev = torch.cat([self.video[-1][:, None], inp.rolled[:, :-1]], 1)
        a = int(inp.positions[0])
        if self.cfg.teacher_forcing:
            prev = self.gt[:, a - 1:a - 1 + self.S]
        ones = torch.ones(B, self.S, device=self.device)
        fake_seg = self.dit(prev.detach(), inp.noise, self._ctrl(inp.ctrl), ones, mode="causal",
                            positions=inp.positions, cache=self.cache, warp=inp.warp)
        fake, fake_ctrl, fake_warp = self._window(seg, fake_seg)
        d_fake = self._d(fake, fake_ctrl, t, d_eps, fake_warp)
        with torch.no_grad():
            d_real = self._d(real, real_ctrl, t, d_eps, real_warp)
        loss = losses.relativistic_g_loss(d_fake, d_real)
        metrics = {"g_loss": loss.item()}
        if self.frame_disc is not None:
            # the D phase's crop and real stacks; the gradient reaches the segment through the frozen decoder
            box, real_f = self._frame_real
            fg_fake, _ = self.frame_disc(self._frame_stacks(fake[:, 1:], box))
            with torch.no_grad():
                fg_real, _ = self.frame_disc(real_f)
            f_loss = losses.relativistic_g_loss(fg_fake, fg_real)
            loss = loss + self.cfg.frame_weight * f_loss
            metrics["fg_loss"] = f_loss.item()
        if self.teacher is not None:
            t_loss = self._teacher_loss(seg, fake_seg, inp.rolled, inp.noise, gen)
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
            p_loss = pose_error(self.pose_reader(fake_seg.float().flatten(0, 1)), inp.ctrl.flatten(0, 1))
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
        if "frame_discriminator" in models:
            models["frame_discriminator"].save_pretrained(out_dir / "frame_discriminator")
