"""Single-core rendering speed of every clip source, as frames per second.

    python -m data.bench --json
prints one JSON object with ``<source>_<size>_fps`` for the world, avatar and photo sources at
128 and 256 px: the median over ``--repeats`` clips (different seeds) of ``--frames`` frames
each, timed end to end through ``make_clip`` (scene set-up included, as in ``data.build``),
after a short warm-up clip of each seed that absorbs numba compilation and once-per-process
loading (a photo is read from disk once per worker). A source that is not registered in
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


def source_fps(source: str, size: int, frames: int = 48, repeats: int = 5) -> float:
    """Median frames per second of ``repeats`` clips of ``source`` (seeds 1..repeats)."""
    for seed in range(1, repeats + 1):  # warm-up, not timed: numba compilation, photos loaded once
        make_clip(source, seed, 2, size)
    fps = []
    for seed in range(1, repeats + 1):
        t = time.perf_counter()
        clip = make_clip(source, seed, frames, size)
        fps.append(clip.num_frames / (time.perf_counter() - t))
    return statistics.median(fps)


def run(sources: tuple[str, ...] = BENCH_SOURCES, sizes: tuple[int, ...] = BENCH_SIZES, frames: int = 48,
        repeats: int = 5) -> dict:
    """Benchmark every source at every size; missing or failing sources get nulls and a reason."""
    result: dict = {}
    for source in sources:
        reason = None if source in SOURCES else f"source {source!r} is not registered in data.sources.SOURCES"
        for size in sizes:
            key = f"{source}_{size}_fps"
            result[key] = None
            if reason is None:
                try:
                    result[key] = round(source_fps(source, size, frames, repeats), 1)
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
