"""Model files: ``config.json`` + ``model.safetensors`` in a directory (never pickle)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from model.config import ConfigError, from_dict, to_dict, to_json

M = TypeVar("M", bound="Pretrained")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_DAMAGED = "damaged, truncated or not a safetensors file"


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
        # the config rides along in the header, so a config.json edited or swapped later can be named
        meta = {"class": type(self).__name__, "config": json.dumps(to_dict(self.config), sort_keys=True)}
        save_file(tensors, str(d / (WEIGHTS_NAME + ".tmp")), metadata=meta)
        (d / (CONFIG_NAME + ".tmp")).write_text(to_json(self.config))
        os.replace(d / (WEIGHTS_NAME + ".tmp"), d / WEIGHTS_NAME)
        os.replace(d / (CONFIG_NAME + ".tmp"), d / CONFIG_NAME)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike, map_location: str = "cpu") -> M:
        """Load config.json + model.safetensors (safetensors only: nothing here unpickles).

        Every problem is a ``ModelFileError`` whose message names the model folder by its last
        part only (never a full path) and says what is wrong: a missing file, a damaged or
        truncated weights file, weights of another class, or a config that does not match the
        weights (naming the config fields that differ when the weights recorded theirs)."""
        d = Path(directory)
        name = d.name or "model"
        cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise ModelFileError(f"model '{name}': missing {p.name}")
        try:
            with safe_open(str(w_path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as e:  # safetensors raises several types for damaged headers
            raise ModelFileError(f"model '{name}': unreadable {WEIGHTS_NAME} ({_DAMAGED}, {type(e).__name__})") from None
        saved_class = meta.get("class")
        if saved_class and saved_class != cls.__name__:
            raise ModelFileError(f"model '{name}': {WEIGHTS_NAME} holds a {saved_class}, not a {cls.__name__}")
        try:
            cfg = from_dict(cls.config_class, json.loads(cfg_path.read_text(encoding="utf-8")))
        except (ValueError, ConfigError, TypeError) as e:   # JSON and Unicode errors are ValueErrors
            raise ModelFileError(f"model '{name}': bad {CONFIG_NAME}: {e}") from None
        try:
            model = cls(cfg)
        except (ValueError, TypeError, RuntimeError, ZeroDivisionError, AssertionError) as e:
            raise ModelFileError(f"model '{name}': {CONFIG_NAME} describes a model that cannot be built "
                                 f"({type(e).__name__}: {e})") from None
        try:
            state = load_file(str(w_path), device=map_location)
        except Exception as e:  # truncated data, bad offsets, ...
            raise ModelFileError(f"model '{name}': unreadable {WEIGHTS_NAME} ({_DAMAGED}, {type(e).__name__})") from None
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        bad = [k for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
        if missing or extra or bad:
            why = _config_diff(to_dict(cfg), meta.get("config"))
            if missing or extra:
                detail = f"missing {missing[:3]}, unexpected {extra[:3]}"
            else:
                k = bad[0]
                detail = f"{k} has shape {tuple(state[k].shape)}, the config implies {tuple(own[k].shape)}"
            hint = f"{CONFIG_NAME} says {why}" if why else f"{CONFIG_NAME} does not fit {WEIGHTS_NAME}"
            raise ModelFileError(f"model '{name}': the weights do not match the config: {hint} ({detail})")
        model.load_state_dict(state)
        return model


def _flatten(d: object, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1} (nested configs)."""
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _config_diff(config: dict, saved: str | None, most: int = 4) -> str:
    """'dim=48 but the weights were saved with dim=32' for the resolved config against the one
    recorded in the weights' header (empty when the header has none or they agree)."""
    if not saved:
        return ""
    try:
        a, b = _flatten(config), _flatten(json.loads(saved))
    except ValueError:
        return ""
    # JSON turns tuples into lists on both sides; compare the JSON forms
    diff = [k for k in sorted(set(a) | set(b)) if json.dumps(a.get(k)) != json.dumps(b.get(k))]
    parts = [f"{k}={json.dumps(a.get(k))}" for k in diff[:most]]
    was = [f"{k}={json.dumps(b.get(k))}" for k in diff[:most]]
    if not parts:
        return ""
    more = f" (and {len(diff) - most} more)" if len(diff) > most else ""
    return f"{', '.join(parts)} but the weights were saved with {', '.join(was)}{more}"
