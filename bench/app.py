"""The live app in a real browser: frames displayed per second and control-to-frame latency.

    python -m bench.app [--seconds 10] [--presses 24] [--dtype auto] [--threads N] [--recycle auto] [--json]

Launches ``python -m app`` (a subprocess, as a user would) on 128 px models (the shipped ones
where they exist, random weights of the same size otherwise: ``trained`` says which) and drives
it with Debian's chromium through Playwright, with a fake webcam playing a real photo of a
person moving (scikit-image's astronaut, shifted and scaled over time).

- avatar: webcam streaming, MediaPipe running on the server; frames displayed per second in the
  page (``load`` events of the output image), the server's readouts (step, pose detection, webcam
  frame -> frame handed to the page) and the delivery time (hand-off -> displayed in the page).
- world: keyboard driving; displayed fps, and for every key press and release the time from the
  key event in the page to the first displayed frame generated with it (``window.aapt``).
Targets: >= 22 displayed fps in both modes and <= 200 ms control-to-frame latency (median) at
128x128, on a 2-core CPU in whichever dtype ``--dtype`` (default auto, model/runtime.py) picks;
``precision`` says which dtype the app ran and on which CPU capability.
``busy_cores_before`` is how much of the CPU other processes used just before the run, and
``app_cores`` / ``browser_cores`` / ``other_cores`` split the CPU used while measuring: on a
shared machine the numbers are only comparable at similar values.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from model.runtime import CHOICES

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
TARGET_FPS, TARGET_LATENCY_MS = 22.0, 200.0


# ----------------------------------------------------------------------------- fixtures shared with the tests
def write_fake_webcam(path: str | Path, frames: int = 96, width: int = 640, height: int = 480, fps: int = 24) -> Path:
    """A .y4m clip (Chromium's fake capture device) of a real photo of a person moving: the
    astronaut sways left and right, bobs, and comes closer and goes back, looping smoothly."""
    from PIL import Image
    from skimage import data

    src = Image.fromarray(data.astronaut())
    path = Path(path)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            t = 2 * np.pi * i / frames
            side = int(round(height * (0.85 + 0.15 * np.sin(t))))
            im = src.resize((side, side), Image.BILINEAR)
            canvas = Image.new("RGB", (width, height), (38, 40, 46))
            x = (width - side) // 2 + int(0.2 * width * np.sin(t))
            y = height - side + int(0.04 * height * (1 + np.cos(2 * t)))
            canvas.paste(im, (x, y))
            rgb = np.asarray(canvas, dtype=np.float32)
            Y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
            U = 128 + 0.564 * (rgb[..., 2] - Y)
            V = 128 + 0.713 * (rgb[..., 0] - Y)
            f.write(b"FRAME\n")
            f.write(np.clip(Y, 0, 255).astype(np.uint8).tobytes())
            for P in (U, V):   # 4:2:0: average 2x2 blocks
                f.write(np.clip(P.reshape(height // 2, 2, width // 2, 2).mean((1, 3)), 0, 255).astype(np.uint8).tobytes())
    return path


def save_random_model(directory: str | Path, control: str, ae_preset: str = "tiny", dit_preset: str = "tiny",
                      noise: float = 0.05, seed: int = 0) -> Path:
    """A random-weight model folder (autoencoder/ + generator/) for tests and benchmarks. Noise is
    added to every weight so adaLN-Zero blocks are not the identity."""
    import torch

    from model.autoencoder import PRESETS as AE_PRESETS
    from model.autoencoder import VideoAutoencoder
    from model.config import replace
    from model.dit import PRESETS as DIT_PRESETS
    from model.dit import VideoDiT

    torch.manual_seed(seed)
    ae = VideoAutoencoder(AE_PRESETS[ae_preset])
    dit = VideoDiT(replace(DIT_PRESETS[dit_preset], control=control, latent_channels=ae.config.latent_channels,
                           frames_per_latent=ae.config.frames_per_latent))
    with torch.no_grad():
        for p in list(ae.parameters()) + list(dit.parameters()):
            p.add_(torch.randn_like(p) * noise)
    d = Path(directory)
    ae.save_pretrained(d / "autoencoder")
    dit.save_pretrained(d / "generator")
    return d


def bench_assets(root: str | Path) -> tuple[Path, dict[str, bool]]:
    """An assets folder with a 128 px world and avatar model: shipped weights where the repo has
    them, random weights of the shipped size otherwise. Returns it and {mode: trained}."""
    from app.models import DEFAULT_ASSETS, discover

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)      # with both models shipped nothing else creates it
    shipped = {m.mode: m for m in discover(DEFAULT_ASSETS) if m.resolution == 128}
    trained = {}
    for mode, control in (("world", "camera"), ("avatar", "pose")):
        if mode in shipped:
            (root / mode).symlink_to(shipped[mode].path, target_is_directory=True)
            trained[mode] = True
        else:
            save_random_model(root / mode, control, "small", "small", noise=0.02)
            trained[mode] = False
    return root, trained


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def app_process(assets: Path, port: int, *extra: str, log: Path | None = None):
    """``python -m app`` in a subprocess; yields its URL once it answers."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "app", "--assets", str(assets), "--port", str(port), "--quiet",
                             *extra], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    app_process.pid = proc.pid
    try:
        wait_http(url, proc=proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


@contextlib.contextmanager
def browser_page(webcam: Path | None = None, viewport: tuple[int, int] = (1400, 1000)):
    """A Playwright page in Debian's chromium, with a fake webcam playing ``webcam`` (.y4m)."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if webcam is not None:
        args.append(f"--use-file-for-fake-video-capture={webcam}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            ctx = b.new_context(viewport={"width": viewport[0], "height": viewport[1]}, permissions=["camera"])
            yield ctx.new_page()
        finally:
            b.close()


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="load")       # networkidle never settles (the page keeps a stream open)
    page.wait_for_selector("#aapt-start", timeout=60_000)
    page.wait_for_function("() => !!window.aapt", timeout=30_000)
    time.sleep(1.0)


def select_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    time.sleep(0.8)


def start_stream(page, frames: int = 8, timeout_s: float = 60.0) -> None:
    """Press Start and wait until ``frames`` more frames were displayed."""
    f0 = page.evaluate("window.aapt.frames")
    page.click("#aapt-start")
    page.wait_for_function(f"() => window.aapt.frames > {f0 + frames}", timeout=timeout_s * 1000)


def displayed_fps(page, seconds: float) -> tuple[float, float]:
    """(frames displayed per second, frames received per second) over ``seconds``."""
    f0, u0 = page.evaluate("[window.aapt.frames, window.aapt.updates]")
    t0 = time.monotonic()
    time.sleep(seconds)
    f1, u1 = page.evaluate("[window.aapt.frames, window.aapt.updates]")
    dt = time.monotonic() - t0
    return (f1 - f0) / dt, (u1 - u0) / dt


_HUD = {"server_fps_shown": r"([\d.]+) fps\*\* shown|([\d.]+) fps shown", "server_fps_made": r"([\d.]+) fps made",
        "step_ms": r"step (\d+) ms", "dit_ms": r"DiT (\d+)", "decode_ms": r"decode (\d+)",
        "pose_ms": r"pose (\d+) ms", "input_to_frame_ms_server": r"input→frame (\d+) ms"}
_PRECISION = r"(float32|bfloat16) on (\w+)"          # the readout's "float32 on AVX2"


def server_readout(page) -> dict:
    text = page.inner_text("#aapt-hud")
    out = {}
    for k, pat in _HUD.items():
        m = re.search(pat, text)
        if m:
            out[k] = float(next(g for g in m.groups() if g is not None))
    m = re.search(_PRECISION, text)
    if m:
        out["dtype"], out["cpu_capability"] = m.groups()
    return out


def busy_cores(seconds: float = 2.0) -> float:
    """Cores' worth of CPU busy over ``seconds`` (from /proc/stat; 0 where unavailable)."""
    def snap():
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    try:
        a = snap()
        time.sleep(seconds)
        b = snap()
    except OSError:
        return 0.0
    total, idle = b[0] - a[0], b[1] - a[1]
    return round((1 - idle / max(total, 1e-9)) * (os.cpu_count() or 1), 2)


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) of every process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(d)] = (int(fields[1]), (float(fields[11]) + float(fields[12])) / tick)
        except (OSError, IndexError, ValueError):
            continue
    return out


def _descendants(table: dict, root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        out.add(p)
        todo += kids.get(p, [])
    return out


class CpuMeter:
    """Cores used by the app process, by the browser (this process' other descendants) and by
    everything else on the machine, over a measuring window."""

    def __init__(self, app_pid: int):
        self.app_pid = app_pid

    def _snap(self) -> tuple[float, dict]:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK"), _proc_table()

    def start(self) -> None:
        self.t0, (self.busy0, self.table0) = time.monotonic(), self._snap()

    def stop(self) -> dict:
        busy1, table1 = self._snap()
        dt = time.monotonic() - self.t0
        app = _descendants(table1, self.app_pid)
        browser = _descendants(table1, os.getpid()) - app - {os.getpid()}

        def used(pids):
            return sum(table1[p][1] - self.table0.get(p, (0, 0.0))[1] for p in pids if p in table1)
        a, b = used(app), used(browser)
        return {"app_cores": round(a / dt, 2), "browser_cores": round(b / dt, 2),
                "other_cores": round(max(0.0, (busy1 - self.busy0) - a - b - used({os.getpid()})) / dt, 2)}


# ----------------------------------------------------------------------------- the runs
def measure_avatar(page, seconds: float, cpu: CpuMeter | None = None) -> dict:
    select_tab(page, "Avatar")
    start_stream(page)
    time.sleep(3.0)                                   # warm-up: tracking locked, schedule settled
    if cpu:
        cpu.start()
    fps, received = displayed_fps(page, seconds)
    out = {"displayed_fps": round(fps, 2), "received_fps": round(received, 2), **server_readout(page),
           **(cpu.stop() if cpu else {})}
    out["delivery_ms_p50"] = round(float(np.median(page.evaluate("window.aapt.delivery"))), 1)
    if "input_to_frame_ms_server" in out:     # webcam frame at the server -> frame displayed in the page
        out["pose_to_frame_ms"] = round(out["input_to_frame_ms_server"] + out["delivery_ms_p50"], 1)
    page.click("#aapt-stop")
    time.sleep(1.0)
    return out


def measure_world(page, seconds: float, presses: int, seed: int = 0, cpu: CpuMeter | None = None) -> dict:
    select_tab(page, "World")
    start_stream(page)
    time.sleep(2.0)
    if cpu:
        cpu.start()
    fps_idle, _ = displayed_fps(page, seconds / 2)
    usage = cpu.stop() if cpu else {}
    page.mouse.click(5, 5)                            # focus the page, not a text box
    page.evaluate("window.aapt.allLatencies.length = 0")
    rng = np.random.default_rng(seed)
    keys = ["w", "ArrowLeft", "d", "ArrowRight", "ArrowUp", "s", "a", "ArrowDown"]
    f0 = page.evaluate("window.aapt.frames")
    t0 = time.monotonic()
    for i in range(presses):
        k = keys[i % len(keys)]
        page.keyboard.down(k)
        time.sleep(float(rng.uniform(0.35, 0.75)))   # random gaps: no phase lock with the step schedule
        page.keyboard.up(k)
        time.sleep(float(rng.uniform(0.35, 0.75)))
    fps_keys = (page.evaluate("window.aapt.frames") - f0) / (time.monotonic() - t0)
    all_lat = page.evaluate("window.aapt.allLatencies.slice()")
    out = {"displayed_fps": round(fps_idle, 2), "displayed_fps_while_driving": round(fps_keys, 2),
           **server_readout(page), **usage, "key_events": 2 * presses, "latency_samples": len(all_lat)}
    if all_lat:
        out["key_to_frame_ms_p50"] = round(float(np.median(all_lat)), 1)
        out["key_to_frame_ms_p90"] = round(float(np.percentile(all_lat, 90)), 1)
    out["delivery_ms_p50"] = round(float(np.median(page.evaluate("window.aapt.delivery"))), 1)
    page.click("#aapt-stop")
    return out


def run(seconds: float = 10.0, presses: int = 24, keep: Path | None = None, dtype: str = "auto",
        threads: int = 0, recycle: str = "auto") -> dict:
    busy = busy_cores()
    with tempfile.TemporaryDirectory(prefix="aapt-bench-") as tmp:
        tmp = Path(tmp)
        assets, trained = bench_assets(tmp / "assets")
        cam = write_fake_webcam(tmp / "webcam.y4m")
        port = free_port()
        with app_process(assets, port, "--dtype", dtype, "--threads", str(threads), "--recycle", recycle,
                         log=keep) as url, browser_page(cam) as page:
            cpu = CpuMeter(app_process.pid)
            open_app(page, url)
            avatar = measure_avatar(page, seconds, cpu)
            world = measure_world(page, seconds, presses, cpu=cpu)
    fps_min = min(avatar["displayed_fps"], world["displayed_fps"])
    lat = world.get("key_to_frame_ms_p50", float("inf"))
    precision = {k: world.get(k, avatar.get(k)) for k in ("dtype", "cpu_capability")}
    return {
        "resolution": 128, "trained": trained, "cpu_count": os.cpu_count(), "busy_cores_before": busy,
        "app_threads": threads or max(1, (os.cpu_count() or 2) - 1), "recycle": recycle,
        "precision": precision,
        "avatar": avatar, "world": world,
        "displayed_fps_min": round(fps_min, 2), "control_to_frame_ms_p50": lat,
        "meets_fps_target": fps_min >= TARGET_FPS, "meets_latency_target": lat <= TARGET_LATENCY_MS,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring time per mode")
    ap.add_argument("--presses", type=int, default=24, help="key presses in world mode (each counts down and up)")
    ap.add_argument("--log", type=Path, help="keep the app's output here")
    ap.add_argument("--dtype", choices=CHOICES, default="auto", help="the app's compute dtype (model/runtime.py)")
    ap.add_argument("--threads", type=int, default=0, help="the app's torch threads (0: its default, the cores less one)")
    ap.add_argument("--recycle", choices=("auto", "latent", "pixels"), default="auto",
                    help="what the app's generators recycle (python -m app --recycle)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.seconds, a.presses, a.log, a.dtype, a.threads, a.recycle)
    print(json.dumps(r) if a.json else json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
