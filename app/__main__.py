"""python -m app: the demo app is not built yet; this lists what the project offers today."""
from __future__ import annotations

import sys
from pathlib import Path

MESSAGE = """AAPT Live — the interactive app is not built yet.
Available now:
  python -m data.build --help      render world / photo-pan training clips with ground truth
  python -m data.preview --help    contact sheets and MP4s of rendered clips
  python -m data.bench --json      renderer speed
  python -m train --help           the training recipe (autoencoder ... long)
  python -m eval.baselines --help  a model's rollouts against the dumb baselines
Shipped models in assets/: {models}"""


def main() -> int:
    assets = Path(__file__).resolve().parent.parent / "assets"
    models = sorted(p.name for p in assets.iterdir() if (p / "generator").is_dir()) if assets.is_dir() else []
    print(MESSAGE.format(models=", ".join(models) or "none yet"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
