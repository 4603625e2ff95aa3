"""bench.app's pieces: the fake webcam clip, the readout parser, the CPU meter, the model folders."""
import os

import numpy as np
import torch

from app.manager import SessionManager
from app.models import ModelStore, discover
from bench.app import CpuMeter, _HUD, save_random_model, server_readout, write_fake_webcam


def test_fake_webcam_is_a_valid_y4m_of_a_moving_person(tmp_path):
    p = write_fake_webcam(tmp_path / "cam.y4m", frames=6, width=64, height=48)
    raw = p.read_bytes()
    header, _, body = raw.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 W64 H48 F24:1") and b"C420jpeg" in header
    frame = 6 + 64 * 48 * 3 // 2                              # "FRAME\n" + Y + U + V
    assert len(body) == 6 * frame and body[:6] == b"FRAME\n"
    ys = [np.frombuffer(body[i * frame + 6:i * frame + 6 + 64 * 48], np.uint8) for i in range(6)]
    assert not np.array_equal(ys[0], ys[2])                    # it moves


class _Page:
    def __init__(self, text):
        self.text = text

    def inner_text(self, _):
        return self.text


def test_readout_parser_reads_what_the_session_writes():
    manager = SessionManager(ModelStore([]), {}, {})
    try:
        s = manager.get("tab")
        s.mode, s.tracker.shape = "avatar", (240, 320)
        t = s.timings
        for i, x in enumerate((10.0, 20.0, 30.0)):
            t.step_ms.append(x)
            t.dit_ms.append(x / 2)
            t.decode_ms.append(x / 3)
            t.pose_ms.append(7.0)
            t.latency_ms.append(150.0)
        for k in range(25):
            t.shown.append(100.0 + k / 24)
            t.made.append(100.0 + k / 25)
        r = server_readout(_Page(s.readout(now=101.0)))
    finally:
        manager.shutdown()
    dtype, capability = manager.store.precision.split(" on ")
    assert r == {"server_fps_shown": 24.0, "server_fps_made": 25.0, "step_ms": 20, "dit_ms": 10, "decode_ms": 7,
                 "pose_ms": 7, "input_to_frame_ms_server": 150, "dtype": dtype, "cpu_capability": capability}
    assert set(r) == set(_HUD) | {"dtype", "cpu_capability"}
    assert dtype in ("float32", "bfloat16") and capability == torch.backends.cpu.get_cpu_capability()


def test_cpu_meter_splits_usage():
    m = CpuMeter(os.getpid())
    m.start()
    sum(i * i for i in range(2_000_000))
    u = m.stop()
    assert u["app_cores"] > 0.1 and set(u) == {"app_cores", "browser_cores", "other_cores"}


def test_random_models_are_discoverable(tmp_path):
    save_random_model(tmp_path / "w", "camera")
    save_random_model(tmp_path / "a", "pose")
    assert {(m.name, m.mode, m.resolution) for m in discover(tmp_path)} == {("w", "world", 32), ("a", "avatar", 32)}
