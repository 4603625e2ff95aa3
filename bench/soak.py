"""Soak: long streams through the app's session layer, as a tab people leave open runs them.

    python -m bench.soak [--frames 10000] [--sessions 1] [--fps 0] [--threads 0] [--json]

Each session streams exactly as a browser tab does (``Session.stream()``: the worker thread that
steps the engine, the frame player, the readouts), every shown frame is JPEG-encoded as the
page's ``LiveImage`` does, and the keys and sliders change every second of video, like a person
steering. ``--fps 0`` (the default) plays unpaced: the player's frame rate is set far above the
engine's, so the worker steps back to back and a soak takes as little time as it can; ``--fps 24``
paces like the app. Torch threads are set as ``python -m app`` sets them (all cores but one).

Prints one JSON object: frames and steps made (per session), elapsed_s, rss_mb_start (after the
warm-up), rss_mb_end, rss_mb_peak, rss_growth_pct, step_ms_p50, step_ms_p95_start and
step_ms_p95_end (the first and the last tenth of the steps after the warm-up), p95_ratio,
frame_gap_ms_p95 / _max (time between frames shown to the page: the latency bound), frames
shown and dropped, and pass flags: rss_flat (growth <= 5%), step_flat (p95 ratio <= 1.10), ok.
The model is the shipped world model when ``assets/world/`` has a generator, else random weights
of the shipped size (``trained`` says which); ``--assets DIR`` soaks the first model found there.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from app.adapter import jpeg_data_url
from app.examples import Examples
from app.manager import SessionManager
from app.models import ModelStore, discover
from app.session import Session
from bench.common import ASSETS, DEFAULT, PRESETS, build_models, rss_mb
from model.runtime import add_dtype_argument, precision_info

RSS_GROWTH_MAX_PCT = 5.0
P95_RATIO_MAX = 1.10
# what a person steering the world does, one entry a second of video
KEY_SCRIPT = ("w", "w,arrowleft", "", "arrowright", "d", "w,arrowup", "s", "", "q", "e,r", "f", "a,arrowdown")
SLIDER_SCRIPT = (("yaw", 1.5), ("forward", 0.2), ("yaw", 0.0), ("pitch", -0.5), ("forward", 0.0), ("pitch", 0.0))


def soak_store(preset: str, tmp: Path, assets: Path | None = None, dtype: str = "auto") -> tuple[ModelStore, bool]:
    """The models to soak: ``assets`` when given, else the shipped model of ``preset`` when it exists,
    else random weights of its size saved to ``tmp`` (loaded like any installed model)."""
    if assets is not None:
        return ModelStore(discover(assets), dtype), False
    shipped = [m for m in discover(ASSETS) if m.path.name == PRESETS[preset][4]]
    if shipped:
        return ModelStore(shipped, dtype), True
    ae, dit, _ = build_models(preset)          # random weights of the shipped size (nothing shipped)
    ae.save_pretrained(tmp / preset / "autoencoder")
    dit.save_pretrained(tmp / preset / "generator")
    return ModelStore(discover(tmp), dtype), False


class _Run:
    """One session's stream and what was measured on it."""

    def __init__(self, session: Session, frames: int, every: int):
        self.s = session
        self.frames = frames
        self.every = every                    # frames between input changes
        self.step_ms: list[float] = []
        self.gaps_ms: list[float] = []
        self.shown = 0
        self.first_frame_s: float | None = None
        self.error: str | None = None
        self.rss: list[tuple[int, float]] = []   # (steps, MB), sampled by the first session only
        self.steps = 0

    def __call__(self, sample_rss: bool) -> None:
        s = self.s
        seen, inputs, last = 0, 0, None
        t0 = time.monotonic()
        gen = s.stream()
        try:
            for ev in gen:
                if ev.kind == "error":
                    self.error = ev.message
                    return
                if ev.kind != "frame":
                    continue
                now = time.monotonic()
                jpeg_data_url(ev.frame.image)                 # what the page's LiveImage does with each frame
                self.shown += 1
                if last is None:
                    self.first_frame_s = now - t0
                else:
                    self.gaps_ms.append((now - last) * 1e3)
                last = now
                seen, new = s.timings.steps_since(seen)
                self.step_ms += new
                if sample_rss and new and (seen % 10 == 0 or seen < 5):
                    self.rss.append((seen, rss_mb()))
                if s.frame_index // self.every > inputs:      # a second of video went by: steer
                    inputs = s.frame_index // self.every
                    s.set_keys(KEY_SCRIPT[inputs % len(KEY_SCRIPT)], seq=inputs)
                    s.set_slider(*SLIDER_SCRIPT[inputs % len(SLIDER_SCRIPT)])
                if s.frame_index >= self.frames:
                    break
        finally:
            gen.close()
            self.steps = seen
            if sample_rss:
                self.rss.append((seen, rss_mb()))


def _p95(x) -> float:
    return round(float(np.percentile(x, 95)), 2) if len(x) else float("nan")


def run(frames: int = 10_000, sessions: int = 1, preset: str = DEFAULT, assets: str | Path | None = None,
        fps: float = 0.0, threads: int = 0, seed: int = 0, dtype: str = "auto") -> dict:
    """Soak ``sessions`` concurrent streams of ``frames`` video frames each; returns the report."""
    threads = threads or int(os.environ.get("BENCH_THREADS", "0")) or max(1, (os.cpu_count() or 2) - 1)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="aapt-soak-"))
    try:
        store, trained = soak_store(preset, tmp, Path(assets) if assets is not None else None, dtype)
        world = store.for_mode("world")
        if not world:
            raise SystemExit("no world model to soak")
        examples = Examples()
        manager = SessionManager(store, {"world": examples.default("world")}, {}, max_streams=sessions,
                                 fps=fps if fps > 0 else 1000.0, idle_timeout=3600.0)
        try:
            runs = []
            for k in range(sessions):
                s = manager.get(f"soak-{k}")
                s.mode, s.model_label, s.seed = "world", world[0].label, seed + k
                runs.append(_Run(s, frames, every=24))
            t0 = time.perf_counter()
            workers = [threading.Thread(target=r, args=(k == 0,), name=f"soak-{k}") for k, r in enumerate(runs)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - t0
            dropped = sum(r.s.player.dropped for r in runs)
            model = world[0].name
            resolution = runs[0].s.engine.size if runs[0].s.engine is not None else None
        finally:
            manager.shutdown()
    finally:
        torch.set_num_threads(old_threads)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    errors = [r.error for r in runs if r.error]
    steps = min(r.steps for r in runs)
    warm = max(10, steps // 20)
    win = max(20, (steps - warm) // 10)
    start = np.concatenate([r.step_ms[warm:warm + win] for r in runs])
    end = np.concatenate([r.step_ms[-win:] for r in runs])
    rss = runs[0].rss
    rss0 = next((mb for n, mb in rss if n >= warm), rss[0][1] if rss else float("nan"))
    rss1 = rss[-1][1] if rss else float("nan")
    growth = (rss1 - rss0) / rss0 * 100.0
    p95_0, p95_1 = _p95(start), _p95(end)
    ratio = round(p95_1 / p95_0, 3) if p95_0 > 0 else float("nan")
    gaps = np.concatenate([r.gaps_ms for r in runs]) if any(r.gaps_ms for r in runs) else np.array([])
    out = {
        "bench": "soak", "model": model, "trained": trained,
        "resolution": resolution, "precision": precision_info(store.dtype), "sessions": sessions, "threads": threads, "paced_fps": fps or None,
        "frames": min(r.s.frame_index for r in runs), "steps": steps,
        "steps_timed": min(len(r.step_ms) for r in runs), "elapsed_s": round(elapsed, 1),
        "fps_made": round(sum(r.s.frame_index for r in runs) / elapsed, 1),
        "rss_mb_start": round(rss0, 1), "rss_mb_end": round(rss1, 1),
        "rss_mb_peak": round(max((mb for _, mb in rss), default=float("nan")), 1),
        "rss_growth_pct": round(growth, 2),
        "step_ms_p50": round(float(np.median(np.concatenate([r.step_ms for r in runs]))), 2),
        "step_ms_p95_start": p95_0, "step_ms_p95_end": p95_1, "p95_ratio": ratio,
        "window_steps": win, "warmup_steps": warm,
        "frame_gap_ms_p95": _p95(gaps), "frame_gap_ms_max": round(float(gaps.max()), 1) if len(gaps) else None,
        "first_frame_s_max": round(max(r.first_frame_s or 0.0 for r in runs), 2),
        "frames_shown": sum(r.shown for r in runs), "frames_dropped": dropped,
        "errors": errors,
        "rss_flat": bool(growth <= RSS_GROWTH_MAX_PCT), "step_flat": bool(ratio <= P95_RATIO_MAX),
    }
    out["ok"] = bool(out["rss_flat"] and out["step_flat"] and not errors and out["frames"] >= frames)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=10_000, help="video frames per session (4 per step)")
    p.add_argument("--sessions", type=int, default=1, help="sessions streaming at once (each its own tab)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT)
    p.add_argument("--assets", type=Path, default=None, help="soak the first world model in this folder instead")
    p.add_argument("--fps", type=float, default=0.0, help="pace playback at this rate (0: unpaced, steps back to back)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: as the app: all cores but one)")
    p.add_argument("--seed", type=int, default=0)
    add_dtype_argument(p)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    r = run(a.frames, a.sessions, a.preset, a.assets, a.fps, a.threads, a.seed, a.dtype)
    print(json.dumps(r) if a.json else "\n".join(f"{k:22s} {v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
