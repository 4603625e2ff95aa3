"""The one training loop: every stage is a config plus a ``Stage`` object (train/stage.py) that computes losses.

The loop owns what all stages share: seeding, precision, optimisers, the lr schedule,
gradient clipping, EMA, DDP or FSDP2 (train/distributed.py), CSV logs, loss curves, checkpoints
with automatic resume, periodic evaluation and the export of the final models.
"""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from model.config import to_dict
from model.runtime import autocast, dtype_name, precision_info
from train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from train.config import TrainConfig
from train.distributed import ShardedModels, full_tensor, rank
from train.stage import Stage
from train.stages import build_stage


def step_seed(cfg: TrainConfig, step: int, phase: int) -> list[int]:
    """Seed material of one step: batches and noise depend only on (seed, rank, step, phase),
    so a resumed run draws exactly what an uninterrupted one would."""
    return [cfg.seed, rank(), step, phase]


def lr_at(cfg: TrainConfig, base: float, step: int) -> float:
    if step < cfg.warmup:
        return base * (step + 1) / cfg.warmup
    if cfg.lr_schedule == "cosine":
        p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))
    return base


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Loss curves of a run (every numeric column but step and time) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    # a column may start later (the generator's, after the discriminator's warm-up)
    keys = [k for k in rows[0] if k not in ("step", "time", "lr") and any(r.get(k) not in ("", None) for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3), squeeze=False)
    steps = [int(r["step"]) for r in rows]
    for ax, k in zip(axes[0], keys):
        vals = [float(r[k]) if r.get(k) not in ("", None) else np.nan for r in rows]
        ax.plot(steps, vals)
        ax.set_title(k)
        ax.set_xlabel("step")
        if all(v > 0 for v in vals if not np.isnan(v)):
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)


def train(cfg: TrainConfig, dry_run: bool = False, on_end=None) -> Path:
    """Run (or resume) ``cfg.stage``; returns the directory of the exported final models.

    ``on_end(models)``, if given, sees this rank's trained models (sharded under FSDP) before the
    function returns.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.run_dir) / cfg.stage
    rank0 = rank() == 0
    if rank0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True))
    stage = build_stage(cfg)
    if dry_run:
        n = {k: sum(p.numel() for p in m.parameters()) for k, m in stage.models.items()}
        print(json.dumps({"config": to_dict(cfg), "parameters": n, "phases": list(stage.phases)}, indent=2))
        return run_dir

    # DDP: one wrapper around all of the stage's models; its forward is the stage's loss, so the
    # gradients of whichever models a phase trains are averaged across ranks during backward.
    # FSDP: each model sharded on its own; the gradients are averaged as they are reduce-scattered.
    ddp, sharded = None, None
    if dist.is_initialized() and cfg.fsdp:
        sharded = ShardedModels(stage)
    elif dist.is_initialized():
        ddp = torch.nn.parallel.DistributedDataParallel(_StageModule(stage), find_unused_parameters=True)
    # phases may share an optimiser (the long stage alternates D and G once per segment)
    opt_of = {ph: stage.phase_optimizer.get(ph, ph) for ph in stage.phases}
    optimizers = {}
    for ph in stage.phases:
        if opt_of[ph] not in optimizers:
            optimizers[opt_of[ph]] = torch.optim.AdamW(stage.phase_params[ph], lr=stage.phase_lr[ph],
                                                       betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    ema = None
    if cfg.ema > 0 and stage.ema_model:
        ema = {k: v.detach().clone().float() for k, v in stage.models[stage.ema_model].state_dict().items()}

    start = 0
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        if sharded:
            start = sharded.load_checkpoint(ckpt, optimizers, ema)["step"]
        else:
            meta, extra = load_checkpoint(ckpt, stage.models, optimizers)
            start = meta["step"]
            if ema is not None:
                ema = {k: extra[f"ema.{k}"].float() for k in ema}
        if rank0:
            print(f"resumed {cfg.stage} from {ckpt} at step {start}")

    csv_path = run_dir / "log.csv"
    fields = ["step", "time", "lr"]
    log_rows: list[dict] = []
    dtype = cfg.compute_dtype(stage.device)
    if rank0:
        print(f"{cfg.stage}: computing in {dtype_name(dtype)} ({precision_info(dtype, stage.device)['auto_reason']})")
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.stage, disable=not rank0, mininterval=5)
    acc: dict[str, list] = {}
    for step in range(start, cfg.steps):
        for p_i, phase in enumerate(stage.phases):
            if not stage.active(phase, step):
                continue
            opt = optimizers[opt_of[phase]]
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, stage.phase_lr[phase], step)
            rng = np.random.default_rng(step_seed(cfg, step, p_i))
            gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2 ** 62)))
            with autocast(dtype, stage.device):
                loss, metrics = (ddp or stage.loss)(phase, step, rng, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(stage.phase_params[phase], cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            gnorm = full_tensor(gnorm)  # FSDP: the norm over all shards, the same on every rank
            metrics[f"{opt_of[phase]}_gnorm"] = float(gnorm)
            if torch.isfinite(gnorm):
                opt.step()
            else:  # one bad batch must not poison the weights
                metrics[f"{opt_of[phase]}_skipped"] = 1.0
                tqdm.write(f"[{cfg.stage}] step {step + 1} phase {phase}: non-finite gradient, update skipped")
            for k, v in metrics.items():
                acc.setdefault(k, []).append(float(v))
        if ema is not None:
            with torch.no_grad():
                for k, v in stage.models[stage.ema_model].state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].lerp_(v.float(), 1.0 - cfg.ema)
                    else:
                        ema[k].copy_(v)
        done = step + 1
        bar.update(1)
        if rank0 and (done % cfg.log_every == 0 or done == cfg.steps):
            row = {"step": done, "time": round(time.time() - t0, 1), "lr": lr_at(cfg, cfg.lr, step)}
            row.update({k: float(np.mean(v)) for k, v in acc.items()})
            acc.clear()
            new = [k for k in row if k not in fields]
            if new or not csv_path.exists():
                fields += new
                # rewrite with the widened header
                old = list(csv.DictReader(open(csv_path))) if csv_path.exists() else []
                with open(csv_path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=fields)
                    w.writeheader()
                    w.writerows(old)
            with open(csv_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=fields).writerow(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "time", "lr")}, refresh=False)
            log_rows.append(row)
        checkpointing = done % cfg.ckpt_every == 0 or done == cfg.steps
        if checkpointing and (rank0 or sharded):
            models, opts, ema_ = stage.models, optimizers, ema or {}
            if sharded:  # every rank takes part in gathering the full state; rank 0 writes it
                models, ema_ = sharded.full_models(), sharded.full_ema(ema_)
                opts = {k: sharded.optimizer_state(o) for k, o in optimizers.items()}
            if rank0:
                save_checkpoint(run_dir, done, models, opts, {f"ema.{k}": v for k, v in ema_.items()},
                                {"config": to_dict(cfg)}, keep=cfg.keep_checkpoints)
        evaluating = done % cfg.eval_every == 0 or done == cfg.steps
        if evaluating and (rank0 or sharded):
            # sharded models run their forwards on every rank together; only rank 0 keeps the files
            with _ema_swapped(stage, ema), tempfile.TemporaryDirectory() as scratch:
                metrics = stage.evaluate(done, run_dir / "samples" if rank0 else Path(scratch))
        if evaluating and rank0:
            if metrics:
                with open(run_dir / "eval.jsonl", "a") as f:
                    f.write(json.dumps({"step": done, **metrics}) + "\n")
                tqdm.write(f"[{cfg.stage}] step {done} eval {json.dumps(metrics)}")
            if csv_path.exists():
                plot_curves(csv_path, run_dir / "loss.png")
        if dist.is_initialized() and done % cfg.ckpt_every == 0:
            dist.barrier()
    bar.close()
    final = run_dir / "final"
    if rank0 or sharded:
        with _ema_swapped(stage, ema):
            models = sharded.full_models(stage.device) if sharded else stage.models
            if rank0:
                stage.export(final, models)
    if dist.is_initialized():
        dist.barrier()
    if on_end is not None:
        on_end(stage.models)
    return final


class _StageModule(torch.nn.Module):
    """The stage's models as one module whose forward is the stage's loss (for DDP)."""

    def __init__(self, stage: Stage):
        super().__init__()
        self.stage = stage
        self.models = torch.nn.ModuleDict(stage.models)

    def forward(self, phase, step, rng, gen):
        return self.stage.loss(phase, step, rng, gen)


class _ema_swapped:
    """Context: the EMA weights stand in for the trained ones (evaluation, export)."""

    def __init__(self, stage: Stage, ema: dict | None):
        self.stage, self.ema, self.saved = stage, ema, None

    def __enter__(self):
        if self.ema is not None:
            m = self.stage.models[self.stage.ema_model]
            self.saved = {k: v.detach().clone() for k, v in m.state_dict().items()}
            m.load_state_dict({k: v.to(self.saved[k].dtype) for k, v in self.ema.items()})
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.stage.models[self.stage.ema_model].load_state_dict(self.saved)
        return False


def init_distributed() -> None:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if "RANK" in os.environ and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
