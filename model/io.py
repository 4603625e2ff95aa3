"""Model files: ``config.json`` + ``model.safetensors`` in a directory (never pickle)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file, save_file

from model.config import ConfigError, from_dict, to_json

M = TypeVar("M", bound="Pretrained")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class ModelFileError(ValueError):
    """A model directory that cannot be loaded; the message says which part is wrong."""


class Pretrained(torch.nn.Module):
    """Mixin: ``save_pretrained(dir)`` / ``from_pretrained(dir)`` for a module built from ``config``.

    Subclasses set ``config_class`` and take the config as their only constructor argument.
    """
    config_class: type = object

    def save_pretrained(self, directory: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
        """Write config.json + model.safetensors; ``dtype`` (e.g. bf16 for shipped assets) casts
        floating-point tensors, loading casts them back to the model's dtype."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
                   for k, v in self.state_dict().items()}
        save_file(tensors, str(d / (WEIGHTS_NAME + ".tmp")), metadata={"class": type(self).__name__})
        (d / (CONFIG_NAME + ".tmp")).write_text(to_json(self.config))
        os.replace(d / (WEIGHTS_NAME + ".tmp"), d / WEIGHTS_NAME)
        os.replace(d / (CONFIG_NAME + ".tmp"), d / CONFIG_NAME)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike, map_location: str = "cpu") -> M:
        d = Path(directory)
        name = d.name or "model"
        cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise ModelFileError(f"model '{name}': missing {p.name}")
        try:
            cfg = from_dict(cls.config_class, json.loads(cfg_path.read_text()))
        except (json.JSONDecodeError, ConfigError, TypeError) as e:
            raise ModelFileError(f"model '{name}': bad {CONFIG_NAME}: {e}") from None
        model = cls(cfg)
        try:
            state = load_file(str(w_path), device=map_location)
        except Exception as e:  # safetensors raises several types for truncated/corrupt files
            raise ModelFileError(f"model '{name}': unreadable {WEIGHTS_NAME} ({type(e).__name__})") from None
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ModelFileError(f"model '{name}': weights do not match the config "
                                 f"(missing {missing[:3]}, unexpected {extra[:3]})")
        for k, v in state.items():
            if v.shape != own[k].shape:
                raise ModelFileError(f"model '{name}': {k} has shape {tuple(v.shape)}, "
                                     f"the config implies {tuple(own[k].shape)}")
        model.load_state_dict(state)
        return model
