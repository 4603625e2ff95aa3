"""The results report: tables, drift plots and strips from ``python -m eval`` outputs, into docs/results.md.

    python -m eval.report --results runs/eval --out docs/results [--doc docs/results.md]

Reads every ``*.json`` written by ``python -m eval --json`` under ``--results`` (and the
``*.mp4`` videos beside them, from ``--videos``), writes one section per result into ``<out>``
(``<name>.md``, a copy of ``<name>.json``, drift plots and strips: truth over each method, PNG),
and replaces the part of ``--doc`` between ``<!-- results:start -->`` and ``<!-- results:end -->``
with every section in ``<out>`` (images linked relative to ``--doc``). A result that was not re-run
keeps the section it had.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

NAMES = {"teacher": "teacher (bidirectional, multi-step)", "adapt": "adapt (causal, multi-step)",
         "distill": "distill (1 step)", "adversarial": "adversarial (1 step, no long stage)",
         "aapt": "**AAPT** (full recipe, 1 step)",
         "aapt_reencode": "AAPT recycling the frames shown, encoded again",
         "aapt_warp": "AAPT recycling the last frame shown moved per bone, encoded",
         "long": "AAPT's long stage alone (no interpolation)", "adversarial_tf": "adversarial, teacher forcing (ablation)",
         "autoencoder": "ground truth through the autoencoder (bound)",
         "repeat": "first frame held (no network)", "warp": "first frame warped by the camera or the pose (no network)",
         "warp_recoded": "that warp through the autoencoder (no network)"}
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _f(x, nd=2) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "–"
    return f"{x:.{nd}f}"


def _pct(values) -> str:
    """Mean over windows of a share, as a percentage (older results without it: a dash)."""
    return "–" if not values else _f(100 * float(np.nanmean(values)), 0) + " %"


def _ratio(values, floor) -> str:
    """Mean over windows of a method's error against the mean of its floor (the issue's "x floor")."""
    if not floor:
        return "–"
    return _f(float(np.nanmean(values)) / max(float(np.nanmean(floor)), 1e-9))


def _bracket(ci) -> str:
    return f"[{_f(ci[0])}, {_f(ci[1])}]"


def _interval(x, ci) -> str:
    """A figure with its bootstrap interval, when the run has one: ``1.01 [0.62, 2.10]``."""
    return _f(x) if not ci else f"{_f(x)} {_bracket(ci)}"


def _arrow(values) -> str:
    """First and last window of a per-window figure: ``20.8 → 21.1`` (one window: ``3.9``)."""
    if not values:
        return "–"
    return _f(values[0], 1) if len(values) == 1 else f"{_f(values[0], 1)} → {_f(values[-1], 1)}"


def _first_last(shares) -> str:
    if not shares:
        return "–"
    if len(shares) == 1:
        return f"{_f(100 * shares[0], 0)} %"
    return f"{_f(100 * shares[0], 0)} / {_f(100 * shares[-1], 0)} %"


def _nanmean(values) -> float | None:
    a = np.asarray(values if values else [], float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else None


def _arrow2(values) -> str:
    """``_arrow`` with two decimals (detail kept: 0.08 → 0.11)."""
    if not values:
        return "–"
    return _f(values[0]) if len(values) == 1 else f"{_f(values[0])} → {_f(values[-1])}"


def table(r: dict) -> str:
    """One markdown table of a result file (FVD-lite columns when the run had the feature net;
    bootstrap intervals, FD-infinity and content accuracy when it has them: eval/stats.py)."""
    cam = r["control"] == "camera"
    first = next(iter(r["methods"].values()))
    fvd, pose = "fvd" in first, "akd" in first
    view = "detail" in first                          # what a viewer sees (eval/metrics.py); older runs lack it
    inf = any(o.get("fvd_inf") for o in r["methods"].values())
    single = len(r["windows"]) == 1                   # one window: no drift, same-window = pooled
    matched = any(o.get("fvd_matched") for o in r["methods"].values()) and not single
    content = any(o.get("content_acc") for o in r["methods"].values())
    # the kind the feature net reads best (cities 9 windows in 10 on the truth): whether a world stays a city
    city = content and any("city" in (o.get("content_by_kind") or {}) for o in r["methods"].values())
    ci = " [90 % interval]" if first.get("fvd_ci") else ""
    seen = any("psnr_1s_seen" in o for o in r["methods"].values())
    head = ["method", "steps", "PSNR 1 s", *(["PSNR 1 s, seen pixels"] if seen else []), "SSIM 1 s",
            "PSNR last window", "drift PSNR (first / last)"]
    if fvd:
        head += ["FVD-lite" + ci] if single else ["FVD-lite first → last", "drift FVD" + ci]
    if matched:
        head += ["same-window FVD-lite first → last", "its drift [90 % interval]"]
    if inf:
        head += ["FD∞" if single else "FD∞ first → last"]
    if content:
        head += ["content kept" if single else "content kept (first / last window)"]
    if city:
        head += ["cities kept" if single else "cities kept (first / last window)"]
    fl = r.get("floor", {})
    if cam:
        head += ["RotErr", "RotErr / floor", "TransErr", "drift RotErr"]
    if pose:
        head += ["AKD", "AKD / floor", "drift AKD", "no person found", "PCK@0.5"]
    if view:
        head += ["detail kept" if single else "detail kept first → last", "pulse", "mosaic"]
    head += ["ms / latent frame"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, o in r["methods"].items():
        p = o.get("psnr", [float("nan")])
        steps = "–" if o.get("steps") is None else str(o["steps"])          # the autoencoder row: none
        row = [NAMES.get(m, m), steps, _f(o["psnr_1s"]), *([_f(o.get("psnr_1s_seen"))] if seen else []),
               _f(o["ssim_1s"], 3), _f(p[-1]), _f(p[0] / p[-1] if p[-1] else float("nan"))]
        if fvd and single:
            row += [_interval(o["fvd"][0], (o.get("fvd_ci") or [None])[0])]
        elif fvd:
            row += [_arrow(o["fvd"]), _interval(o["drift_fvd"], o.get("drift_fvd_ci"))]
        if matched:
            row += [_arrow(o.get("fvd_matched")), _interval(o.get("drift_fvd_matched"), o.get("drift_fvd_matched_ci"))]
        if inf:
            row += [_arrow(o.get("fvd_inf"))]
        if content:
            row += [_first_last(o.get("content_acc"))]
        if city:
            row += [_first_last((o.get("content_by_kind") or {}).get("city"))]
        if cam:
            row += [_f(np.nanmean(o["rot_err"])), _ratio(o["rot_err"], fl.get("rot_err")),
                    _f(np.nanmean(o["trans_err"])), _f(o["drift_rot_err"])]
        if pose:
            row += [_f(np.nanmean(o["akd"]), 3), _ratio(o["akd"], fl.get("akd")), _f(o["drift_akd"]),
                    _f(100 * np.nanmean(o["missing"]), 0) + " %", _pct(o.get("pck"))]
        if view:
            row += [_arrow2(o.get("detail")), _f(_nanmean(o.get("pulse"))), _f(_nanmean(o.get("mosaic")))]
        row += [_f(o["ms_per_latent"], 1)]
        rows.append("| " + " | ".join(row) + " |")
    pre = ["–"] * (5 + seen + (2 - single) * fvd + 2 * matched + inf)         # the floor rows' empty cells
    pre += [_first_last(fl.get("content_acc"))] if content else []
    pre += [_first_last((fl.get("content_by_kind") or {}).get("city"))] if city else []
    truth_view = ["1.00", _f(_nanmean(fl.get("pulse"))), "1.00"] if view else []
    if cam and fl:
        cells = ["ground truth (estimator floor)"] + pre + [
            _f(np.nanmean(fl["rot_err"])), "1.00", _f(np.nanmean(fl["trans_err"])), "–"] + truth_view + ["–"]
        rows.append("| " + " | ".join(cells) + " |")
    if pose and "akd" in fl:
        cells = ["ground truth (MediaPipe floor)"] + pre + [
            _f(np.nanmean(fl["akd"]), 3), "1.00", "–", _f(100 * np.nanmean(fl["missing"]), 0) + " %",
            _pct(fl.get("pck"))] + truth_view + ["–"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def drift_plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(r["methods"].values()))
    keys = [k for k in ("psnr", "fvd", "rot_err", "akd") if k in first]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.2), squeeze=False)
    t = [(a + b) / 2 / 24.0 for a, b in r["windows"]]
    titles = {"psnr": "PSNR (dB) per window", "fvd": "FVD-lite per window", "rot_err": "RotErr (deg) per window",
              "akd": "AKD (torso lengths) per window"}
    for ax, k in zip(axes[0], keys):
        for m, o in r["methods"].items():
            line, = ax.plot(t, o[k], marker="o", label=m)
            if k == "fvd" and o.get("fvd_ci"):                 # the bootstrap interval over clips
                ci = np.array(o["fvd_ci"])
                ax.fill_between(t, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.15, lw=0)
        if k in r.get("floor", {}):
            ax.plot(t, r["floor"][k], "k--", label="ground truth")
        ax.set_xlabel("time (s)")
        band = k == "fvd" and any(o.get("fvd_ci") for o in r["methods"].values())
        ax.set_title(titles[k] + (" (bands: 90 % over clips)" if band else ""), fontsize=9 if band else None)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def strip(video_dir: Path, path: Path, frames: tuple[int, ...] = (0, 12, 24, 48, 96, 240, 480, 960, 1440)) -> bool:
    """Truth over every method at a few frame indices, one PNG; False if there are no videos."""
    from data.video import contact_sheet, read_video

    gt = video_dir / "ground_truth.mp4"
    if not gt.is_file():
        return False
    vids = [("ground_truth", read_video(gt))] + [(m, read_video(video_dir / f"{m}.mp4")) for m in NAMES
                                                   if (video_dir / f"{m}.mp4").is_file()]
    n = min(len(v) for _, v in vids)
    sel = [f for f in frames if f < n]
    contact_sheet([v[sel] for _, v in vids], path)
    (path.with_suffix(".txt")).write_text("rows: " + ", ".join(m for m, _ in vids) + "\nframes: " + ", ".join(map(str, sel)))
    return True


def section(name: str, r: dict, results: Path, out: Path, links: str = "results") -> str:
    """One result's section; its images are linked as ``<links>/<file>`` (``<out>`` seen from the document)."""
    """The markdown section of one result (table, revisit line, drift plot, strip)."""
    on = f" on {r['source']} clips" if r.get("source") not in (None, r["model"]) else ""
    parts = [f"### {name}: {r['model']} model{on}, {r['clips']} clips x {r['frames']} frames "
             f"({r['frames'] / 24:.0f} s), windows of {r['window']} frames",
             "", "`" + r.get("command", f"python -m eval --model assets/{r['model']} --clips {r['clips']} "
                                      f"--frames {r['frames']} --window {r['window']} --json")
             + f" > runs/eval/{name}.json`", "", table(r)]
    for sfx, what in (("", "FVD-lite drift"), ("_matched", "Same-window FVD-lite drift")):
        rel = {m: o for m, o in r["methods"].items() if o.get(f"drift_fvd{sfx}_vs_aapt_ci") and m != "autoencoder"}
        if rel and len(r["windows"]) > 1:
            aapt = r["methods"]["aapt"][f"drift_fvd{sfx}"]
            parts += ["", f"{what} of each method divided by AAPT's, on the same bootstrap resamples of the "
                          "clips (90 % interval; share of resamples where it is at least 2x AAPT's): " +
                      "; ".join(f"{m} {_f(o[f'drift_fvd{sfx}'] / max(aapt, 1e-9))} "
                                + _bracket(o[f"drift_fvd{sfx}_vs_aapt_ci"])
                                + f", {_f(100 * o[f'drift_fvd{sfx}_vs_aapt_2x'], 0)} %" for m, o in rel.items()) + "."]
    if "revisit" in r:
        rv = r["revisit"]
        parts += ["", f"Revisit consistency (PSNR of the view after a full 360-degree yaw vs the first view, "
                      f"frame {rv['frame']}): ground truth {_f(rv['ground_truth'], 1)} dB; " +
                  ", ".join(f"{m} {_f(v, 1)} dB" for m, v in rv.items() if m in NAMES)]
    if len(r["windows"]) > 1:
        drift_plot(r, out / f"{name}-drift.png")
        parts += ["", f"![drift {name}]({links}/{name}-drift.png)"]
    # the first clip's videos (eval --videos), then any more clips' from
    # `python -m eval ... --first-clip K --clips 1 --videos runs/eval/<name>/clipK`
    vd = results / name
    for videos, stem, caption in [(vd, name, "Strip ")] + [
            (d, f"{name}-{d.name}", f"Strip of test clip {d.name[4:]}: ") for d in sorted(vd.glob("clip*"))]:
        if strip(videos, out / f"{stem}-strip.png"):
            parts += ["", f"![strips {stem}]({links}/{stem}-strip.png)",
                      "", caption + (out / f"{stem}-strip.txt").read_text()]
    return "\n".join(parts)


def build(results: Path, out: Path, links: str = "results") -> str:
    """Sections for every ``*.json`` under ``results``; each is kept in ``out`` as ``<name>.md``
    beside a copy of its JSON, and the returned text joins every section in ``out``, so results
    measured earlier (whose run folder is gone) stay in the report."""
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(results.glob("*.json")):
        text = f.read_text()
        r = json.loads(text)
        if results.resolve() != out.resolve():
            (out / f.name).write_text(text)
        (out / f"{f.stem}.md").write_text(section(f.stem, r, results, out, links) + "\n")
    parts = ["## Results", "",
             "Regenerate with `python -m eval.report --results runs/eval --out docs/results` after the "
             "`python -m eval` runs listed in each table's caption (a result not re-run keeps its section "
             "and JSON in docs/results). Ground truth is rendered from held-out "
             "test seeds with the same first frame and controls as every method. The row \"ground truth through "
             "the autoencoder (bound)\", where a table has it, scores the true video encoded and decoded: "
             "no generator that decodes these latents can do better."]
    for f in sorted(out.glob("*.md")):
        parts += ["", f.read_text().rstrip("\n")]
    return "\n".join(parts) + "\n"


def update_doc(readme: Path, text: str) -> None:
    s = readme.read_text()
    block = f"{START}\n{text}{END}"
    if START in s and END in s:
        s = s[:s.index(START)] + block + s[s.index(END) + len(END):]
    else:
        s = s.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(s)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="runs/eval")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--doc", default="docs/results.md", help="document to update ('' to skip)")
    a = p.parse_args(argv)
    links = os.path.relpath(a.out, Path(a.doc).parent if a.doc else ".")
    text = build(Path(a.results), Path(a.out), links)
    if a.doc:
        update_doc(Path(a.doc), text)
    print(text)


if __name__ == "__main__":
    main()
