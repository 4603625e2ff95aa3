"""python -m app: serve the AAPT Live demo (default http://127.0.0.1:7860).

    python -m app [--port 7860] [--host 127.0.0.1] [--share] [--assets DIR] [--max-streams 2]

Models are found in ``--assets`` (every ``<name>/`` with ``autoencoder/`` and ``generator/``);
a mode with no model is shown as unavailable. Binds to localhost unless ``--host`` says otherwise;
a public Gradio link only with ``--share``.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from app.examples import DEFAULT_DIR as EXAMPLES
from app.models import DEFAULT_ASSETS, RECYCLE
from model.runtime import add_dtype_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    p.add_argument("--assets", type=Path, default=DEFAULT_ASSETS, help="folder of shipped models")
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="folder of example first frames and motions")
    p.add_argument("--max-streams", type=int, default=2, help="streams generating at once; more tabs wait in line")
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds without input before a stream stops")
    p.add_argument("--fps", type=float, default=24.0, help="playback frame rate (the models' training rate)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="larger uploads are refused")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: all cores but one, at least 1: the rest serves pose detection and the page)")
    add_dtype_argument(p)
    p.add_argument("--recycle", choices=RECYCLE, default="auto",
                   help="what a generator gets back as its previous frame: its own latent (as trained), the "
                        "frames shown, encoded again (a still world holds for the minute), or auto: the frames "
                        "for camera models, the latent for pose models (docs/training.md)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    for flag, v in (("--max-streams", a.max_streams), ("--idle-timeout", a.idle_timeout), ("--fps", a.fps),
                    ("--max-upload-mb", a.max_upload_mb)):
        if not (math.isfinite(v) and v > 0):
            p.error(f"{flag} must be a positive number, got {v}")
    return a


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str, share: bool) -> str | None:
    """A line for the console when the app is reachable from beyond this machine (None when it is not)."""
    where = []
    if host not in LOOPBACK:
        where.append(f"every machine that can reach this one on {host}")
    if share:
        where.append("anyone with the public gradio.live link")
    if not where:
        return None
    return ("WARNING: AAPT Live is open to " + " and ".join(where) + ": there is no login, and each visitor "
            "can use a stream slot, the CPU and uploads (see docs/security.md).")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from app.ui import AppConfig, build

    torch.set_num_threads(a.threads if a.threads > 0 else max(1, (os.cpu_count() or 2) - 1))
    cfg = AppConfig(assets=a.assets, examples=a.examples, max_streams=a.max_streams, idle_timeout=a.idle_timeout,
                    fps=a.fps, max_upload_mb=a.max_upload_mb, dtype=a.dtype, recycle=a.recycle)
    demo, manager, kw = build(cfg)
    found = ", ".join(f"{m.label} ({m.mode})" for m in manager.store.models.values()) or "none"
    print(f"AAPT Live: models: {found}; computing in {manager.store.precision}", flush=True)
    warning = exposure_warning(a.host, a.share)
    if warning:
        print(warning, flush=True)
    demo.queue(default_concurrency_limit=4)
    try:
        # show_error=False: raw exceptions never reach the page (handlers raise readable gr.Error);
        # no SSR: it starts a Node server per app that this page does not need
        demo.launch(server_name=a.host, server_port=a.port, share=a.share, show_error=False, quiet=a.quiet,
                    ssr_mode=False, **kw)
    finally:
        manager.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
