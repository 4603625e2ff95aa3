"""Training configuration: one dataclass, named presets per stage, strict overrides."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from model.config import ConfigError, from_dict, replace, to_dict
from model.runtime import CHOICES, compute_dtype

LEGACY_PRECISION = {"bf16": "bfloat16", "fp32": "float32"}   # the names older run configs use

RECIPE = ("autoencoder", "teacher", "adapt", "distill", "adversarial", "long")   # the paper's stages, in order
# and the pose_weight term's critic (pose-controlled presets), the adversarial decoder fine-tune (train/decoder_gan.py)
STAGES = (*RECIPE, "pose_reader", "decoder")


@dataclass
class TrainConfig:
    """Everything a run needs; written to <run_dir>/config.json and into every checkpoint."""
    preset: str = "tiny"
    stage: str = "autoencoder"
    run_dir: str = "runs/tiny"          # stage runs go to <run_dir>/<stage>
    data: str = ""                      # shard directory with train/ and val/ (pixels)
    # models
    ae_preset: str = "tiny"             # autoencoder size (stage autoencoder)
    ae: str = ""                        # trained autoencoder dir (DiT stages); "" = <run_dir>/autoencoder/final/model
    dit_preset: str = "tiny"
    control: str = "camera"             # camera | pose | none
    reproject: bool = False             # camera: the DiT reprojects the recycled latent (model/dit.py)
    init: str = ""                      # model dir to start from; "" = previous stage's final model
    teacher: str = ""                   # distill: the frozen multi-step model, "" = the same as init; adversarial
                                        # stages with teacher_weight: "" = <run_dir>/adapt/final/model
    transfer: str = ""                  # start from a model of another control or fewer latent channels
                                        # (model/dit.py transfer_weights, model/autoencoder.py
                                        # transfer_autoencoder) instead of init; "" = off
    # optimisation
    steps: int = 100
    batch_size: int = 4
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.01
    warmup: int = 20
    lr_schedule: str = "constant"       # constant | cosine (to 10% at the end)
    grad_clip: float = 1.0
    ema: float = 0.0                    # EMA decay of the trained generator, 0 = off
    precision: str = "auto"             # compute dtype (model/runtime.py): auto (bf16 autocast on CUDA and on CPUs
                                        # with native bf16, fp32 elsewhere) | bfloat16 | float32 (bf16 | fp32 alike)
    grad_checkpointing: bool = False
    compile: bool = False
    fsdp: bool = False                  # under torchrun: shard the models with FSDP2 instead of DDP (large presets)
    threads: int = 0                    # torch threads, 0 = all cores
    seed: int = 0
    # bookkeeping
    log_every: int = 10
    ckpt_every: int = 200
    eval_every: int = 500
    keep_checkpoints: int = 2
    # autoencoder stage
    crop: int = 64                      # random square crop of the training frames (adversarial stages: of the
                                        # frame critic's decoded frames)
    still_fraction: float = 0.2         # share of single-frame (first-frame) samples
    ssim_weight: float = 0.2
    latent_lag: float = 0.0             # decoder: share of samples decoded from the chunk before's latents (a generator
                                        # lagging the commanded pose; the reference, warped to it, is right)
    latent_noise: float = 0.1           # noise on latents before decoding (robust decoder); pose_reader: max std of
                                        # the noise on its input latents
    latent_l2: float = 1e-4
    ae_train: str = "all"               # all | decoder: the encoder frozen, so the latent space (and every DiT
                                        # trained in it) is unchanged and the latent statistics are kept
    # decoder stage (train/decoder_gan.py): a trained autoencoder's decoder fine-tuned adversarially
    gan_loss: str = "relativistic"      # relativistic (R3GAN, with exact R1 + R2 of weight r_gamma) | hinge
    adv_weight: float = 0.5             # the adversarial term, times VQGAN's adaptive weight
    fm_weight: float = 1.0              # feature matching on the discriminator's levels
    gdl_weight: float = 0.0             # gradient difference loss (sharp edges, train/losses.py)
    reference: bool = False             # make the decoder a reference decoder: it copies from the last frame warped
                                        # by the commanded camera (model/autoencoder.py)
    pose_warp: bool = False             # ... a pose model's last frame warped per bone by the commanded pose
                                        # (controls/bone_warp.py), not kept as it was
    ref_flow: bool = False              # ... and moved further by a flow the decoder reads from the latents (the
                                        # parallax the camera's homography misses; model/autoencoder.py)
    ref_kernel: int = 0                 # the reference branch's second convs: 1 (lighter) or 3; 0 keeps the model's
    d_init: str = ""                    # start the patch discriminator from a saved one (a run's final/discriminator)
                                        # rather than new: a continued fine-tune keeps its critic
    temporal_weight: float = 0.0        # L1 of the frame-to-frame changes against the truth's (the latent boundary's
                                        # jump weighted as the changes inside the latent together)
    motion_weight: float = 0.0          # the pulse as a loss: each step's mean change against the truth's
                                        # (train/losses.py motion_energy_loss)
    # DiT stages
    clip_latents: int = 9               # latent frames per training window (first frame + 8)
    latent_clips: int = 0               # training clips to encode into the latent cache, 0 = all
    shift: float = 3.0                  # timestep shift s (App. B uses 24 at 736x416)
    t_min: float = 0.05                 # floor of t in the v-space loss weight
    recycle_noise: float = 0.0          # max std of noise on the recycled latent (robustness to own errors)
    sample_steps: int = 8               # sampler steps of the multi-step models (evaluation)
    distill_steps: int = 32             # fixed steps of consistency distillation (App. B)
    # adversarial stages
    d_lr: float = 0.0                   # discriminator lr, 0 = lr
    r_lambda: float = 1000.0            # approximate R1/R2 weight (App. B)
    r_sigma: float = 0.1                # approximate R1/R2 perturbation std (App. B)
    r_exact: bool = False               # exact gradient penalties (double backward) instead
    r_gamma: float = 1.0                # exact penalty weight gamma/2 (R3GAN)
    d_warmup: int = 0                   # adversarial: first steps train the discriminator only
    teacher_forcing: bool = False       # ablation: adversarial training with teacher forcing
    recycle: str = "latent"             # adversarial stages: what the generator recycles as its next input: its own
                                        # latent (the paper), or "frames": the frames the viewer is shown (the
                                        # autoencoder's streaming decoder), encoded again, as the app runs world models
    d_mismatch: float = 0.0             # matching-aware D: weight of real videos under another clip's controls as fakes
    d_mismatch_on: str = "controls"     # what the mismatched real video takes from another clip: its controls,
                                        # or its first frame ("first": does the window keep the first frame's world?)
    teacher_weight: float = 0.0         # adversarial stages: on-policy distillation, the generator's one-step frame
                                        # regressed onto the multi-step ``teacher``'s frame (default: the adapt
                                        # model) from the same noise after the generator's own frames, 0 = off
    teacher_latents: int = 2            # frames per trained segment given the teacher's target (random positions)
    truth_weight: float = 0.0           # adversarial stages: the one-step frames of a trained segment regressed onto
                                        # the ground truth of the clip the video started from (the same first frame
                                        # and controls; frames past the clip get none), 0 = off
    pose_weight: float = 0.0            # adversarial stages, pose control: the frozen ``pose_reader``'s relative error
                                        # on the generated frames against their commanded poses, 0 = off
    pose_reader: str = ""               # "" = <run_dir>/pose_reader/final/model
    frame_weight: float = 0.0           # adversarial stages: weight of a second critic that judges the decoded frames
                                        # (model/patch_discriminator.py, on random ``crop``-pixel crops) beside the
                                        # latent discriminator, 0 = off
    long_latents: int = 24              # long stage: latent frames rolled out per video
    segment_latents: int = 8            # long stage: latent frames per back-propagated segment
    segment_overlap: int = 2            # long stage: overlap of discriminator windows
    long_burn_in: int = 0               # long stage: up to this many latent frames (uniform per video) rolled
                                        # out without gradients before the trained segments, so a few trained
                                        # segments reach deep into long videos, where the drift sets in

    def compute_dtype(self, device) -> torch.dtype:
        """The dtype the stage's autocast computes in on ``device`` (model/runtime.py)."""
        return compute_dtype(LEGACY_PRECISION.get(self.precision, self.precision), device)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.precision not in (*CHOICES, *LEGACY_PRECISION):
            raise ConfigError(f"precision must be one of {CHOICES}, got {self.precision!r}")
        if self.control not in ("camera", "pose", "none"):
            raise ConfigError(f"control must be camera, pose or none, got {self.control!r}")
        if self.ref_flow and not self.reference:
            raise ConfigError("ref_flow moves a reference decoder's reference: set reference=true")
        if self.ref_kernel not in (0, 1, 3):
            raise ConfigError(f"ref_kernel must be 0 (the model's), 1 or 3, got {self.ref_kernel}")
        if self.ref_kernel and not self.reference:
            raise ConfigError("ref_kernel shapes a reference decoder's branch: set reference=true")
        if self.d_init and self.stage != "decoder":
            raise ConfigError("d_init starts the decoder stage's patch discriminator: use it with stage=decoder")
        if self.ae_train not in ("all", "decoder"):
            raise ConfigError(f"ae_train must be all or decoder, got {self.ae_train!r}")
        if self.ae_train == "decoder" and self.stage == "autoencoder" and not self.init:
            raise ConfigError("ae_train=decoder fine-tunes a trained autoencoder: set init")
        if self.d_mismatch_on not in ("controls", "first"):
            raise ConfigError(f"d_mismatch_on must be controls or first, got {self.d_mismatch_on!r}")
        if self.teacher_weight < 0 or self.teacher_latents < 1:
            raise ConfigError("teacher_weight must be >= 0 and teacher_latents >= 1")
        if self.truth_weight < 0 or self.pose_weight < 0:
            raise ConfigError("truth_weight and pose_weight must be >= 0")
        if self.frame_weight < 0:
            raise ConfigError("frame_weight must be >= 0")
        if self.frame_weight and self.stage not in ("adversarial", "long"):
            raise ConfigError("frame_weight is for the adversarial stages (a critic of the generator's decoded frames)")
        if self.pose_weight and self.control != "pose":
            raise ConfigError("pose_weight is for pose control (control=pose)")
        if self.recycle not in ("latent", "frames"):
            raise ConfigError(f"recycle must be latent or frames, got {self.recycle!r}")
        if self.recycle == "frames" and self.stage not in ("adversarial", "long"):
            raise ConfigError("recycle=frames is for the adversarial stages (the one-step generator's rollout)")
        if self.recycle == "frames" and (self.teacher_forcing or self.teacher_weight):
            raise ConfigError("recycle=frames recycles the generator's own frames: not with teacher_forcing or "
                              "teacher_weight (whose teacher recycles latents)")
        if self.gan_loss not in ("relativistic", "hinge"):
            raise ConfigError(f"gan_loss must be relativistic or hinge, got {self.gan_loss!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")


# Per preset: settings shared by all stages, then per-stage overrides.
PRESETS: dict[str, dict] = {
    "tiny": {
        "common": dict(ae_preset="tiny", dit_preset="tiny", batch_size=2, steps=4, log_every=1, ckpt_every=2,
                       eval_every=4, crop=32, clip_latents=4, long_latents=6, segment_latents=3,
                       segment_overlap=1, sample_steps=2, distill_steps=4, threads=1, warmup=1, latent_clips=8),
        "autoencoder": dict(lr=1e-3),
        "teacher": dict(lr=1e-3),
        "adapt": dict(lr=1e-3),
        "distill": dict(lr=1e-3),
        "adversarial": dict(lr=1e-4, beta1=0.0, beta2=0.9, r_lambda=10.0),
        "long": dict(lr=1e-4, beta1=0.0, beta2=0.9, r_lambda=10.0),
        "pose_reader": dict(lr=1e-3),
        "decoder": dict(lr=1e-4, d_lr=2e-4, beta1=0.5, r_gamma=0.1, d_warmup=1, crop=16),
    },
    "world-128": {
        "common": dict(ae_preset="small", dit_preset="small", control="camera", reproject=True,
                       data="runs/data/world-128", run_dir="runs/world-128", log_every=20, ckpt_every=250,
                       eval_every=1000, t_min=0.1),
        "autoencoder": dict(steps=5000, batch_size=12, lr=3e-4, warmup=200, crop=64, lr_schedule="cosine",
                            eval_every=500),
        "teacher": dict(steps=1500, batch_size=8, lr=3e-4, warmup=200, clip_latents=9, eval_every=500),
        "adapt": dict(steps=5000, batch_size=8, lr=2e-4, warmup=100, clip_latents=9, ema=0.999, recycle_noise=0.1,
                      eval_every=500),
        "distill": dict(steps=2000, batch_size=8, lr=1e-4, warmup=50),
        # the paper's lr 3e-6 and lambda 1000 are for an 8B model over thousands of steps. Here, with
        # the generator training from step 0 (lr 5e-5), the discriminator never left chance; with the
        # generator held for d_warmup steps it separates real from generated within 20 steps, and
        # the generator's loss then responds (docs/training.md).
        "adversarial": dict(steps=1000, batch_size=4, lr=1e-5, d_lr=2e-4, beta1=0.0, beta2=0.9, ema=0.99,
                            r_lambda=10.0, d_warmup=20),
        # shipped: adversarial 200, long 40 (32 latents, 97-frame clips), then long 100 with burn-in on
        # 513-frame clips (docs/training.md)
        "long": dict(steps=100, batch_size=2, lr=1e-5, d_lr=2e-4, beta1=0.0, beta2=0.9, ema=0.99, long_latents=32,
                     long_burn_in=96, r_lambda=10.0, data="runs/data/world-128-long", ckpt_every=10, eval_every=100),
        # the shipped autoencoder's decoder fine-tuned adversarially (train/decoder_gan.py), on 33-frame clips
        "decoder": dict(init="assets/world/autoencoder", data="runs/data/world-128", steps=2000, batch_size=8,
                        lr=1e-4, d_lr=4e-4, beta1=0.5, beta2=0.99, warmup=20, crop=64, still_fraction=0.1,
                        r_gamma=0.1, d_warmup=50, ema=0.99, adv_weight=1.5, temporal_weight=1.0,
                        ckpt_every=250, eval_every=500),
    },
    # assets/world-mix: the world-only models (world-128, assets/world) fine-tuned on the
    # world + photo-pan mix. The autoencoder's decoder only (its encoder, hence the latent space every
    # DiT works in, unchanged) and the adapt model from their world-only selves, then the one-step chain
    # in the order of the recipe: distill from the mix adapt, adversarial from that, long from that.
    # The teacher stays the world-only one (docs/training.md "World + photo-pan mix").
    "world-mix-128": {
        "common": dict(ae_preset="small", dit_preset="small", control="camera", reproject=True,
                       data="runs/data/world-128,runs/data/photo-128", run_dir="runs/world-mix-128", log_every=20,
                       ckpt_every=100, eval_every=1000, t_min=0.1),
        "autoencoder": dict(init="assets/world/autoencoder", ae_train="decoder", steps=2000, batch_size=12, lr=1e-4,
                            warmup=50, crop=64, lr_schedule="cosine", eval_every=500),
        "teacher": dict(init="assets/world/teacher", steps=300, batch_size=8, lr=1e-4, warmup=20, clip_latents=9,
                        eval_every=300),
        # shipped: 800 steps at lr 1e-4, then 2000 more at 2e-4 (docs/training.md)
        "adapt": dict(init="assets/world/adapt", steps=800, batch_size=8, lr=1e-4, warmup=20, clip_latents=9,
                      ema=0.99, recycle_noise=0.1, eval_every=400),
        "distill": dict(steps=400, batch_size=8, lr=1e-4, warmup=50, eval_every=200, ckpt_every=50),
        "adversarial": dict(steps=200, batch_size=4, lr=1e-5, d_lr=2e-4, beta1=0.0, beta2=0.9, ema=0.99,
                            r_lambda=10.0, d_warmup=20, ckpt_every=20, eval_every=100),
        "long": dict(steps=150, batch_size=2, lr=1e-5, d_lr=2e-4, beta1=0.0, beta2=0.9, ema=0.99, long_latents=32,
                     long_burn_in=96, r_lambda=10.0, data="runs/data/world-128-long,runs/data/photo-128-long",
                     ckpt_every=10, eval_every=50),
        # the shipped autoencoder's decoder fine-tuned adversarially (train/decoder_gan.py), on 33-frame clips
        "decoder": dict(init="assets/world-mix/autoencoder", data="runs/data/world-128,runs/data/photo-128", steps=2000, batch_size=8,
                        lr=1e-4, d_lr=4e-4, beta1=0.5, beta2=0.99, warmup=20, crop=64, still_fraction=0.1,
                        r_gamma=0.1, d_warmup=50, ema=0.99, adv_weight=1.5, temporal_weight=1.0,
                        ckpt_every=250, eval_every=500),
    },
    # the avatar model starts from the world model (the same latent space, fine-tuned on avatar
    # clips; the DiT's weights transferred, its pose input new), see docs/training.md
    "avatar-128": {
        "common": dict(ae_preset="small", dit_preset="small", control="pose", reproject=False,
                       data="runs/data/avatar-128", run_dir="runs/avatar-128", log_every=20, ckpt_every=200,
                       eval_every=1000, t_min=0.1),
        "autoencoder": dict(init="assets/world/autoencoder", steps=3000, batch_size=12, lr=1e-4, warmup=50, crop=64,
                            lr_schedule="cosine", eval_every=500),
        "teacher": dict(transfer="assets/world/teacher", steps=600, batch_size=8, lr=2e-4, warmup=50, clip_latents=9,
                        eval_every=400),
        # the shipped model: adapt 5000 steps (1800, then 3200 more from the exported 1800), distill 400,
        # adversarial 300, long 40, then long 200 with burn-in on 513-frame clips (docs/training.md)
        "adapt": dict(steps=5000, batch_size=8, lr=2e-4, warmup=50, clip_latents=9, ema=0.999, recycle_noise=0.1,
                      eval_every=500),
        "distill": dict(steps=400, batch_size=8, lr=1e-4, warmup=50, eval_every=400),
        "adversarial": dict(steps=300, batch_size=4, lr=1e-5, d_lr=2e-4, beta1=0.0, beta2=0.9, ema=0.99,
                            r_lambda=10.0, d_warmup=20),
        # long videos: 4 trained segments of 8 latents after up to 96 latents of burn-in (16 s + 5 s),
        # on 513-frame clips so that the real side stays the same clip's ground truth
        "long": dict(steps=200, batch_size=2, lr=1e-5, d_lr=2e-4, beta1=0.0, beta2=0.9, ema=0.99, long_latents=32,
                     long_burn_in=96, r_lambda=10.0, data="runs/data/avatar-128-long", ckpt_every=20, eval_every=100),
        # the critic of the long stage's pose_weight term (model/pose_reader.py), on the short clips' latents
        "pose_reader": dict(steps=1500, batch_size=32, lr=1e-3, warmup=50, lr_schedule="cosine", latent_noise=0.3,
                            ckpt_every=500, eval_every=500),
        # the shipped autoencoder's decoder fine-tuned adversarially (train/decoder_gan.py), on 33-frame clips
        "decoder": dict(init="assets/avatar/autoencoder", data="runs/data/avatar-128", steps=2000, batch_size=8,
                        lr=1e-4, d_lr=4e-4, beta1=0.5, beta2=0.99, warmup=20, crop=64, still_fraction=0.1,
                        r_gamma=0.1, d_warmup=50, ema=0.99, adv_weight=1.5, temporal_weight=1.0,
                        ckpt_every=250, eval_every=500),
    },
}


def resolve(preset: str, stage: str, overrides: dict | None = None) -> TrainConfig:
    """The config of ``stage`` under ``preset``, with type-checked overrides applied last."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {STAGES}")
    d = dict(PRESETS[preset]["common"])
    d.update(PRESETS[preset].get(stage, {}))
    d.update(overrides or {})
    d.update(preset=preset, stage=stage)
    return from_dict(TrainConfig, d)


__all__ = ["TrainConfig", "PRESETS", "RECIPE", "STAGES", "resolve", "replace", "to_dict"]
