"""Two generators on the same test clips, paired: which one is closer to the truth, and how sure.

    python -m eval --model assets/avatar --methods aapt --clips 6 --frames 1441 --features-out old.npz --json > old.json
    python -m eval --model runs/candidate --methods aapt --clips 6 --frames 1441 \
        --features-out new.npz --json > new.json
    python -m eval.compare --features old.npz new.npz

Both runs must cover the same clips (the truth's features agree; clip i has the same ground
truth and noise seed in any run). Every bootstrap resample draws the same clips for both
generators, so clip-to-clip differences, which dominate the spread of each figure alone, cancel:
for each FVD-lite figure (mean over the windows, first and last window, drift = last / first,
and the same with each window against the truth's same window) it prints both values, the ratio
new / old with its interval, and the share of resamples where the new generator's is lower.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from eval.stats import Feats, Moments, frechet, load_features, same_truth


def _figures(G: Moments, R: Moments, idx: np.ndarray, W: int) -> dict[str, float]:
    """The FVD-lite figures of the generated features ``G`` against the truth ``R`` over the clips ``idx``."""
    ref = R.gaussian(idx)
    pooled = [frechet(*G.gaussian(idx, w), *ref) for w in range(W)]
    matched = [frechet(*G.gaussian(idx, w), *R.gaussian(idx, w)) for w in range(W)]
    out = {"mean_fvd": float(np.mean(pooled))}
    if W > 1:                               # one window: its FVD-lite is every figure, and there is no drift
        out.update(first_fvd=pooled[0], last_fvd=pooled[-1], drift_fvd=pooled[-1] / max(pooled[0], 1e-9),
                   mean_fvd_matched=float(np.mean(matched)), drift_fvd_matched=matched[-1] / max(matched[0], 1e-9))
    return out


def paired(old: Feats, new: Feats, gt: Feats, n_boot: int = 200, seed: int = 0,
           q: tuple[float, float] = (5, 95)) -> dict[str, dict]:
    """For each figure: ``old``, ``new`` (every clip), ``ratio`` new / old, its bootstrap interval
    ``ratio_ci`` and ``new_lower``, the share of resamples of the clips where new < old."""
    W, C = len(gt), len(gt[0])
    if len(old) != W or len(new) != W or any(len(f) != C for fs in (old, new) for f in fs):
        raise ValueError("the two generators' features do not have the truth's windows and clips")
    A, B, R = Moments(old), Moments(new), Moments(gt)
    every = np.arange(C)
    fa, fb = _figures(A, R, every, W), _figures(B, R, every, W)
    rng = np.random.default_rng(seed)
    ratios = {k: np.empty(n_boot) for k in fa}
    for b in range(n_boot):
        idx = rng.integers(0, C, size=C)
        ba, bb = _figures(A, R, idx, W), _figures(B, R, idx, W)
        for k in fa:
            ratios[k][b] = bb[k] / max(ba[k], 1e-9)
    out = {}
    for k in fa:
        r = ratios[k]
        out[k] = {"old": fa[k], "new": fb[k], "ratio": fb[k] / max(fa[k], 1e-9),
                  "ratio_ci": [float(np.percentile(r, q[0])), float(np.percentile(r, q[1]))] if n_boot else None,
                  "new_lower": float((r < 1).mean()) if n_boot else None}
    return out


def compare_files(old: str, new: str, method_old: str = "aapt", method_new: str = "aapt", n_boot: int = 200,
                  seed: int = 0) -> dict:
    """``paired`` on two ``python -m eval --features-out`` files over the same clips."""
    (lab_a, gt_a, m_a), (lab_b, gt_b, m_b) = load_features(old), load_features(new)
    if lab_a != lab_b or not same_truth(gt_a, gt_b):
        raise ValueError(f"{new}: other clips (or windows) than {old}: the ground truth's features differ")
    for path, m, name in ((old, m_a, method_old), (new, m_b, method_new)):
        if name not in m:
            raise ValueError(f"{path} has no method {name!r} (it has {sorted(m)})")
    figures = paired(m_a[method_old], m_b[method_new], gt_a, n_boot=n_boot, seed=seed)
    return {"old": f"{old}:{method_old}", "new": f"{new}:{method_new}", "clips": len(lab_a),
            "windows": len(gt_a), "n_boot": n_boot, "figures": figures}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", nargs=2, required=True, metavar=("OLD", "NEW"),
                   help="the two runs' python -m eval --features-out files (same clips)")
    p.add_argument("--methods", nargs="+", default=["aapt"], metavar="METHOD",
                   help="the method to compare in each file: one name for both, or OLD's and NEW's")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if len(a.methods) > 2:
        p.error("give one method, or two (old's and new's)")
    m_old, m_new = a.methods[0], a.methods[-1]
    try:
        r = compare_files(a.features[0], a.features[1], m_old, m_new, a.n_boot, a.seed)
    except ValueError as e:
        p.error(str(e))
    print(json.dumps(r))


if __name__ == "__main__":
    main()
