"""End to end in a real browser: Debian chromium + Playwright, a fake webcam playing a real photo of a
person moving; avatar mode follows the webcam, world mode follows the keyboard."""
import base64
import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.app import CHROMIUM, browser_page, free_port, open_app, select_tab, start_stream, write_fake_webcam

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                                 reason="Debian chromium is not installed")]


@pytest.fixture(scope="module")
def live(tiny_assets):
    from app.examples import DEFAULT_DIR
    from app.ui import AppConfig, build

    demo, manager, kw = build(AppConfig(assets=tiny_assets, examples=DEFAULT_DIR))
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                **kw)
    try:
        yield f"http://127.0.0.1:{port}", manager
    finally:
        demo.close()
        manager.shutdown()


@pytest.fixture(scope="module")
def page(live, tmp_path_factory):
    cam = write_fake_webcam(tmp_path_factory.mktemp("cam") / "person.y4m", frames=72)
    with browser_page(cam) as pg:
        open_app(pg, live[0])
        yield pg


def _frame(pg) -> np.ndarray:
    src = pg.get_attribute("#aapt-out img", "src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def _session(manager):
    live = [s for s in manager.sessions.values() if s.state != "closed"]
    assert len(live) == 1
    return live[0]


def test_avatar_follows_the_webcam(page, live):
    _, manager = live
    select_tab(page, "Avatar")
    start_stream(page, 10)                       # Start also switches the webcam on and streams it
    s = _session(manager)
    frames, noses = [], []
    for _ in range(8):
        frames.append(_frame(page))
        noses.append(s.pose.current()[0, :2].copy())
        time.sleep(0.4)
    assert s.mode == "avatar" and s.state == "running"
    assert len(s.timings.pose_ms) > 5 and s.pose.detected                  # MediaPipe sees the person
    assert np.ptp(np.array(noses)[:, 0]) > 0.03                             # ... moving side to side
    # the webcam shows a close upper body (the astronaut's head and shoulders): retargeted, the
    # avatar keeps its own body, its legs standing where they were, its hips at their height
    cur, body = s.pose.current(), s.pose.body
    assert s.pose.retarget_mode == "relative"
    assert np.abs(cur[23:33, 1] - body[23:33, 1]).max() < 0.02
    assert all(f.shape == (32, 32, 3) for f in frames)
    assert len({f.tobytes() for f in frames}) >= 6                          # new frames keep coming
    assert page.get_attribute("#aapt-skeleton img", "src")                  # the skeleton preview is shown
    assert "fps" in page.inner_text("#aapt-hud") and "pose" in page.inner_text("#aapt-hud")
    page.click("#aapt-stop")
    page.wait_for_function("() => document.querySelector('#aapt-status').innerText.includes('Stopped')")
    assert s.state == "stopped" and manager.slots.in_use == 0


def test_recorded_motion_drives_without_webcam(page, live):
    _, manager = live
    select_tab(page, "Avatar")
    page.get_by_label("Recorded motion", exact=True).first.check()
    start_stream(page, 40)
    s = _session(manager)
    assert s.pose_source == "motion" and s.pose.status.startswith("playing")
    page.click("#aapt-stop")
    page.get_by_label("Webcam", exact=True).first.check()


def test_world_follows_the_keyboard(page, live):
    _, manager = live
    select_tab(page, "World")
    start_stream(page, 10)
    s = _session(manager)
    assert s.mode == "world"
    page.mouse.click(5, 5)
    yaw0 = s.engine.state.rig.state.yaw
    page.keyboard.down("ArrowRight")
    time.sleep(1.0)
    page.keyboard.up("ArrowRight")
    time.sleep(0.3)
    yaw1 = s.engine.state.rig.state.yaw
    pos1 = s.engine.state.rig.state.position.copy()
    page.keyboard.down("w")
    time.sleep(1.0)
    page.keyboard.up("w")
    time.sleep(0.5)
    turned = (yaw1 - yaw0) % 360
    assert 20 < turned < 180                                                  # about 4 deg/frame for 1 s
    assert np.linalg.norm(s.engine.state.rig.state.position - pos1) > 1.0     # walked forward
    lat = page.evaluate("window.aapt.allLatencies.slice()")
    assert len(lat) >= 3 and all(0 < x < 5000 for x in lat)                   # frames reflecting each key came back
    assert "key→frame" in page.inner_text("#aapt-client-hud")
    page.click("#aapt-stop")


def test_upload_shows_what_the_model_sees(page, tmp_path):
    select_tab(page, "World")
    p = tmp_path / "wide.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (100, 1, 3))).save(p)
    with page.expect_file_chooser() as fc:
        page.click("#aapt-upload")
    fc.value.set_files(str(p))
    page.wait_for_function("() => document.querySelector('#aapt-status').innerText.includes('your image')",
                           timeout=30_000)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with page.expect_file_chooser() as fc:
        page.click("#aapt-upload")
    fc.value.set_files(str(bad))
    page.wait_for_selector("text=/not an image|could not be read/", timeout=30_000)     # a toast, not a crash
    assert str(tmp_path) not in page.content()


def test_each_tab_has_its_own_stream_freed_when_it_closes(page, live):
    url, manager = live
    select_tab(page, "World")
    start_stream(page, 5)
    first = _session(manager)
    other = page.context.new_page()
    open_app(other, url)
    select_tab(other, "World")
    start_stream(other, 5)
    sessions = [s for s in manager.sessions.values() if s.state == "running"]
    assert len(sessions) == 2 and sessions[0].engine is not sessions[1].engine
    assert sessions[0].engine.cache is not sessions[1].engine.cache
    second = next(s for s in sessions if s is not first)
    other.close()                                            # the tab closes: its stream and engine are freed
    deadline = time.monotonic() + 60                         # Gradio's heartbeat connection drops at once
    while time.monotonic() < deadline and second.state != "closed":
        time.sleep(0.2)
    assert second.state == "closed" and second.engine is None, (second.state, second.message)
    assert first.state == "running" and manager.slots.in_use == 1 and manager.peek(second.id) is None
    page.click("#aapt-stop")
