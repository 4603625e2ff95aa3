"""python -m eval: every method against ground truth rendered from the same seeds and controls.

    python -m eval --model assets/world --clips 8 --frames 1441 --json > runs/eval/world-1440.json
    python -m eval --model assets/avatar --clips 8 --frames 121 --json
    python -m eval --model assets/world --clips 4 --frames 1441 --trajectory still --json

What is measured, and how: eval/evaluate.py.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from data.trajectories import USER_SCRIPTS
import eval.evaluate as what
from eval.evaluate import ASSETS, BASELINES, RECON, evaluate
from eval.rollout import METHODS
from model.runtime import add_dtype_argument


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__ + "\n" + what.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model directory: autoencoder/ plus one directory per method")
    p.add_argument("--methods", nargs="+", default=None, choices=[*METHODS, RECON, *BASELINES],
                   help=f"default: those present of {list(METHODS)}, and {RECON}")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--first-clip", type=int, default=0,
                   help="first test clip (runs over consecutive ranges merge with python -m eval.merge)")
    p.add_argument("--frames", type=int, default=121, help="video frames per clip (1 + k x the frames per latent)")
    p.add_argument("--window", type=int, default=240, help="frames per metric window (10 s at 24 fps)")
    p.add_argument("--features", default=str(ASSETS / "eval" / "features"),
                   help="FVD-lite feature network ('' skips FVD-lite)")
    p.add_argument("--source", default=None, help="ground-truth source (default: world or avatar by control)")
    p.add_argument("--trajectory", choices=sorted(USER_SCRIPTS), default=None,
                   help="drive every test world with this user behaviour instead of its own trajectory")
    p.add_argument("--no-revisit", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--videos", default=None, help="write the first clip's videos (truth and each method) here")
    p.add_argument("--features-out", default=None,
                   help="write every window's FVD-lite features here (.npz; python -m eval.stats re-scores it)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the clips for FVD-lite intervals")
    add_dtype_argument(p)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    methods = a.methods or [m for m, spec in METHODS.items()
                            if (Path(a.model) / spec.model).is_dir() and not spec.reencode] + [RECON]
    r = evaluate(a.model, methods, a.clips, a.frames, a.window, a.features, a.source, not a.no_revisit, a.seed,
                 a.videos, a.features_out, a.n_boot, a.first_clip, a.dtype, a.trajectory)
    r["command"] = "python -m eval " + " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    print(json.dumps(r) if a.json else json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
