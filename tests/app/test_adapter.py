"""Bad input gets a clear message and never a file-system path."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from app.adapter import (UserError, decode_data_url, describe, encode_png, load_image, parse_control,
                         parse_keys_message, scrub, to_seed)
from app.session import SessionError
from model.engine import ControlError


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(37, 91, 3), (400, 30, 3), (50, 50)])
def test_any_size_and_aspect_loads_as_rgb(shape, tmp_path):
    a = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    p = tmp_path / "x.png"
    p.write_bytes(_png(a))
    out = load_image(p)
    assert out.shape == shape[:2] + (3,) and out.dtype == np.uint8


def test_rgba_palette_and_16bit_images_load(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    assert load_image(_png(rgba)).shape == (20, 20, 3)                      # transparent -> white
    assert load_image(_png(rgba)).min() == 255
    im = Image.fromarray(np.zeros((20, 20, 3), np.uint8)).convert("P")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert load_image(buf.getvalue()).shape == (20, 20, 3)
    i16 = Image.fromarray((np.arange(400).reshape(20, 20) * 100).astype(np.uint16))
    buf = io.BytesIO()
    i16.save(buf, format="PNG")
    assert load_image(buf.getvalue()).shape == (20, 20, 3)


@pytest.mark.parametrize("data", [b"", b"not an image at all", _png(np.zeros((32, 32, 3), np.uint8))[:60],
                                  b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, b"GIF89a" + b"\xff" * 50],
                         ids=["empty", "text", "truncated", "bad-png", "bad-gif"])
def test_corrupt_files_are_clear_errors(data, tmp_path):
    p = tmp_path / "secret_dir" / "upload.png"
    p.parent.mkdir()
    p.write_bytes(data)
    with pytest.raises(UserError) as e:
        load_image(p)
    assert "secret_dir" not in str(e.value) and str(tmp_path) not in str(e.value)


def test_decompression_bombs_and_huge_files_are_refused(tmp_path):
    big = Image.new("L", (10_000, 10_000))                  # 100 MP, compresses to almost nothing
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    with pytest.raises(UserError, match="too"):
        load_image(buf.getvalue())
    p = tmp_path / "big.bin"
    p.write_bytes(b"\0" * 2_000_000)
    with pytest.raises(UserError, match="MB"):
        load_image(p, max_mb=1)


def test_tiny_images_are_refused():
    with pytest.raises(UserError, match="small"):
        load_image(_png(np.zeros((3, 3, 3), np.uint8)))


def test_data_url_round_trip():
    a = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    assert np.array_equal(decode_data_url(encode_png(a)), a)
    with pytest.raises(UserError):
        decode_data_url("data:image/png;base64,@@@@")


def test_messages_never_leak_paths():
    e = FileNotFoundError(2, "No such file", "/work/main/assets/world/generator/model.safetensors")
    msg = describe(e)
    assert "/work" not in msg and "assets/world" not in msg
    assert "/tmp/x/y" not in scrub("cannot read /tmp/x/y/z.png or C:\\Users\\me\\a.png")
    assert "z.png" in scrub("cannot read /tmp/x/y/z.png")
    assert describe(UserError("Upload a PNG.")) == "Upload a PNG."
    assert "stop it first" in describe(SessionError("stop it first"))
    assert "control" in describe(ControlError("shape (7,)"))
    assert "Something went wrong (KeyError)" in describe(KeyError("/etc/passwd"))


@pytest.mark.parametrize("value,expect", [(5, 5), (3.7, 4), ("12", 12), (float("nan"), 0), (float("inf"), 0),
                                          (-4, 0), (1e30, 2 ** 31 - 1), (None, 0), ("x", 0)])
def test_seeds_are_sanitised(value, expect):
    assert to_seed(value) == expect


def test_keys_messages():
    assert parse_keys_message("17|w,arrowleft") == (17, "w,arrowleft")
    assert parse_keys_message("junk") == (None, "junk")
    assert parse_keys_message(None) == (None, "")
    assert parse_keys_message("-3|w")[0] is None


def test_api_controls_are_parsed_and_sanitised():
    raw, st = parse_control(json.dumps({"keys": "w", "yaw": 2}), "world")
    assert raw is None and st == {"keys": "w", "sliders": {"yaw": 2}}
    raw, _ = parse_control(json.dumps({"raw": [1e9, float("nan"), 0, 0, 0, 0, 0]}).replace("NaN", "NaN"), "world")
    assert raw.shape == (7,) and raw[0] == 4.0 and raw[1] == 0.0
    raw, _ = parse_control(json.dumps({"landmarks": np.full((33, 4), 0.5).tolist()}), "avatar")
    assert raw.shape == (33, 4)
    assert parse_control("", "world") == (None, {})
    for bad in ("{", "[1, 2]", '"text"', json.dumps({"raw": [[1, 2]]}), json.dumps({"landmarks": [[1]]})):
        with pytest.raises(UserError):
            parse_control(bad, "world" if "landmarks" not in bad else "avatar")
