"""`python -m app` on a free port, driven with gradio_client through the plain API endpoints."""
import base64
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.__main__ import exposure_warning, parse_args
from bench.app import app_process, free_port

gradio_client = pytest.importorskip("gradio_client")


def _img(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def server(tiny_assets, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "app.log"
    with app_process(tiny_assets, free_port(), log=log) as url:
        yield url


def test_page_is_served(server):
    with urllib.request.urlopen(server, timeout=30) as r:
        assert r.status == 200 and b"AAPT Live" in r.read()


def test_world_session_steps_and_returns_frames(server):
    c = gradio_client.Client(server, verbose=False)
    models = c.predict(api_name="/models")["models"]
    assert {m["mode"] for m in models} == {"world", "avatar"}
    r = c.predict(mode="world", model="", seed=3, image="", api_name="/start")
    assert r["ok"] and r["mode"] == "world" and _img(r["frame"]).shape == (32, 32, 3)
    a = c.predict(control=json.dumps({"keys": "arrowright,w"}), steps=2, api_name="/step")
    assert a["ok"] and a["frame_index"] == 8 and len(a["frames"]) == 4
    frames = [_img(f) for f in a["frames"]]
    assert all(f.shape == (32, 32, 3) for f in frames)
    b = c.predict(control="", steps=1, api_name="/step")
    assert b["frame_index"] == 12 and not np.array_equal(_img(b["frames"][0]), frames[0])
    assert c.predict(api_name="/stop")["ok"]


def test_same_seed_and_controls_give_the_same_frames(server):
    outs = []
    for _ in range(2):
        c = gradio_client.Client(server, verbose=False)
        c.predict(mode="world", model="", seed=11, image="", api_name="/start")
        r = c.predict(control=json.dumps({"raw": [2, 0, 0, 0.1, 0, 0, 0]}), steps=3, api_name="/step")
        outs.append([_img(f) for f in r["frames"]])
        c.predict(api_name="/stop")
    assert all(np.array_equal(x, y) for x, y in zip(*outs))


def test_avatar_session_from_an_uploaded_image_and_landmarks(server):
    c = gradio_client.Client(server, verbose=False)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = c.predict(mode="avatar", model="", seed=0, image=url, api_name="/start")
    assert r["ok"] and r["mode"] == "avatar"
    lm = np.full((33, 4), 0.5).tolist()
    s = c.predict(control=json.dumps({"landmarks": lm}), steps=1, api_name="/step")
    assert s["ok"] and len(s["frames"]) == 4
    c.predict(api_name="/stop")


def test_bad_requests_get_messages_and_the_app_keeps_serving(server):
    c = gradio_client.Client(server, verbose=False)
    r = c.predict(control="", steps=1, api_name="/step")
    assert not r["ok"] and "start" in r["error"]
    r = c.predict(mode="world", model="", seed=0, image="data:image/png;base64,AAAA", api_name="/start")
    assert not r["ok"] and "image" in r["error"] and "/" not in r["error"].replace("/step", "")
    r = c.predict(mode="sideways", model="", seed=0, image="", api_name="/start")
    assert not r["ok"] and "mode" in r["error"]
    c.predict(mode="world", model="", seed=0, image="", api_name="/start")
    for bad in ("{", json.dumps({"raw": [1, 2, 3]}), json.dumps({"yaw": "fast"}),
                json.dumps({"raw": [float("inf")] * 7}).replace("Infinity", "1e999")):
        r = c.predict(control=bad, steps=1, api_name="/step")
        assert r["ok"] or "control" in r["error"]
    r = c.predict(control=json.dumps({"raw": [1e9, 0, 0, 0, 0, 0, 0]}), steps=1, api_name="/step")
    assert r["ok"] and "clamped" in r["notes"][0]                  # sanitised values are reported
    assert c.predict(api_name="/models")["models"]


def test_models_are_named_plainly_and_an_unknown_one_is_an_error(server):
    c = gradio_client.Client(server, verbose=False)
    names = {m["name"]: m["mode"] for m in c.predict(api_name="/models")["models"]}
    assert names == {"world-tiny": "world", "avatar-tiny": "avatar"}
    r = c.predict(mode="", model="avatar-tiny", seed=0, image="", api_name="/start")      # the name sets the mode
    assert r["ok"] and r["mode"] == "avatar" and r["model"].startswith("avatar-tiny")
    r = c.predict(mode="world", model="world-mix", seed=0, image="", api_name="/start")
    assert not r["ok"] and "world-mix" in r["error"] and "avatar-tiny, world-tiny" in r["error"]
    r = c.predict(mode="world", model="avatar-tiny", seed=0, image="", api_name="/start")
    assert not r["ok"] and "avatar model" in r["error"]
    c.predict(api_name="/stop")


def test_cli_defaults_are_safe():
    a = parse_args([])
    assert a.host == "127.0.0.1" and a.port == 7860 and not a.share and a.max_upload_mb == 20
    assert exposure_warning(a.host, a.share) is None
    a = parse_args(["--port", "9000", "--host", "0.0.0.0", "--share"])
    assert (a.host, a.port, a.share) == ("0.0.0.0", 9000, True)
    assert "0.0.0.0" in exposure_warning(a.host, False) and "gradio.live" in exposure_warning("127.0.0.1", True)
    for bad in (["--max-upload-mb", "0"], ["--fps", "nan"], ["--max-streams", "-1"], ["--idle-timeout", "inf"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def _listening(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (Linux /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        p = Path("/proc/net") / name
        if not p.exists():
            continue
        for line in p.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:            # 0A: LISTEN
                found.add(addr)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_the_server_listens_on_this_machine_only(server):
    port = int(server.rsplit(":", 1)[1])
    # 127.0.0.1 as /proc writes it (little-endian hex); never 0.0.0.0 (00000000) or :: (all zeros)
    assert _listening(port) == {"0100007F"}


def test_uploads_beyond_the_size_limit_are_refused_by_the_server(server):
    import uuid

    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    body = head + b"\0" * 21_000_000 + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(server + "/gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 413
    with urllib.request.urlopen(server, timeout=30) as r:            # and the app keeps serving
        assert r.status == 200


def test_building_the_page_writes_nothing_into_the_source_tree(tiny_assets):
    import app.ui as ui
    from app.examples import DEFAULT_DIR

    demo, manager, _ = ui.build(ui.AppConfig(assets=tiny_assets, examples=DEFAULT_DIR))
    manager.shutdown()
    assert not list(Path(ui.__file__).parent.glob("*.pyi"))
