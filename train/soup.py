"""Weight interpolation between two generators fine-tuned from one another (WiSE-FT).

    python -m train.soup --a assets/avatar/adversarial --b runs/avatar-128/long/final/generator \
        --alpha 0.75 --out assets/avatar/generator

writes (1 - alpha) * A + alpha * B. Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models",
WiSE-FT) interpolate a fine-tuned model with the one it started from to keep what fine-tuning
lost; here A is the adversarial generator and B the long stage's, which buys minute-long stability
with worse first seconds (docs/training.md, "Interpolating the adversarial and the long-stage
generator"). Both must have the same config; integer buffers are taken from A.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from model.config import to_dict
from model.dit import VideoDiT
from model.runtime import STORAGE_DTYPE


def interpolate(a: VideoDiT, b: VideoDiT, alpha: float) -> VideoDiT:
    """A new model with weights (1 - alpha) * a + alpha * b (computed in fp32)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if to_dict(a.config) != to_dict(b.config):
        diff = sorted(k for k, v in to_dict(a.config).items() if to_dict(b.config).get(k) != v)
        raise ValueError(f"the two models differ in {diff}: only models of one config can be interpolated")
    sa, sb = a.state_dict(), b.state_dict()
    out = VideoDiT(a.config)
    out.load_state_dict({k: ((1.0 - alpha) * sa[k].float() + alpha * sb[k].float()).to(sa[k].dtype)
                         if sa[k].is_floating_point() else sa[k].clone() for k in sa})
    return out.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="model directory of the start (alpha = 0)")
    p.add_argument("--b", required=True, help="model directory of the fine-tuned end (alpha = 1)")
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--fp32", action="store_true", help="write fp32 (default bf16, as the shipped assets)")
    args = p.parse_args(argv)
    m = interpolate(VideoDiT.from_pretrained(args.a), VideoDiT.from_pretrained(args.b), args.alpha)
    m.save_pretrained(Path(args.out), dtype=None if args.fp32 else STORAGE_DTYPE)
    print(f"wrote {args.out}: (1 - {args.alpha}) * {args.a} + {args.alpha} * {args.b}")


if __name__ == "__main__":
    main()
