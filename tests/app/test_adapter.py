"""The adapter: images of any size and aspect, data URLs, values, and messages without file-system
paths (every kind of bad input is in the table of test_bad_input.py)."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from app.adapter import (UserError, decode_data_url, describe, encode_png, load_image, parse_control,
                         parse_keys_message, scrub, to_seed)
from app.session import SessionError
from model.engine import ControlError
from model.io import ModelFileError


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


def test_data_url_round_trip():
    a = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    assert np.array_equal(decode_data_url(encode_png(a)), a)
    url = encode_png(a)
    assert np.array_equal(decode_data_url(url[:40] + "\n" + url[40:]), a)      # line breaks in base64 are fine


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
    msg = describe(ModelFileError("model 'generator': missing model.safetensors"))
    assert msg == "A model could not be loaded: model 'generator': missing model.safetensors"


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
    for bad in ("[1, 2]", '"text"', json.dumps({"raw": [[1, 2]]})):     # more in test_bad_input.py
        with pytest.raises(UserError, match="control"):
            parse_control(bad, "world")
