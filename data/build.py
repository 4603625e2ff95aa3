"""Dataset builder: render clips of a source into shards, on all cores, with a progress bar.

    python -m data.build --source world --split train --clips 2000 --frames 97 --size 128 \
        --out runs/data/world-128
Writes ``<out>/<split>/<source>-NNNNN.*`` shards of ``--per-shard`` clips; existing complete
shards are kept, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from pathlib import Path

from tqdm import tqdm

from data.shards import write_shard
from data.sources import SOURCES, make_clip, split_seed


def _build_shard(args: tuple) -> int:
    source, split, first, count, n_frames, size, prefix = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    clips = [make_clip(source, split_seed(split, i), n_frames, size) for i in range(first, first + count)]
    write_shard(prefix, clips)
    return count


def build(source: str, split: str, clips: int, n_frames: int, size: int, out: str, per_shard: int = 16,
          workers: int | None = None, first: int = 0) -> Path:
    root = Path(out) / split
    root.mkdir(parents=True, exist_ok=True)
    jobs = []
    for s, start in enumerate(range(first, first + clips, per_shard)):
        prefix = root / f"{source}-{s:05d}"
        if Path(f"{prefix}.json").exists():
            continue
        jobs.append((source, split, start, min(per_shard, first + clips - start), n_frames, size, str(prefix)))
    workers = workers or os.cpu_count() or 1
    with tqdm(total=clips, initial=clips - sum(j[3] for j in jobs), desc=f"{source}/{split}", unit="clip") as bar:
        if workers == 1:
            for j in jobs:
                bar.update(_build_shard(j))
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for n in pool.imap_unordered(_build_shard, jobs):
                    bar.update(n)
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=sorted(SOURCES), required=True)
    p.add_argument("--split", choices=("train", "val", "test"), required=True)
    p.add_argument("--clips", type=int, required=True)
    p.add_argument("--frames", type=int, default=97, help="frames per clip (1 + 4k suits the autoencoder)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", required=True)
    p.add_argument("--per-shard", type=int, default=16)
    p.add_argument("--workers", type=int, default=None)
    a = p.parse_args(argv)
    build(a.source, a.split, a.clips, a.frames, a.size, a.out, a.per_shard, a.workers)


if __name__ == "__main__":
    main()
