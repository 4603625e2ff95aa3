"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

``<run>/checkpoints/step-NNNNNNN/`` holds one directory per model (``save_pretrained``
layout) plus ``state.safetensors`` (optimizer moments, EMA, torch RNG) and ``state.json``
(step, optimizer hyperparameters, numpy RNG, config). The newest complete one is resumed.

Optimizer state is stored as ``Optimizer.state_dict()`` lays it out: parameters numbered in the
order of the optimizer's parameter groups (``opt.<name>.state.<index>.<key>``). FSDP runs gather
it by parameter name and renumber it the same way (train/distributed.py), so checkpoints move
between single-process, DDP and FSDP runs of any size.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def _flatten_optimizer(prefix: str, sd: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.state.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(prefix: str, tensors: dict, meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + ".state."):
            idx, name = key[len(prefix) + 7:].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, models: dict[str, Any],
                    optimizers: dict[str, torch.optim.Optimizer | dict],
                    extra_tensors: dict[str, torch.Tensor], extra: dict, keep: int = 2) -> Path:
    """Write ``step-NNNNNNN``; ``optimizers`` maps names to optimizers or to their (gathered) state dicts."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, m in models.items():
        m.save_pretrained(tmp / name)
    tensors = {f"extra.{k}": v.detach().contiguous().cpu() for k, v in extra_tensors.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    opt_meta = {}
    for name, opt in optimizers.items():
        t, m = _flatten_optimizer(f"opt.{name}", opt.state_dict() if isinstance(opt, torch.optim.Optimizer) else opt)
        tensors.update(t)
        opt_meta[name] = m
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizers": opt_meta, **extra}, default=_json_default))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("step-*"))
    return ckpts[-1] if ckpts else None


@dataclass
class Checkpoint:
    """A checkpoint read back: full weights and optimizer state dicts by name, state.json, tensors."""
    models: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, dict]
    meta: dict
    extra: dict[str, torch.Tensor]
    rng: torch.Tensor


def read_checkpoint(path: Path, classes: dict[str, type]) -> Checkpoint:
    """Read ``path``; ``classes`` names each model's class (its ``from_pretrained`` checks the files)."""
    models = {name: cls.from_pretrained(path / name).state_dict() for name, cls in classes.items()}
    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    optimizers = {name: _unflatten_optimizer(f"opt.{name}", tensors, m) for name, m in meta["optimizers"].items()}
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return Checkpoint(models, optimizers, meta, extra, tensors["rng.torch"])


def load_checkpoint(path: Path, models: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
    """Load weights and optimizer state in place; returns (state.json dict, extra tensors)."""
    ckpt = read_checkpoint(path, {name: type(m) for name, m in models.items()})
    for name, m in models.items():
        m.load_state_dict(ckpt.models[name])
    for name, opt in optimizers.items():
        opt.load_state_dict(ckpt.optimizers[name])
    torch.set_rng_state(ckpt.rng)
    return ckpt.meta, ckpt.extra
