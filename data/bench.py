"""Single-core rendering speed of every clip source, as frames per second.

    python -m data.bench --json
prints one JSON object with, for the world, avatar and photo sources at 128 and 256 px:
- ``<source>_<size>_fps``: frames rendered per second once a scene is set up, the median over
  ``--repeats`` seeds of (frames - 1) / (time of a ``--frames`` clip - time of a 1-frame clip);
- ``<source>_<size>_clip_fps``: end to end through ``make_clip``, scene set-up included, for
  clips of ``--frames`` frames (what ``data.build`` sees, amortised over 97-frame clips there);
- ``<source>_setup_ms``: the median time of a 1-frame clip at 128 px (world generation, photo
  loading, a first frame).
A warm-up clip of each seed first absorbs numba compilation and once-per-process loading. A source that is not registered in
``data.sources.SOURCES`` (or fails) gets nulls and a ``<source>_reason``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import cv2

from data.sources import SOURCES, make_clip

BENCH_SOURCES = ("world", "avatar", "photo")
BENCH_SIZES = (128, 256)


def pin_to_one_core() -> None:
    """Run this process on a single CPU core with single-threaded libraries."""
    # numba reads its thread count when first imported, which data.sources defers to the first clip
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)


def source_fps(source: str, size: int, frames: int = 48, repeats: int = 5) -> tuple[float, float, float]:
    """(render fps, end-to-end clip fps, set-up ms): medians over ``repeats`` seeds (1..repeats)."""
    for seed in range(1, repeats + 1):  # warm-up, not timed: numba compilation, photos loaded once
        make_clip(source, seed, 2, size)
    render, clip, setup = [], [], []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        make_clip(source, seed, 1, size)
        t1 = time.perf_counter()
        c = make_clip(source, seed, frames, size)
        t2 = time.perf_counter()
        setup.append(t1 - t0)
        clip.append(c.num_frames / (t2 - t1))
        render.append((c.num_frames - 1) / max(t2 - t1 - (t1 - t0), 1e-9))
    return statistics.median(render), statistics.median(clip), statistics.median(setup) * 1e3


def run(sources: tuple[str, ...] = BENCH_SOURCES, sizes: tuple[int, ...] = BENCH_SIZES, frames: int = 48,
        repeats: int = 5) -> dict:
    """Benchmark every source at every size; missing or failing sources get nulls and a reason."""
    result: dict = {}
    for source in sources:
        reason = None if source in SOURCES else f"source {source!r} is not registered in data.sources.SOURCES"
        for size in sizes:
            key = f"{source}_{size}_fps"
            result[key] = result[f"{source}_{size}_clip_fps"] = None
            if reason is None:
                try:
                    fps, clip_fps, setup_ms = source_fps(source, size, frames, repeats)
                    result[key], result[f"{source}_{size}_clip_fps"] = round(fps, 1), round(clip_fps, 1)
                    if size == min(sizes):
                        result[f"{source}_setup_ms"] = round(setup_ms, 1)
                except Exception as e:  # report the others even if one source is broken
                    reason = f"{type(e).__name__}: {e}"
        if reason is not None:
            result[f"{source}_reason"] = reason
    result.update(frames=frames, repeats=repeats, threads=1)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--sources", nargs="+", default=list(BENCH_SOURCES))
    p.add_argument("--sizes", type=int, nargs="+", default=list(BENCH_SIZES))
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    pin_to_one_core()
    result = run(tuple(a.sources), tuple(a.sizes), a.frames, a.repeats)
    if a.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
