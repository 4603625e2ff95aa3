"""Bad input, one table: every kind goes through the adapter and session calls the page and the API
make, and gets a clear message (or is used after sanitising, saying so where a client can see it);
no message holds a file-system path; and the session, the app's other sessions included, keeps
serving afterwards. Then hypothesis fuzzes the control path (API controls, page sliders and keys,
webcam frames) into a running engine.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

from app.adapter import (MAX_UPLOAD_MB, UserError, decode_data_url, guard, load_upload, parse_control,
                         parse_keys_message, step_session)
from app.models import ModelStore, discover
from controls.camera_input import AXES, LIMITS
from controls.landmarks import neutral_pose

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


# ----------------------------------------------------------------------------- inputs
def _enc(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rgb(w: int = 40, h: int = 30, color=(200, 50, 0)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def _png_header_only(w: int, h: int) -> bytes:
    """A valid PNG that claims w x h pixels and holds almost no data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _gray16(value_fn) -> bytes:
    a = value_fn(np.indices((30, 40))).astype(np.uint16)
    return _enc(Image.fromarray(a))


def _rgb16() -> bytes:
    import cv2

    a = np.empty((30, 40, 3), np.uint16)
    a[:] = (0xC000, 0x8000, 0x4000)                       # BGR for OpenCV: RGB 64, 128, 192 in 8 bits
    return cv2.imencode(".png", a)[1].tobytes()


def _gif() -> bytes:
    frames = [_rgb(color=c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return _enc(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _cmyk_jpeg() -> bytes:
    return _enc(_rgb(color=(200, 50, 0)).convert("CMYK"), "JPEG", quality=95)


def _exif_rotated() -> bytes:
    """Stored 40 wide and 20 high, red left half, blue right; EXIF orientation 6 (turn 90° clockwise)."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    a[:, 20:] = (0, 0, 255)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    return _enc(im, "JPEG", exif=exif.tobytes(), quality=95)


def _palette_transparent() -> bytes:
    im = Image.new("P", (40, 30), 0)
    im.putpalette([10, 20, 30] * 256)
    return _enc(im, "PNG", transparency=0)


def _float_tiff() -> bytes:
    return _enc(Image.fromarray(np.full((30, 40), 0.5, np.float32)), "TIFF")


# ----------------------------------------------------------------------------- the table
@dataclass
class Ctx:
    """What a case can reach: the app's session manager, the tab's session, a scratch folder."""
    manager: object
    session: object
    tmp: Path


@dataclass
class Case:
    mode: str                                   # world | avatar
    feed: Callable[[Ctx], tuple[str, object]]   # the call the page or API makes -> (text shown, value)
    refused: str | None = None                  # the message must match this (None: the input is used)
    note: str | None = None                     # a used input's text must match this (a note, a readout)
    check: Callable[[object], None] | None = None
    models: Callable[[Path, Path], None] | None = None   # break a model copy: (good model dir, broken dir)


def upload(data: bytes | Callable[[], bytes], name: str = "photo.png", check=None, refused=None,
           sparse_mb: float | None = None) -> Case:
    """The upload button: a file in gradio's upload folder -> load_upload -> the first frame."""
    def feed(ctx: Ctx):
        p = ctx.tmp / "gradio" / "3f2a9c" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if sparse_mb is not None:
            with open(p, "wb") as f:
                f.truncate(int(sparse_mb * 1e6))            # a huge file without writing it
        else:
            p.write_bytes(data() if callable(data) else data)
        img = load_upload(str(p))
        ctx.session.set_first_frame(ctx.session.mode, img)
        return "", img
    return Case("world", feed, refused, check=check)


def vanished(ctx: Ctx):
    """The upload's temporary file is gone before the handler reads it."""
    return "", load_upload(str(ctx.tmp / "gradio" / "gone" / "photo.png"))


def no_file(ctx: Ctx):
    return "", load_upload(None)


def data_url(url: str | Callable[[], str]) -> Callable[[Ctx], tuple[str, object]]:
    """The API's /start image: a base64 data URL."""
    def feed(ctx: Ctx):
        img = decode_data_url(url() if callable(url) else url)
        return "", ctx.session.api_start(0, img)
    return feed


def webcam(frame_fn: Callable[[], object]) -> Callable[[Ctx], tuple[str, object]]:
    """One frame of the webcam stream (gr.Image streaming) -> Session.webcam_frame; the readout says what happened."""
    def feed(ctx: Ctx):
        s = ctx.session
        s.set_pose_source("webcam", None)
        preview = s.webcam_frame(frame_fn())
        return s.readout(), preview
    return feed


def slider(axis: str, value: object, expect: float) -> Case:
    """A slider's .change event -> Session.set_slider; the value used is finite and in range."""
    def feed(ctx: Ctx):
        return "", ctx.session.set_slider(axis, value)

    def check(v):
        assert v == pytest.approx(expect)
    return Case("world", feed, check=check)


def keys(message: object) -> Case:
    """The page's key state message -> parse_keys_message -> Session.set_keys."""
    def feed(ctx: Ctx):
        seq, held = parse_keys_message(message)
        ctx.session.set_keys(held, seq)
        return "", ctx.session.camera.keys
    return Case("world", feed, check=lambda held: held == frozenset())


def api(control: str, mode: str = "world", refused: str | None = None, note: str | None = None, check=None) -> Case:
    """The API's /step with this control (JSON text)."""
    def feed(ctx: Ctx):
        r = step_session(ctx.session, control, 1)
        assert r["ok"] and len(r["frames"]) == 4
        return "; ".join(r.get("notes", [])), parse_control(control, mode)[0]
    return Case(mode, feed, refused, note, check)


def broken_model(breaker: Callable[[Path, Path], None], refused: str) -> Case:
    """Start a model whose folder was damaged (another installed model still works)."""
    def feed(ctx: Ctx):
        s = ctx.session
        s.model_label = next(m.label for m in ctx.manager.store.models.values() if m.name == "broken")
        return "", s.api_start(0, None)
    return Case("world", feed, refused, models=breaker)


def _drop(name: str):
    def breaker(good: Path, bad: Path):
        (bad / "generator" / name).unlink()
    return breaker


def _truncate(good: Path, bad: Path):
    w = bad / "generator" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _pickle(good: Path, bad: Path):
    import pickle

    (bad / "generator" / "model.safetensors").write_bytes(pickle.dumps({"blocks.0.weight": [1.0, 2.0]}))


def _set_config(part: str, **values):
    def breaker(good: Path, bad: Path):
        p = bad / part / "config.json"
        cfg = json.loads(p.read_text())
        cfg.update(values)
        p.write_text(json.dumps(cfg))
    return breaker


def _other_autoencoder(good: Path, bad: Path):
    """A generator paired with an autoencoder whose latents have another channel count."""
    from model.autoencoder import PRESETS, VideoAutoencoder
    from model.config import replace

    shutil.rmtree(bad / "autoencoder")
    VideoAutoencoder(replace(PRESETS["tiny"], latent_channels=4)).save_pretrained(bad / "autoencoder")


def _is_red_top(img):
    assert img.shape == (40, 20, 3)                        # turned upright: 20 wide, 40 high
    assert img[:15, :, 0].mean() > 200 and img[25:, :, 2].mean() > 200


def _near(color, tol=12):
    def check(img):
        assert np.abs(img.reshape(-1, 3).mean(0) - color).max() <= tol, img.reshape(-1, 3).mean(0)
    return check


LM_INVISIBLE = np.concatenate([neutral_pose()[:, :3], np.zeros((33, 1), np.float32)], 1).tolist()
PNG = _enc(_rgb())
CASES: dict[str, Case] = {
    # ---- uploads (the first frame)
    "corrupt-png": upload(b"\x89PNG\r\n\x1a\n" + b"\x13" * 200, refused=r"not an image|could not be read"),
    "truncated-png": upload(lambda: _enc(Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8)))[:400], refused=r"could not be read .*damaged or truncated"),
    "truncated-jpeg": upload(lambda: _enc(_rgb(64, 64), "JPEG")[:300], name="photo.jpg",
                             refused=r"could not be read|not an image"),
    "broken-gif": upload(b"GIF89a" + b"\xff" * 50, name="anim.gif", refused=r"not an image|could not be read"),
    "text-renamed-png": upload(b"name,score\nada,3\n" * 20, refused=r"not an image the app can read"),
    "pdf-renamed-png": upload(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", refused=r"not an image"),
    "empty-file": upload(b"", refused=r"file is empty"),
    "10000x10000": upload(lambda: _enc(Image.new("L", (10_000, 10_000))), refused=r"too many pixels \(10000×10000\)"),
    "pixel-bomb-header": upload(_png_header_only(100_000, 100_000), refused=r"too many pixels"),
    "1x1": upload(lambda: _enc(_rgb(1, 1)), refused=r"too small \(1×1\)"),
    "beyond-size-limit": upload(b"", sparse_mb=MAX_UPLOAD_MB + 0.5, refused=r"larger than 20 MB"),
    "upload-vanished": Case("world", vanished, refused=r"could not be read"),
    "no-file": Case("world", no_file, refused=r"No image was given"),
    "grayscale": upload(lambda: _enc(Image.new("L", (40, 30), 90)),
                        check=lambda img: np.testing.assert_array_equal(img, np.full((30, 40, 3), 90))),
    "rgba-transparent": upload(lambda: _enc(Image.new("RGBA", (40, 30), (0, 0, 0, 0))),
                               check=lambda img: np.testing.assert_array_equal(img, 255)),
    "palette-transparent": upload(_palette_transparent, check=lambda img: np.testing.assert_array_equal(img, 255)),
    "16-bit-gray-png": upload(lambda: _gray16(lambda ij: ij[1] * 65535 // 39),
                              check=lambda img: (np.testing.assert_array_equal(img[0, [0, -1], 0], [0, 255]),
                                                 np.testing.assert_allclose(img[0, 20, 0], 131, atol=1))),
    "16-bit-rgb-png": upload(_rgb16, check=_near((64, 128, 192), 1)),
    "float-tiff": upload(_float_tiff, name="scan.tiff", check=_near((128, 128, 128), 1)),
    "animated-gif": upload(_gif, name="anim.gif", check=_near((255, 0, 0))),
    "cmyk-jpeg": upload(_cmyk_jpeg, name="print.jpg", check=_near((200, 50, 0))),
    "exif-rotated-photo": upload(_exif_rotated, name="phone.jpg", check=_is_red_top),
    "api-image-not-base64": Case("world", data_url("data:image/png;base64,@@@@"), refused=r"not an image|base64"),
    "api-image-too-large": Case("world", data_url(lambda: "data:image/png;base64," + "A" * int(MAX_UPLOAD_MB * 1.5e6)),
                                refused=r"larger than 20 MB"),
    # ---- webcam frames (avatar mode)
    "webcam-none": Case("avatar", webcam(lambda: None), note=r"webcam: no frame arrived"),
    "webcam-0x0": Case("avatar", webcam(lambda: np.zeros((0, 0, 3), np.uint8)), note=r"webcam: .*too small"),
    "webcam-1x1": Case("avatar", webcam(lambda: np.zeros((1, 1, 3), np.uint8)), note=r"webcam: the frame \(1×1\) is too small"),
    "webcam-7-channels": Case("avatar", webcam(lambda: np.zeros((240, 320, 7), np.uint8)),
                              note=r"webcam: the frame has an unusable layout"),
    "webcam-odd-size": Case("avatar", webcam(lambda: np.zeros((241, 321, 3), np.uint8)),
                            check=lambda p: p.shape[0] <= 240 and p.shape[1] <= 480 and p.dtype == np.uint8),
    "webcam-huge": Case("avatar", webcam(lambda: np.zeros((2000, 3000, 3), np.uint8)),
                        check=lambda p: p.shape[0] <= 240 and p.shape[1] <= 480),
    "webcam-gray": Case("avatar", webcam(lambda: np.zeros((240, 320), np.uint8)), check=lambda p: p.ndim == 3),
    "webcam-rgba": Case("avatar", webcam(lambda: np.zeros((240, 320, 4), np.uint8)), check=lambda p: p.ndim == 3),
    "webcam-nan-float": Case("avatar", webcam(lambda: np.full((240, 320, 3), np.nan, np.float32)),
                             check=lambda p: p.dtype == np.uint8),
    # ---- page controls (world mode)
    "slider-nan": slider("yaw", float("nan"), 0.0),
    "slider-inf": slider("pitch", float("-inf"), 0.0),
    "slider-out-of-range": slider("forward", 1e9, float(LIMITS[AXES.index("forward")])),
    "slider-junk": slider("roll", "fast", 0.0),
    "keys-junk": keys("<script>alert(1)</script>|;;,,"),
    # ---- API controls
    "api-control-not-json": api("{yaw: 2", refused=r"control must be JSON"),
    "api-control-deep-json": api("[" * 100_000 + "]" * 100_000, refused=r"control must be JSON"),
    "api-control-wrong-shape": api(json.dumps({"raw": [1, 2, 3]}), refused=r"raw camera control must be 7 numbers"),
    "api-control-nan-inf": api(json.dumps({"raw": [float("nan"), float("inf"), 0, 0, 0, 0, 0]}),
                               note=r"NaN or infinite values were replaced by 0",
                               check=lambda raw: np.testing.assert_array_equal(raw, 0)),
    "api-control-out-of-range": api(json.dumps({"raw": [1e9, -1e9, 0, 0, 0, 0, 0], "yaw": 99}),
                                    note=r"clamped", check=lambda raw: np.testing.assert_array_equal(raw[:2], LIMITS[:2] * [1, -1])),
    "api-control-unknown-field": api(json.dumps({"jump": True, "keys": "w"}), note=r"ignored unknown control fields \['jump'\]"),
    # nobody in view: passed on invisible (the session holds the avatar's pose, then relaxes it)
    "pose-all-invisible": api(json.dumps({"landmarks": LM_INVISIBLE}), "avatar", note=r"no landmark is visible",
                              check=lambda raw: np.testing.assert_array_equal(raw[:, 3], 0)),
    "pose-nan-landmarks": api(json.dumps({"landmarks": [[float("nan")] * 4] * 33}), "avatar",
                              note=r"treated as invisible.*|no landmark is visible"),
    "pose-wrong-shape": api(json.dumps({"landmarks": [[0.5, 0.5]] * 10}), "avatar",
                            refused=r"landmarks must be 33 rows of \[x, y, z, visibility\]"),
    # ---- model folders
    "model-missing-weights": broken_model(_drop("model.safetensors"),
                                          r"'broken' could not be loaded: model 'generator': missing model\.safetensors"),
    "model-truncated-safetensors": broken_model(_truncate, r"unreadable model\.safetensors \(damaged, truncated"),
    "model-pickle-as-safetensors": broken_model(_pickle, r"unreadable model\.safetensors"),
    "model-config-mismatch": broken_model(_set_config("generator", dim=48),
                                          r"config\.json says dim=48 but the weights were saved with dim=32"),
    "model-config-unknown-key": broken_model(_set_config("generator", colour="blue"), r"bad config\.json.*unknown keys"),
    "model-parts-mismatch": broken_model(_other_autoencoder, r"autoencoder makes 4-channel latents, its generator expects 8"),
}


def _assert_clear(text: str, tmp: Path) -> None:
    """Readable, short, and free of file-system paths and tracebacks."""
    assert text and len(text) < 400, text
    assert "Traceback" not in text and "Something went wrong" not in text, text
    assert str(tmp) not in text and "/tmp" not in text and "gradio" not in text and "3f2a9c" not in text, text
    assert not re.search(r"(?:[A-Za-z]:)?[\\/][\w.-]+[\\/]", text), text


def _assert_serving(ctx: Ctx, case: Case) -> None:
    """The session restarts and steps, and another tab of the app starts and steps too."""
    good = next(m for m in ctx.manager.store.for_mode(case.mode) if m.name != "broken")
    for s in (ctx.session, ctx.manager.get("another-tab")):
        s.mode, s.model_label = case.mode, good.label
        s.api_start(1, None)
        frames, info = s.api_step(None, 1)
        assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8 and info["frame_index"] == 4
        ctx.manager.close(s.id)


def test_the_table_names_at_least_20_kinds():
    assert len(CASES) >= 20


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input(kind, make_manager, tiny_assets, tmp_path):
    case = CASES[kind]
    m = make_manager(max_streams=2)
    if case.models is not None:
        root = tmp_path / "assets"
        for name in ("good", "broken"):
            shutil.copytree(tiny_assets / "world-tiny", root / name)
        case.models(root / "good", root / "broken")
        m.store = ModelStore(discover(root))
    s = m.get("tab")
    s.mode = case.mode
    s.model_label = next(x for x in m.store.for_mode(case.mode) if x.name != "broken").label
    s.api_start(0, None)                                 # a running session, holding a slot
    ctx = Ctx(m, s, tmp_path)
    handler = guard(lambda: case.feed(ctx))              # what every page handler is wrapped in
    try:
        text, value = handler()
        message = None
    except gr.Error as e:
        message = e.message
    if case.refused is not None:
        assert message is not None, f"{kind} was accepted"
        assert re.search(case.refused, message), message
        _assert_clear(message, tmp_path)
    else:
        assert message is None, message
        if case.note is not None:
            assert re.search(case.note, text), text
            _assert_clear(text, tmp_path)
        if case.check is not None:
            assert case.check(value) is not False
    assert m.slots.in_use <= 1                            # a failure gave back what it took
    _assert_serving(ctx, case)


# ----------------------------------------------------------------------------- fuzzing the control path
_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30))
_json = st.recursive(st.none() | st.booleans() | _numbers | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                     max_leaves=30)
_row7 = st.lists(_numbers, min_size=7, max_size=7)
_lm = st.lists(st.lists(_numbers, min_size=4, max_size=4), min_size=33, max_size=33)
_controls = st.one_of(
    _json.map(json.dumps),
    st.text(max_size=40),
    st.fixed_dictionaries({}, optional={"keys": st.text(max_size=20) | _json, "raw": _row7 | st.lists(_row7, min_size=4,
                          max_size=4) | _json, **{a: _numbers | _json for a in AXES}}).map(json.dumps),
    st.fixed_dictionaries({}, optional={"landmarks": _lm | _json, "raw": st.lists(_lm, min_size=4, max_size=4)
                          | _json}).map(json.dumps),
)


def test_fuzz_api_controls_into_running_engines(make_manager):
    m = make_manager(max_streams=2)
    sessions = {}
    for mode in ("world", "avatar"):
        s = sessions[mode] = m.get(mode)
        s.mode = mode
        s.api_start(0, None)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mode=st.sampled_from(["world", "avatar"]), control=_controls)
    def check(mode, control):
        s = sessions[mode]
        try:
            raw, _ = parse_control(control, mode)
            r = step_session(s, control, 1)
        except UserError as e:
            assert str(e).startswith("control"), str(e)
            return
        assert r["ok"] and len(r["frames"]) == 4
        if raw is not None:
            assert np.isfinite(raw).all()
            if mode == "world":
                assert (np.abs(raw) <= LIMITS).all()
            else:
                assert (raw[..., 3] >= 0).all() and (raw[..., 3] <= 1).all()
        assert np.isfinite(s.camera.target()).all()

    check()


def test_fuzz_page_controls_into_a_running_engine(make_manager):
    s = make_manager().get("tab")
    s.mode = "world"
    s.api_start(0, None)
    event = st.one_of(st.tuples(st.just("slider"), st.sampled_from(AXES), st.one_of(_numbers, st.text(max_size=5),
                                                                                      st.none())),
                      st.tuples(st.just("keys"), st.text(max_size=40) | st.none()))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(event, max_size=8))
    def check(events):
        for kind, *args in events:
            if kind == "slider":
                v = s.set_slider(args[0], args[1])
                assert np.isfinite(v) and abs(v) <= LIMITS[AXES.index(args[0])]
            else:
                seq, held = parse_keys_message(args[0])
                s.set_keys(held, seq)
        frames, _ = s.api_step(None, 1)
        assert frames.shape == (4, 32, 32, 3)
        c = s.camera.next_frames(4)
        assert np.isfinite(c).all() and (np.abs(c) <= LIMITS + 1e-6).all()

    check()


def test_fuzz_webcam_frames(make_manager):
    s = make_manager().get("tab")
    s.mode = "avatar"
    s.api_start(0, None)
    s.set_pose_source("webcam", None)
    frames = st.none() | arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
                                array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=48))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames)
    def check(frame):
        preview = s.webcam_frame(frame)
        assert preview is None or (preview.ndim == 3 and preview.shape[2] == 3 and preview.dtype == np.uint8)
        assert np.isfinite(s.pose.next_frames(4, 0.0)).all()
        out, _ = s.api_step(None, 1)
        assert out.shape == (4, 32, 32, 3)

    check()
