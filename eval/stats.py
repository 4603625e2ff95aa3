"""How sure is an FVD-lite figure: bootstrap intervals over clips, the bias-corrected FD-infinity,
and whether a generated video keeps the content (world kind) of its ground truth.

A Fréchet distance from a few clips is both noisy (which clips were drawn) and biased upward
(a covariance from a few windows), and a drift ratio (last window / first window) divides two
such figures. So, per method and window:

- ``fvd_ci``: the 5th and 95th percentile of FVD-lite over bootstrap resamples of the test clips
  (the same resampled clips for every window and for the ground-truth reference, so the drift
  ratio's interval ``drift_fvd_ci`` is paired);
- ``fvd_inf``: FD-infinity (Chong & Forsyth 2020, "Effectively unbiased FID"): FVD-lite of random
  subsets of k clips is about linear in 1/k; the intercept at 1/k = 0 is the distance free of the
  finite-sample bias. Subsets are drawn by clip (windows of one clip are not independent), and
  each is scored against the truth of the same clips. With a few clips the extrapolation is
  long and noisy (it can even fall below 0): read it beside the interval, not instead of it;
- ``fvd_matched``: each window's FVD-lite against the truth's same window only. Against the pooled
  reference (every window of the truth, the headline ``fvd``) a window also differs by what the
  truth itself shows then: over 5 minutes the autoencoder bound's "drift" reaches 3.3 that way.
  Same-window distances leave only the generator's departure (the bound scores about 0 in every
  window), at the price of a smaller reference (more bias: compare methods, not absolute values);
- ``content_acc``: the share of a method's 16-frame windows that the feature network's content
  head assigns to the clip's true content (world kind, photo, avatar); on the ground truth
  itself this is the network's own accuracy (the floor). ``content_by_kind``: the same per
  content class (``city``, ``hills``...), since the network reads some kinds far better than others.

    python -m eval --model assets/world --clips 8 --frames 1441 --features-out runs/eval/w.npz --json > runs/eval/w.json
    python -m eval.stats --features runs/eval/w.npz --result runs/eval/w.json   # re-score (e.g. more resamples)

Shapes: C clips, W windows, n windows of 16 frames in one metric window of one clip, D features.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as Fn

Feats = list[list[np.ndarray]]      # [window][clip] -> (n, D)


def content_label(meta: dict, contents: tuple[str, ...]) -> int:
    """Index of a clip's content in the feature net's classes (-1 if it has none of them)."""
    src = meta.get("source", "avatar" if "landmarks" in meta else "world")
    name = f"world/{meta.get('kind')}" if src == "world" else src
    return contents.index(name) if name in contents else -1


@torch.no_grad()
def content_accuracy(net, feats: Feats, labels: list[int]) -> list[float]:
    """Per window, the share of windows (all clips) whose content-head argmax is the clip's label."""
    out = []
    for per_clip in feats:
        hits, total = 0, 0
        for f, y in zip(per_clip, labels):
            if y < 0 or len(f) == 0:
                continue
            logits = net.content(Fn.silu(torch.from_numpy(np.asarray(f, np.float32))))
            hits += int((logits.argmax(-1) == y).sum())
            total += len(f)
        out.append(hits / total if total else float("nan"))
    return out


def content_accuracy_by_kind(net, feats: Feats, labels: list[int]) -> dict[str, list[float]]:
    """``content_accuracy`` of the clips of each content class present (e.g. ``city``): pooled over
    kinds, a model that keeps only the kinds the network reads well looks as good as one that keeps
    them all (the network names true cities in about 9 windows of 10, true mountains in almost none)."""
    names = net.config.contents
    return {names[k].split("/")[-1]: content_accuracy(net, feats, [y if y == k else -1 for y in labels])
            for k in sorted({y for y in labels if y >= 0})}


# ----------------------------------------------------------------------------- Fréchet distance
class Moments:
    """Sums of x and x x^T of each (window, clip) cell, so that the Gaussian of any multiset of
    clips is a sum, not a concatenation (bootstrap: thousands of resamples)."""

    def __init__(self, feats: Feats):
        self.n = np.array([[len(f) for f in fw] for fw in feats], np.float64)              # (W, C)
        self.s = np.stack([np.stack([np.asarray(f, np.float64).sum(0) for f in fw]) for fw in feats])   # (W, C, D)
        self.ss = np.stack([np.stack([np.asarray(f, np.float64).T @ np.asarray(f, np.float64) for f in fw])
                            for fw in feats])                                                # (W, C, D, D)

    def gaussian(self, clips: np.ndarray, windows: slice | int = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance (unbiased, as np.cov) of the windows pooled over ``clips`` (with repeats)."""
        n = self.n[windows][..., clips].sum()
        s = self.s[windows][..., clips, :].reshape(-1, self.s.shape[-1]).sum(0)
        ss = self.ss[windows][..., clips, :, :].reshape(-1, *self.ss.shape[-2:]).sum(0)
        mu = s / n
        return mu, (ss - n * np.outer(mu, mu)) / (n - 1)


def frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The Fréchet distance of two Gaussians. tr sqrt(s1 s2) is the sum of the square roots of
    the eigenvalues of s1 s2 (real and >= 0 for two PSD matrices): 6x faster than sqrtm."""
    ev = np.linalg.eigvals(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def fvd_stats(gen: Feats, gt: Feats, n_boot: int = 200, seed: int = 0, q: tuple[float, float] = (5, 95),
              max_subsets: int = 20) -> dict:
    """For one method's features ``gen`` against the ground truth's ``gt``: FVD-lite per window and
    its drift (``fvd``, ``drift_fvd``: every clip), bootstrap intervals of both, FD-infinity per window, and the same-window FVD-lite
    (``fvd_matched``: each window against the truth's same window only, so the truth's own
    changes over time, which the bound row shows against the pooled reference, do not count) with
    its intervals. The pooled reference is every ground-truth window of the clips drawn, as in
    ``python -m eval``."""
    W, C = len(gen), len(gen[0])
    G, R = Moments(gen), Moments(gt)
    every = np.arange(C)
    pooled = [frechet(*G.gaussian(every, w), *R.gaussian(every)) for w in range(W)]
    matched = [frechet(*G.gaussian(every, w), *R.gaussian(every, w)) for w in range(W)]
    rng = np.random.default_rng(seed)
    boot = {"": np.empty((n_boot, W)), "_matched": np.empty((n_boot, W))}
    for b in range(n_boot):
        idx = rng.integers(0, C, size=C)
        ref = R.gaussian(idx)
        for w in range(W):
            g = G.gaussian(idx, w)
            boot[""][b, w] = frechet(*g, *ref)
            boot["_matched"][b, w] = frechet(*g, *R.gaussian(idx, w))
    out = {"fvd": pooled, "drift_fvd": pooled[-1] / max(pooled[0], 1e-9),
           "fvd_matched": matched, "drift_fvd_matched": matched[-1] / max(matched[0], 1e-9)}
    for sfx, bt in boot.items():
        drift = bt[:, -1] / np.maximum(bt[:, 0], 1e-9)
        out[f"fvd{sfx}_ci"] = [[float(np.percentile(bt[:, w], q[0])), float(np.percentile(bt[:, w], q[1]))]
                               for w in range(W)] if n_boot else None
        out[f"drift_fvd{sfx}_ci"] = [float(np.percentile(drift, q[0])), float(np.percentile(drift, q[1]))] \
            if n_boot else None
        out[f"_drift_boot{sfx}"] = drift    # per resample; the same seed draws the same clips for every method
    # FD-infinity: FVD-lite of random subsets of k = 2 .. C clips (without repeats), each against
    # the truth of the same clips (the design is paired: a subset of generated clips against the
    # truth of all clips would add a content mismatch that also shrinks with k), least squares in 1/k
    ks = list(range(2 if C > 2 else 1, C + 1))
    if len(ks) < 2:
        out["fvd_inf"], out["drift_fvd_inf"] = None, None
        return out
    xs, ys = [], [[] for _ in range(W)]
    for k in ks:
        combos = list(itertools.combinations(range(C), k))
        for j in rng.choice(len(combos), size=min(max_subsets, len(combos)), replace=False):
            idx = np.array(combos[j])
            ref = R.gaussian(idx)
            xs.append(1.0 / k)
            for w in range(W):
                ys[w].append(frechet(*G.gaussian(idx, w), *ref))
    A = np.stack([np.ones(len(xs)), np.array(xs)], 1)
    inf = [float(np.linalg.lstsq(A, np.array(y), rcond=None)[0][0]) for y in ys]
    out["fvd_inf"] = inf
    out["drift_fvd_inf"] = inf[-1] / inf[0] if inf[0] > 0 and inf[-1] > 0 else None   # noise can push one below 0
    return out


# ----------------------------------------------------------------------------- files
def save_features(path: str | Path, windows: list[tuple[int, int]], labels: list[int], gt: Feats,
                  methods: dict[str, Feats]) -> None:
    """Every window's features (float16) of the truth and of each method, with the clips' labels."""
    arrays = {"windows": np.array(windows, np.int64), "labels": np.array(labels, np.int64)}
    for name, feats in {"ground_truth": gt, **methods}.items():
        for w, per_clip in enumerate(feats):
            arrays[f"{name}/w{w}"] = np.stack(per_clip).astype(np.float16)          # (C, n, D)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_features(path: str | Path) -> tuple[list[int], Feats, dict[str, Feats]]:
    """(labels, ground-truth features, {method: features}) as written by ``save_features``."""
    with np.load(path) as z:
        W = len(z["windows"])
        names = sorted({k.split("/")[0] for k in z.files if "/" in k})
        feats = {n: [list(z[f"{n}/w{w}"].astype(np.float32)) for w in range(W)] for n in names}
        labels = z["labels"]
    return [int(x) for x in labels], feats.pop("ground_truth"), feats


def same_truth(a: Feats, b: Feats) -> bool:
    """Whether two runs' ground-truth features are those of the same clips and windows (float16 files)."""
    return len(a) == len(b) and all(len(wa) == len(wb) and all(np.allclose(x, y, rtol=1e-2, atol=1e-2)
                                                                for x, y in zip(wa, wb)) for wa, wb in zip(a, b))


def add_fvd_stats(methods: dict[str, dict], feats: dict[str, Feats], gt: Feats, n_boot: int = 200, seed: int = 0,
                  ref: str = "aapt", q: tuple[float, float] = (5, 95)) -> None:
    """Into each method's result: fvd_stats, and for every method beside ``ref`` (full AAPT) the
    interval of its drift divided by AAPT's over the same resampled clips (paired), with the
    share of resamples where it drifts at least twice as much (the issue's baseline claim)."""
    stats = {m: fvd_stats(f, gt, n_boot=n_boot, seed=seed, q=q) for m, f in feats.items()}
    for sfx in ("", "_matched"):
        base = stats[ref][f"_drift_boot{sfx}"] if ref in stats else None
        for m, st in stats.items():
            boot = st.pop(f"_drift_boot{sfx}")
            if n_boot and base is not None and m != ref:
                ratio = boot / np.maximum(base, 1e-9)
                st[f"drift_fvd{sfx}_vs_aapt_ci"] = [float(np.percentile(ratio, q[0])),
                                                    float(np.percentile(ratio, q[1]))]
                st[f"drift_fvd{sfx}_vs_aapt_2x"] = float((ratio >= 2).mean())
    for m, st in stats.items():
        methods[m].update(st)


def rescore(result: dict, features: str | Path, net=None, n_boot: int = 200, seed: int = 0) -> dict:
    """``result`` (a ``python -m eval`` JSON) with its FVD-lite figures recomputed from ``features``:
    fvd, drift, intervals, FD-infinity and (with the feature net) content accuracy."""
    labels, gt, methods = load_features(features)
    methods = {m: f for m, f in methods.items() if m in result["methods"]}
    add_fvd_stats(result["methods"], methods, gt, n_boot=n_boot, seed=seed)
    if net is not None:
        for m, feats in methods.items():
            result["methods"][m]["content_acc"] = content_accuracy(net, feats, labels)
            result["methods"][m]["content_by_kind"] = content_accuracy_by_kind(net, feats, labels)
        result.setdefault("floor", {})["content_acc"] = content_accuracy(net, gt, labels)
        result["floor"]["content_by_kind"] = content_accuracy_by_kind(net, gt, labels)
    return result


def main(argv: list[str] | None = None) -> None:
    from eval.features import VideoFeatureNet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", required=True, help=".npz written by python -m eval --features-out")
    p.add_argument("--result", required=True, help="the python -m eval JSON of the same run")
    p.add_argument("--out", default=None, help="where to write the re-scored JSON (default: --result)")
    p.add_argument("--net", default=str(Path(__file__).resolve().parent.parent / "assets" / "eval" / "features"))
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    net = VideoFeatureNet.from_pretrained(a.net).eval() if a.net else None
    r = rescore(json.loads(Path(a.result).read_text()), a.features, net, a.n_boot, a.seed)
    Path(a.out or a.result).write_text(json.dumps(r))
    print(json.dumps({m: {k: o.get(k) for k in ("drift_fvd", "drift_fvd_ci", "drift_fvd_inf")}
                      for m, o in r["methods"].items()}))


if __name__ == "__main__":
    main()
