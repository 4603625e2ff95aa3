"""Screenshots of both modes of the app for the README: docs/app-avatar.jpg, docs/app-world.jpg.

    python docs/screenshots.py

The app runs on the shipped models in assets/ (world and avatar), exactly as `python -m app` does.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.app import (app_process, browser_page, free_port, open_app, select_tab, start_stream,  # noqa: E402
                       write_fake_webcam)


def shoot(page, path: Path) -> None:
    tmp = path.with_suffix(".png")
    page.screenshot(path=str(tmp))
    Image.open(tmp).convert("RGB").save(path, quality=85, optimize=True)
    tmp.unlink()


def main() -> None:
    out = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cam = write_fake_webcam(tmp / "cam.y4m")
        with app_process(ROOT / "assets", free_port()) as url, browser_page(cam, (1360, 980)) as page:
            open_app(page, url)
            select_tab(page, "Avatar")
            start_stream(page, 40)
            time.sleep(4)
            shoot(page, out / "app-avatar.jpg")
            page.click("#aapt-stop")
            select_tab(page, "World")
            start_stream(page, 20)
            page.mouse.click(5, 5)
            page.keyboard.down("ArrowRight")
            page.keyboard.down("w")
            time.sleep(2.5)
            shoot(page, out / "app-world.jpg")
            page.keyboard.up("w")
            page.keyboard.up("ArrowRight")
            page.click("#aapt-stop")
    for p in ("app-avatar.jpg", "app-world.jpg"):
        print(f"{(out / p).stat().st_size / 1024:.0f} KB  docs/{p}")


if __name__ == "__main__":
    main()
