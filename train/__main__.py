"""python -m train --preset <name> --stage <stage> [--set key=value ...] [--dry-run]

Runs one stage of the recipe (autoencoder, teacher, adapt, distill, adversarial, long) or
``--stage all`` in order, each resuming from its latest checkpoint and starting from the previous
stage's final model. Works under ``torchrun --nproc_per_node=N``: DDP by default, FSDP2
(every transformer block sharded) with ``--set fsdp=true`` for presets too big for one device.
"""
from __future__ import annotations

import argparse
import json

from model.runtime import add_dtype_argument
from train.config import PRESETS, RECIPE, STAGES, resolve


def _parse_value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--stage", choices=(*STAGES, "all"), required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (JSON value), e.g. --set steps=500 --set lr=1e-4")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and model sizes, train nothing")
    add_dtype_argument(p)
    a = p.parse_args(argv)
    overrides = {}
    for kv in a.set:
        if "=" not in kv:
            p.error(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        overrides[k] = _parse_value(v)
    if a.dtype != "auto":                          # --dtype is the config's precision
        overrides["precision"] = a.dtype

    from model.runtime import keep_freed_memory
    from train.loop import init_distributed, train

    keep_freed_memory()
    init_distributed()
    for stage in (RECIPE if a.stage == "all" else (a.stage,)):
        train(resolve(a.preset, stage, overrides), dry_run=a.dry_run)


if __name__ == "__main__":
    main()
