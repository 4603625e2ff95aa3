"""Short previews of both modes for the README, recorded with the app's own recorder (app/recorder.py):
docs/preview-world.mp4 and docs/preview-avatar.mp4, 6 s each at 24 fps.

    python docs/previews.py [--assets assets] [--seconds 6] [--modes world avatar]

Each is what a tab shows with the shipped model, its default first frame and a scripted input:
world mode driven through the app's keys (controls/camera_input.py: forward, then a turn, then a
look around), avatar mode playing the app's recorded "dance_a" motion through its pose input
(retargeted onto the default avatar's own body, as the app does).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from app.examples import Examples, image_digest  # noqa: E402
from app.recorder import Recorder  # noqa: E402
from controls.camera_input import CameraInput  # noqa: E402
from controls.motion import RecordedMotion  # noqa: E402
from controls.pose_input import PoseInput  # noqa: E402
from model.engine import StreamingEngine  # noqa: E402

# (seconds, keys held) of the world preview
WORLD_KEYS = ((1.5, "w"), (2.0, "arrowright,w"), (1.0, "arrowleft"), (1.5, "arrowup"))


def record(mode: str, assets: Path, seconds: float, out: Path) -> Path:
    examples = Examples()
    engine = StreamingEngine.from_pretrained(assets / mode)
    image = examples.default("world" if mode == "world" else "avatar")
    first = engine.reset(image, seed=0)
    rec = Recorder(out, fps=24, size=engine.size)
    rec.add(first)
    steps = int(seconds * 24) // engine.fpl
    if mode == "world":
        cam, script = CameraInput(), [(k, int(s * 24 / engine.fpl)) for s, k in WORLD_KEYS]
        plan = [k for k, n in script for _ in range(n)]
        for i in range(steps):
            cam.set_keys(plan[min(i, len(plan) - 1)])
            rec.add(engine.step(cam.next_frames(engine.fpl)))
    else:
        pose = PoseInput(retarget="relative")
        pose.set_body(examples.poses().get(image_digest(image)))
        pose.set_motion(RecordedMotion.load(examples.motions()["dance_a"]))
        for i in range(steps):
            rec.add(engine.step(pose.next_frames(engine.fpl, i * engine.fpl / 24)))
    return rec.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", type=Path, default=ROOT / "assets")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--modes", nargs="+", choices=("world", "avatar"), default=["world", "avatar"],
                   help="the previews to record (the others are left as they are)")
    a = p.parse_args(argv)
    for mode in a.modes:
        path = record(mode, a.assets, a.seconds, ROOT / "docs" / f"preview-{mode}.mp4")
        print(path, f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
