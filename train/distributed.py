"""FSDP2 for the one training loop (``fsdp=True`` under torchrun): shard a stage's models, and
gather their full state back for checkpoints, evaluation and export.

Each model is sharded with ``fully_shard``: every transformer ``Block`` (the DiT's, the
discriminator backbone's) is a unit of its own, then the root holds the rest (the autoencoder is
one unit). Parameters become DTensors holding this rank's shard of dim 0, so optimisers, gradient
clipping and the EMA all work shard by shard. Checkpoints hold the full state, gathered by every
rank together and written by rank 0 in the format of unsharded runs (train/checkpoint.py), so a
run can resume with or without FSDP and on any number of ranks.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method
from torch.distributed.tensor import DTensor, distribute_tensor

from model.autoencoder import VideoAutoencoder
from model.dit import Block, VideoDiT
from model.io import Pretrained
from train.checkpoint import read_checkpoint

# Methods other than ``forward`` that the stages call to run a model: FSDP gathers the root's
# parameters around these calls too (they reach the blocks through ``__call__``, which it hooks).
FORWARD_METHODS = {VideoDiT: ("step",), VideoAutoencoder: ("encode_chunks", "encode", "decode_step", "decode")}

FULL = StateDictOptions(full_state_dict=True)                         # full tensors on every rank
FULL_ON_RANK0 = StateDictOptions(full_state_dict=True, cpu_offload=True)  # on rank 0's CPU, {} elsewhere


def rank() -> int:
    """This process's rank under torchrun, 0 when not distributed."""
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    """The number of ranks under torchrun, 1 when not distributed."""
    return dist.get_world_size() if dist.is_initialized() else 1


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a shard (collective), or ``t`` itself when it is not sharded."""
    return t.full_tensor() if isinstance(t, DTensor) else t


class ShardedModels:
    """A stage's models sharded with FSDP2; swaps the stage's parameter lists for the sharded ones."""

    def __init__(self, stage):
        self.models: dict[str, torch.nn.Module] = stage.models
        self.classes = {name: type(m) for name, m in self.models.items()}  # before FSDP subclasses them
        old = {id(p): (name, n) for name, m in self.models.items() for n, p in m.named_parameters()}
        for m in self.models.values():
            for t in [*m.parameters(), *m.buffers()]:  # as DDP does: every rank starts from rank 0's weights
                dist.broadcast(t.detach(), src=0)
            for block in [b for b in m.modules() if isinstance(b, Block)]:
                fully_shard(block)
            fully_shard(m)
            for cls, methods in FORWARD_METHODS.items():
                if isinstance(m, cls):
                    for method in methods:
                        register_fsdp_forward_method(m, method)
        new = {(name, n): p for name, m in self.models.items() for n, p in m.named_parameters()}
        sharded = {i: new[key] for i, key in old.items()}
        # fully_shard replaces every parameter by a new DTensor one: the stage's lists and sets of
        # parameters (phase_params, a frozen/trainable split) must name the new ones
        for attr, value in vars(stage).items():
            if type(value) in (list, tuple, set, dict):
                setattr(stage, attr, _rebind(value, sharded))
        # optimiser state is gathered by parameter name ("generator.blocks.0.attn.qkv.weight")
        self.module = torch.nn.ModuleDict(self.models)
        self.name_of = {id(p): n for n, p in self.module.named_parameters()}

    # ------------------------------------------------------------------ gathering (every rank calls)
    def full_models(self, device: torch.device | str = "cpu") -> dict[str, Pretrained]:
        """Unsharded copies of the models with the full weights, on rank 0 ({} on the others)."""
        out = {}
        for name, m in self.models.items():
            state = get_model_state_dict(m, options=FULL_ON_RANK0)
            if dist.get_rank() == 0:
                with torch.random.fork_rng(devices=[]):  # its throw-away initialisation must not move the RNG
                    twin = self.classes[name](copy.deepcopy(m.config))
                twin.load_state_dict(state)
                twin.train(m.training)
                out[name] = twin.to(device)
        return out

    def optimizer_state(self, opt: torch.optim.Optimizer) -> dict:
        """The full state of ``opt`` on rank 0 ({} on the others), laid out as ``Optimizer.state_dict()``
        of an unsharded run: gathered keyed by parameter name, then numbered as that run numbers them."""
        sd = get_optimizer_state_dict(self.module, opt, options=FULL_ON_RANK0)
        return _rekey(sd, {n: i for i, n in enumerate(self._names(opt))}) if dist.get_rank() == 0 else {}

    def _names(self, opt: torch.optim.Optimizer) -> list[str]:
        """The names of ``opt``'s parameters, in the order ``Optimizer.state_dict()`` numbers them."""
        return [self.name_of[id(p)] for g in opt.param_groups for p in g["params"]]

    def full_ema(self, ema: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: full_tensor(v).cpu() for k, v in ema.items()}

    # ------------------------------------------------------------------ resuming (every rank reads)
    def load_checkpoint(self, path: Path, optimizers: dict[str, torch.optim.Optimizer],
                        ema: dict[str, torch.Tensor] | None) -> dict:
        """Load a checkpoint (of a sharded or unsharded run) into the shards; returns state.json."""
        ckpt = read_checkpoint(path, self.classes)
        for name, m in self.models.items():
            set_model_state_dict(m, ckpt.models[name], options=FULL)
        for name, opt in optimizers.items():
            set_optimizer_state_dict(self.module, opt, _rekey(ckpt.optimizers[name], self._names(opt)), options=FULL)
        for k, v in (ema or {}).items():
            full = ckpt.extra[f"ema.{k}"].to(v.device, v.dtype)
            v.copy_(distribute_tensor(full, v.device_mesh, v.placements) if isinstance(v, DTensor) else full)
        torch.set_rng_state(ckpt.rng)
        return ckpt.meta


def _rekey(sd: dict, key) -> dict:
    """An optimizer state dict with its parameter keys mapped through ``key`` (names <-> numbers)."""
    return {"state": {key[p]: st for p, st in sd["state"].items()},
            "param_groups": [{**g, "params": [key[p] for p in g["params"]]} for g in sd["param_groups"]]}


def _rebind(value, new: dict[int, torch.nn.Parameter]):
    """``value`` (nested lists, tuples, sets, dict values) with each parameter replaced by ``new[id]``."""
    if isinstance(value, torch.nn.Parameter):
        return new.get(id(value), value)
    if type(value) in (list, tuple, set):
        return type(value)(_rebind(v, new) for v in value)
    if type(value) is dict:
        return {k: _rebind(v, new) for k, v in value.items()}
    return value
