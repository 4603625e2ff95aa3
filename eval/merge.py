"""Add test clips to an evaluation without running the first ones again.

    python -m eval --model assets/world --clips 8 --frames 1441 --features-out a.npz --json > a.json
    python -m eval --model assets/world --clips 16 --first-clip 8 --frames 1441 --features-out b.npz --json > b.json
    python -m eval.merge --results a.json b.json --features a.npz b.npz > ab.json   # = one run over 24 clips

Clip i gets the same ground truth and noise seed in any run, so the merged result is the one a
single run over all clips would give: per-clip scores (camera models keep them in ``per_clip``)
are joined and averaged again, and every FVD-lite figure (intervals, FD-infinity, content) is
recomputed from the joined features (eval/stats.py). A run written before per-clip scores were
kept counts with its means weighted by its clips (the same figure unless a clip's camera
estimate failed, nan); ``from_means`` names such runs. Pose models pool AKD over frames, which
the JSON does not keep per clip, so their results are refused.

Runs over the *same* clips merge side by side instead: every method of every run in one result,
a later run's method replacing an earlier run's (re-run the generator that changed, keep the
baselines' figures), and the comparisons against AAPT recomputed from the joined features:

    python -m eval --model assets/world --methods aapt --clips 24 --frames 1441 --features-out new.npz --json > new.json
    python -m eval.merge --results old.json new.json --features old.npz new.npz > merged.json
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from eval.evaluate import summary
from eval.metrics import VIEW_METRICS
from eval.stats import load_features, rescore, same_truth, save_features

SAME = ("model", "source", "trajectory", "control", "frames", "window", "windows")
VIEW = ("pulse", "grid_peak")      # the truth's own viewer figures in ``floor`` (eval/metrics.py)


def _windows(paths: list[str | Path]) -> list[tuple[int, int]]:
    """The windows of the feature files ``paths``, which must all have the same."""
    def read(p: str | Path) -> list[tuple[int, int]]:
        with np.load(p) as z:
            return [tuple(w) for w in z["windows"]]

    windows = read(paths[0])
    for p in paths[1:]:
        if read(p) != windows:
            raise ValueError(f"{p}: other windows than {paths[0]}")
    return windows


def merge_features(paths: list[str | Path], out: str | Path) -> None:
    """One feature file whose clips are those of ``paths``, in order."""
    parts = [load_features(p) for p in paths]
    windows = _windows(paths)
    names = set(parts[0][2])
    if any(set(m) != names for _, _, m in parts):
        raise ValueError("the feature files hold different methods")
    labels = [y for lab, _, _ in parts for y in lab]
    gt = [[f for _, g, _ in parts for f in g[w]] for w in range(len(windows))]
    methods = {n: [[f for _, _, m in parts for f in m[n][w]] for w in range(len(windows))] for n in names}
    save_features(out, windows, labels, gt, methods)


def _clip_range(r: dict) -> tuple[int, int]:
    return r.get("first_clip", 0), r.get("first_clip", 0) + r["clips"]


def same_clips(results: list[dict]) -> bool:
    """Whether ``results`` are runs over the same clips (merged side by side, not end to end)."""
    return len(results) > 1 and len({_clip_range(r) for r in results}) == 1


def merge_features_side_by_side(paths: list[str | Path], out: str | Path) -> None:
    """One feature file with every method of ``paths`` (runs over the same clips); a later file's
    method replaces an earlier one's. The truth's features must agree (the same clips)."""
    parts = [load_features(p) for p in paths]
    windows = _windows(paths)
    labels, gt, methods = parts[0][0], parts[0][1], {}
    for p, (lab, g, m) in zip(paths, parts):
        if lab != labels:
            raise ValueError(f"{p}: other clips than {paths[0]}")
        if not same_truth(g, gt):
            raise ValueError(f"{p}: the ground truth's features differ from {paths[0]}'s: not the same clips")
        methods.update(m)
    save_features(out, windows, labels, gt, methods)


def side_by_side(results: list[dict], features: str | Path | None = None, net=None, n_boot: int = 200,
                 seed: int = 0) -> dict:
    """One result with every method of ``results`` (runs over the same clips), in order: a later
    run's method replaces an earlier run's, its revisit score too (dropped if the later run had
    none). FVD-lite and the comparisons against AAPT recomputed from the joined ``features``.
    The runs may name other model directories (a candidate generator evaluated before it ships):
    the result keeps the first's name, and ``command`` lists every run's."""
    out = json.loads(json.dumps(results[0]))
    out["methods"], out["command"] = {}, " + ".join(r.get("command", "?") for r in results)
    revisit = {}
    for r in results:
        out["methods"].update(json.loads(json.dumps(r["methods"])))
        rv = r.get("revisit", {})
        if rv and revisit and rv["frame"] != revisit["frame"]:
            raise ValueError(f"cannot merge revisits at frames {revisit['frame']} and {rv['frame']}")
        for m in r["methods"]:                          # a re-run method's old revisit score goes
            revisit.pop(m, None)
            revisit.get("per_clip", {}).pop(m, None)
        revisit.update({k: v for k, v in rv.items() if k != "per_clip"})
        revisit.setdefault("per_clip", {}).update(rv.get("per_clip", {}))
    out.pop("revisit", None)
    if any(k not in ("frame", "per_clip", "ground_truth") for k in revisit):
        out["revisit"] = revisit
    if features is not None:
        out = rescore(out, features, net, n_boot=n_boot, seed=seed)
    return out


def merge(results: list[dict], features: str | Path | None = None, net=None, n_boot: int = 200,
          seed: int = 0) -> dict:
    """The result of one run over the clips of ``results`` (runs over disjoint clip ranges of the
    same model, clip length and windows), FVD-lite recomputed from the merged ``features``; runs
    over the same clips merge side by side (``side_by_side``)."""
    results = sorted(results, key=lambda r: r.get("first_clip", 0))
    sbs = same_clips(results)
    for r in results[1:]:
        for k in SAME:
            if k == "model" and sbs:                # side by side: a candidate evaluated before it ships
                continue
            if r.get(k) != results[0].get(k):
                raise ValueError(f"cannot merge runs with different {k}: {results[0].get(k)!r} vs {r.get(k)!r}")
    if sbs:
        return side_by_side(results, features, net, n_boot, seed)
    for r in results[1:]:
        if set(r["methods"]) != set(results[0]["methods"]):
            raise ValueError("cannot merge runs of different methods")
    ranges = [_clip_range(r) for r in results]
    if any(a < b_prev for (_, b_prev), (a, _) in zip(ranges, ranges[1:])):
        raise ValueError(f"the runs' clip ranges overlap: {ranges}")
    if results[0]["control"] != "camera":
        raise ValueError("only camera-model results can be merged (pose models pool AKD over frames)")
    W = len(results[0]["windows"])

    def clip_values(r: dict, per_clip: dict | None, means: dict, key: str, per_window: bool) -> list:
        """(clip,) or (window, clip) values of ``key``: the run's own per-clip scores, or its mean
        repeated once per clip (a run from before per-clip scores were kept)."""
        if per_clip is not None:
            return per_clip[key]
        v = means[key]
        return [[v[w]] * r["clips"] for w in range(W)] if per_window else [v] * r["clips"]

    def joined(get) -> list:
        return [x for r in results for x in get(r)]

    def joined_windows(get) -> list[list[float]]:
        return [joined(lambda r: get(r)[w]) for w in range(W)]

    out = {k: results[0][k] for k in SAME}
    out.update(clips=sum(r["clips"] for r in results), first_clip=ranges[0][0],
               clip_ranges=[list(x) for x in ranges], methods={},
               command=" + ".join(r.get("command", "?") for r in results))
    old = [f"clips {a}-{b - 1}" for r, (a, b) in zip(results, ranges) if "floor_per_clip" not in r]
    if old:
        out["from_means"] = old
    view = [k for k in VIEW if all(k in r.get("floor_per_clip", {}) for r in results)]
    fl = {k: joined_windows(lambda r, k=k: clip_values(r, r.get("floor_per_clip"), r["floor"], k, True))
          for k in ("rot_err", "trans_err", *view)}
    out["floor"] = {k: [float(np.nanmean(v)) for v in vs] for k, vs in fl.items()}
    out["floor_per_clip"] = fl
    for m, o0 in results[0]["methods"].items():
        def values(r, k, per_window, m=m):
            o = r["methods"][m]
            return clip_values(r, o.get("per_clip"), o, k, per_window)

        pc = {k: joined(lambda r, k=k: values(r, k, False)) for k in ("psnr_1s", "ssim_1s", "ms_per_latent")}
        if all("psnr_1s_seen" in r["methods"][m].get("per_clip", {}) for r in results):
            pc["psnr_1s_seen"] = joined(lambda r: values(r, "psnr_1s_seen", False))
        seen = [k for k in VIEW_METRICS
                if all(k in r["methods"][m].get("per_clip", {}) for r in results)]   # runs from before them lack them
        pc.update({k: joined_windows(lambda r, k=k: values(r, k, True)) for k in ("psnr", "rot_err", "trans_err", *seen)})
        out["methods"][m] = {**summary(pc, o0.get("steps")), "per_clip": pc}
    if all("revisit" in r for r in results):
        names = [n for n in results[0]["revisit"] if n not in ("frame", "per_clip")]
        per = {n: joined(lambda r, n=n: clip_values(r, r["revisit"].get("per_clip"), r["revisit"], n, False))
               for n in names}
        out["revisit"] = {"frame": results[0]["revisit"]["frame"], **{n: float(np.mean(v)) for n, v in per.items()},
                          "per_clip": per}
    if features is not None:
        out = rescore(out, features, net, n_boot=n_boot, seed=seed)
    return out


def main(argv: list[str] | None = None) -> None:
    import tempfile

    from eval.features import VideoFeatureNet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", nargs="+", required=True,
                   help="python -m eval JSONs over disjoint clip ranges, or over the same clips (side by side)")
    p.add_argument("--features", nargs="*", default=[], help="their --features-out files, in the same order")
    p.add_argument("--features-out", default=None, help="keep the joined features here (.npz; default: not kept)")
    p.add_argument("--net", default=str(Path(__file__).resolve().parent.parent / "assets" / "eval" / "features"))
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.features and len(a.features) != len(a.results):
        p.error("give one feature file per result, or none")
    results = [json.loads(Path(x).read_text()) for x in a.results]
    with tempfile.TemporaryDirectory() as tmp:
        feats = None
        if a.features:
            feats = Path(a.features_out or Path(tmp) / "features.npz")
            if same_clips(results):
                merge_features_side_by_side(a.features, feats)
            else:
                order = np.argsort([r.get("first_clip", 0) for r in results], kind="stable")
                merge_features([a.features[i] for i in order], feats)
        net = VideoFeatureNet.from_pretrained(a.net).eval() if feats is not None and a.net else None
        r = merge(results, feats, net, a.n_boot, a.seed)
    # the command that makes this result, and the runs it joins
    r["merged_from"] = [x.get("command", "?") for x in results]
    r["command"] = "python -m eval.merge " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(r))                    # as python -m eval --json: redirect it to the merged result's file


if __name__ == "__main__":
    main()
