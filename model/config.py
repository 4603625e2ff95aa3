"""Typed dataclass configs: strict construction from dicts, JSON round trip, presets."""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A config that does not fit its dataclass (unknown key, wrong type, bad value)."""


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        return from_dict(hint, value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool):
        if type(value) is not hint:
            raise ConfigError(f"{name}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(f"{name}[{i}]", v, inner) for i, v in enumerate(value))
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(name, value, args[0])
    return value


def from_dict(cls: type[C], d: dict) -> C:
    """Build ``cls`` from a dict, rejecting unknown keys and ill-typed values."""
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {unknown}")
    kw = {k: _coerce(f"{cls.__name__}.{k}", v, hints[k]) for k, v in d.items()}
    return cls(**kw)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def replace(cfg: C, **overrides: Any) -> C:
    """A copy of ``cfg`` with overrides, type-checked like ``from_dict``."""
    d = to_dict(cfg)
    d.update(overrides)
    return from_dict(type(cfg), d)
