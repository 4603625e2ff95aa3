"""Screenshots of both modes of the app for the README: docs/app-avatar.jpg, docs/app-world.jpg.

    python docs/screenshots.py

World mode runs the shipped world autoencoder with the shipped ``adapt`` generator (a multi-step
model run at one step: blurry, but real weights). No avatar generator is shipped yet, so avatar
mode runs a stand-in: the same world generator with a pose input layer whose pose weights are
zero (it ignores the pose); the screenshot shows the page, the webcam with its skeleton and
the stream, not pose following. Replace both with the real models when they ship.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.app import (app_process, browser_page, free_port, open_app, select_tab, start_stream,  # noqa: E402
                       write_fake_webcam)
from model.config import replace  # noqa: E402
from model.dit import VideoDiT  # noqa: E402


def assets(root: Path) -> Path:
    world = ROOT / "assets" / "world"
    (root / "world").mkdir(parents=True)
    (root / "world" / "autoencoder").symlink_to(world / "autoencoder", target_is_directory=True)
    gen = world / "generator" if (world / "generator").is_dir() else world / "adapt"
    (root / "world" / "generator").symlink_to(gen, target_is_directory=True)
    avatar = root / "avatar-stand-in"
    avatar.mkdir()
    (avatar / "autoencoder").symlink_to(world / "autoencoder", target_is_directory=True)
    src = VideoDiT.from_pretrained(gen)
    dst = VideoDiT(replace(src.config, control="pose", reproject=False))
    state = src.state_dict()
    w = dst.x_in.weight.detach().clone()
    w.zero_()
    w[:, : state["x_in.weight"].shape[1] - src.config.control_features] = \
        state["x_in.weight"][:, : state["x_in.weight"].shape[1] - src.config.control_features]
    state["x_in.weight"] = w
    dst.load_state_dict(state)
    dst.save_pretrained(avatar / "generator", dtype=torch.bfloat16)
    return root


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
        with app_process(assets(tmp / "assets"), free_port()) as url, browser_page(cam, (1360, 980)) as page:
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
