"""Look at clips: a contact sheet (rows = clips, columns = every k-th frame) and one MP4 per clip.

    python -m data.preview --source world --seeds 0 1 2 3 --frames 49 --size 128 --out runs/preview
    python -m data.preview --shards runs/data/world-128/train --clips 0 1 2 3 --out runs/preview
Writes ``<out>/<name>-sheet.png`` and ``<out>/<name>-<seed>.mp4`` and prints each row's meta.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from data.clip import Clip
from data.sources import SOURCES, make_clip
from data.video import contact_sheet, write_mp4

MAX_COLUMNS = 9


def preview(clips: list[Clip], out: str | os.PathLike, name: str, every: int | None = None,
            fps: int = 24) -> Path:
    """Write the contact sheet and the MP4s of ``clips``; returns the sheet's path."""
    out = Path(out)
    n = max(c.num_frames for c in clips)
    every = every or max(1, math.ceil((n - 1) / (MAX_COLUMNS - 1)))
    sheet = out / f"{name}-sheet.png"
    contact_sheet([c.frames[::every] for c in clips], sheet)
    for i, c in enumerate(clips):
        write_mp4(out / f"{name}-{c.meta.get('seed', i)}.mp4", c.frames, fps=fps)
    return sheet


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", choices=sorted(SOURCES), help="render clips of this source")
    what.add_argument("--shards", help="read clips from this shard directory instead")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="seeds to render (--source)")
    p.add_argument("--clips", type=int, nargs="+", default=[0, 1, 2, 3], help="clip indices (--shards)")
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--every", type=int, default=None, help="sheet column stride (default: at most 9 columns)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.source:
        clips, name = [make_clip(a.source, s, a.frames, a.size) for s in a.seeds], a.source
    else:
        from data.shards import ShardReader

        reader = ShardReader(a.shards)
        clips, name = [reader.clip(i) for i in a.clips], Path(a.shards).resolve().name
    sheet = preview(clips, a.out, name, a.every)
    for row, c in enumerate(clips):
        print(f"row {row}: {json.dumps(c.meta)}")
    print(f"wrote {sheet} and {len(clips)} MP4s")


if __name__ == "__main__":
    main()
