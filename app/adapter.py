"""The thin adapter between UI values and the session: safe image loading, value parsing, and errors
turned into messages a user can read (never a traceback or a file-system path).

``guard`` wraps every event handler: a handled problem becomes ``gr.Error`` with a clear message,
the traceback goes to the server log, and the app keeps serving.
"""
from __future__ import annotations

import base64
import functools
import inspect
import io
import json
import logging
import math
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.models import ModelLoadError
from app.session import Session, SessionError
from controls.camera import CONTROL_DIM
from controls.camera_input import AXES, LIMITS
from controls.landmarks import anyone_visible, sanitize
from controls.pose import NUM_LANDMARKS
from model.engine import ControlError
from model.io import ModelFileError

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 20.0
MAX_PIXELS = 40_000_000          # larger images are refused before decoding (decompression bombs included)
MIN_SIDE = 8                     # smaller images hold no picture worth starting from
MAX_SEED = 2 ** 31 - 1

# load_image checks the pixel count itself before decoding; PIL's own warning would only repeat it
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# absolute or relative multi-part paths, Windows drives, file:// URLs
_PATH = re.compile(r"(?:file://)?(?:[A-Za-z]:)?(?:~|\.{1,2})?(?:[\\/][^\s\\/'\":,;()\[\]{}]+){2,}[\\/]?")


class UserError(ValueError):
    """Bad input from the user; the message says what to do."""


def scrub(text: str) -> str:
    """The message with file-system paths replaced by their last part."""
    return _PATH.sub(lambda m: "'" + re.split(r"[\\/]", m.group(0).rstrip("\\/"))[-1] + "'", str(text))


def describe(e: BaseException) -> str:
    """A short message for the page."""
    if isinstance(e, (UserError, SessionError)):
        msg = str(e)
    elif isinstance(e, ControlError):
        msg = f"That control does not fit the running model: {e}"
    elif isinstance(e, ModelLoadError):
        msg = f"{e} Pick another model, or reinstall this one."
    elif isinstance(e, ModelFileError):
        msg = f"A model could not be loaded: {e}"
    elif isinstance(e, (UnidentifiedImageError, Image.DecompressionBombError)):
        msg = "That file is not an image the app can read."
    elif isinstance(e, MemoryError):
        msg = "The server ran out of memory for this request; try a smaller image or fewer streams."
    else:
        msg = f"Something went wrong ({type(e).__name__}). The app is still running: try again or press Reset."
    return scrub(msg)


def guard(fn):
    """Wrap a Gradio handler (function or generator): errors -> gr.Error with a readable message."""
    import gradio as gr

    def fail(e: BaseException):
        if isinstance(e, gr.Error):
            raise e
        if not isinstance(e, (UserError, SessionError)):
            log.exception("handler %s failed", fn.__name__)
        raise gr.Error(describe(e), print_exception=False) from None

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*a, **k):
            try:
                yield from fn(*a, **k)
            except GeneratorExit:
                raise
            except Exception as e:  # noqa: BLE001
                fail(e)
        return gen

    @functools.wraps(fn)
    def call(*a, **k):
        try:
            return fn(*a, **k)
        except Exception as e:  # noqa: BLE001
            fail(e)
    return call


# ----------------------------------------------------------------------------- values
def to_seed(value: object) -> int:
    """Any number-ish value -> a valid seed (NaN, inf, junk -> 0; clamped to 0 .. 2^31-1)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(v):
        return 0
    return int(min(max(round(v), 0), MAX_SEED))


def _to_8bit(im: Image.Image) -> Image.Image:
    """Single-channel images deeper than 8 bits (16-bit PNG, 32-bit int or float TIFF) -> 'L' with
    their range kept: PIL's own conversion clips at 255, which turns a 16-bit photo white."""
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        a = a.astype(np.float64) / 257.0
    else:
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        hi = float(a.max()) if a.size else 0.0
        if im.mode == "F" and hi <= 1.0:
            a = a * 255.0
        elif hi > 255.0:
            a = a * (255.0 / (65535.0 if hi <= 65535.0 else hi))
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def load_image(source: str | Path | bytes | None, max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """An uploaded file (path or bytes) -> (H, W, 3) uint8 RGB; any problem -> UserError.

    Accepted and converted: any size or aspect from 8 pixels a side up to MAX_PIXELS, grayscale,
    palette, transparency (on white), 16-bit, CMYK, EXIF-rotated photos (turned upright), animated
    images (the first frame). Refused with a message: files over ``max_mb``, non-images, damaged or
    truncated files, too many or too few pixels."""
    if source is None:
        raise UserError("No image was given.")
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            p = Path(source)
            if p.stat().st_size > max_mb * 1e6:
                raise UserError(f"That image is larger than {max_mb:g} MB; please upload a smaller one.")
            data = p.read_bytes()
        if len(data) > max_mb * 1e6:
            raise UserError(f"That image is larger than {max_mb:g} MB; please upload a smaller one.")
        if not data:
            raise UserError("That file is empty; please upload a PNG or JPEG image.")
        im = Image.open(io.BytesIO(data))          # reads the header only: the size is known before decoding
        if im.width * im.height > MAX_PIXELS:
            raise UserError(f"That image has too many pixels ({im.width}×{im.height}); please upload one "
                            f"under {MAX_PIXELS / 1e6:g} megapixels.")
        im.load()                                  # the first frame of an animation
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception:  # noqa: BLE001 - a damaged EXIF block: keep the picture as stored
            log.info("ignoring unreadable EXIF orientation")
        if im.mode in ("I", "F") or im.mode.startswith("I;16"):
            im = _to_8bit(im)
        if im.mode in ("RGBA", "LA", "P", "PA", "RGBa", "La"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        a = np.asarray(im.convert("RGB"))
    except UserError:
        raise
    except Image.DecompressionBombError as e:
        raise UserError(f"That image has too many pixels; please upload one under {MAX_PIXELS / 1e6:g} "
                        "megapixels.") from e
    except UnidentifiedImageError as e:
        raise UserError("That file is not an image the app can read; try a PNG or JPEG photo.") from e
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        raise UserError("That image could not be read (the file may be damaged or truncated); "
                        "try another one.") from e
    if a.ndim != 3 or min(a.shape[:2]) < MIN_SIDE:
        raise UserError(f"That image is too small ({a.shape[1]}×{a.shape[0]}); it needs at least {MIN_SIDE} "
                        "pixels on each side.")
    return np.array(a)                             # writable and contiguous


def load_upload(file: object, max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """What the upload button hands over (a path, or a file object with ``.name``) -> RGB image."""
    path = file if isinstance(file, (str, Path)) else getattr(file, "name", None)
    if not path:
        raise UserError("No image was given.")
    return load_image(path, max_mb)


def decode_data_url(s: str, max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """'data:image/...;base64,...' or bare base64 -> image (for the API)."""
    b64 = s.split(",", 1)[1] if s.startswith("data:") else s
    if len(b64) > max_mb * 1.4e6:
        raise UserError(f"That image is larger than {max_mb:g} MB.")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", b64), validate=True)
    except (ValueError, TypeError) as e:
        raise UserError("The image is not valid base64 (expected a data URL like data:image/png;base64,...).") from e
    return load_image(data, max_mb)


def jpeg_data_url(img: np.ndarray, quality: int = 90) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def encode_png(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def parse_keys_message(msg: object) -> tuple[int | None, str]:
    """'17|w,arrowleft' (sequence number | keys held) -> (17, 'w,arrowleft')."""
    text = str(msg or "")[:200]
    seq, _, keys = text.partition("|")
    try:
        n = int(seq)
    except ValueError:
        return None, text
    return (n if 0 <= n < 2 ** 53 else None), keys


def _numbers(value: object, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise UserError(f"control: {what} must be a list of numbers (or of equal-length lists)") from None


def _in_range(a: np.ndarray, limits: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """Non-finite -> 0 and clamped to the trained range, saying so in ``notes``."""
    ok = np.isfinite(a)
    if not ok.all():
        notes.append(f"{what}: NaN or infinite values were replaced by 0")
    a = np.where(ok, a, 0.0)
    c = np.clip(a, -limits, limits)
    if (c != a).any():
        notes.append(f"{what}: values outside the trained range were clamped to it")
    return c


def _pose(a: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """One (33, 3|4) pose -> sanitised (33, 4); a pose with nothing visible stays so: the session
    takes it as nobody in view (the avatar holds its pose, then relaxes to its first one)."""
    if a.ndim != 2 or a.shape[0] != NUM_LANDMARKS or a.shape[1] not in (3, 4):
        raise UserError(f"control: {what} must be {NUM_LANDMARKS} rows of [x, y, z, visibility], got shape {a.shape}")
    if not np.isfinite(a).all():
        notes.append(f"{what}: landmarks with NaN or infinite values were treated as invisible")
    with np.errstate(over="ignore"):                  # beyond float32 counts as infinite, hence invisible
        out = sanitize(a)
    if not anyone_visible(out):
        notes.append(f"{what}: no landmark is visible: nobody in view, so the avatar holds its pose, then relaxes")
    return out


def parse_control(text: str | None, mode: str) -> tuple[np.ndarray | None, dict]:
    """The API's control (JSON) -> a raw engine control or None, plus input-state settings.

    world: {"keys": "w,arrowleft"} and/or {"yaw": 2.0, ...} (held rates, like the page), or
           {"raw": [7 numbers] or [[7 numbers] x 4]} (per-frame controls).
    avatar: {"landmarks": [[x, y, z, visibility] x 33]} or {"raw": [[...] x 33] x 4}.
    Empty or null: keep the current inputs. Malformed controls raise ``UserError``; values that
    can be used after sanitising (NaN, infinity, out of the trained range, a pose with nothing
    visible) are, and ``settings["notes"]`` says what was changed.
    """
    if text is None or not str(text).strip():
        return None, {}
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError, RecursionError) as e:
        raise UserError("control must be JSON, e.g. {\"keys\": \"w\"} or {\"yaw\": 2}") from e
    if isinstance(obj, list):
        obj = {"raw": obj}
    if not isinstance(obj, dict):
        raise UserError("control must be a JSON object, e.g. {\"keys\": \"w\"}")
    settings: dict = {}
    notes: list[str] = []
    raw = None
    known = ({"keys", "raw", *AXES} if mode == "world" else {"landmarks", "raw"})
    unknown = sorted(str(k) for k in obj if k not in known)
    if unknown:
        notes.append(f"ignored unknown control fields {unknown[:5]} (this mode takes {sorted(known)})")
    if mode == "world":
        if "keys" in obj:
            settings["keys"] = str(obj["keys"])[:200]
        sliders = {}
        for a in AXES:
            if a in obj:
                try:
                    v = float(obj[a])
                except (TypeError, ValueError, OverflowError):
                    notes.append(f"{a}: {str(obj[a])[:20]!r} is not a number, so 0 was used")
                    v = 0.0
                sliders[a] = float(_in_range(np.array(v), LIMITS[AXES.index(a)], a, notes))
        settings["sliders"] = sliders
        if "raw" in obj:
            r = _numbers(obj["raw"], "raw camera control")
            if r.shape not in ((CONTROL_DIM,), (4, CONTROL_DIM)):
                raise UserError(f"control: raw camera control must be {CONTROL_DIM} numbers or 4 rows of {CONTROL_DIM}, "
                                f"got shape {r.shape}")
            raw = _in_range(r, LIMITS, "raw camera control", notes)
    else:
        if "landmarks" in obj:
            raw = _pose(_numbers(obj["landmarks"], "landmarks"), "landmarks", notes)
        elif "raw" in obj:
            r = _numbers(obj["raw"], "raw pose control")
            if r.ndim != 3 or r.shape[0] != 4:
                raise UserError(f"control: raw pose control must have shape (4, {NUM_LANDMARKS}, 4), got {r.shape}")
            raw = np.stack([_pose(f, "raw pose control", notes) for f in r])
    if notes:
        settings["notes"] = list(dict.fromkeys(notes))
    return raw, settings


def step_session(session: Session, control: str | None, steps: object = 1) -> dict:
    """The API's /step on one session: parse the control, apply held keys and slider rates, step,
    and answer with the last frames (PNG data URLs) and notes on any value that was sanitised."""
    raw, settings = parse_control(control, session.mode)
    if "keys" in settings:
        session.set_keys(settings["keys"])
    for axis, v in settings.get("sliders", {}).items():
        session.set_slider(axis, v)
    n = int(np.clip(to_seed(steps), 1, 64))
    frames, info = session.api_step(raw, n)
    out = {"ok": True, **info, "frames": [encode_png(f) for f in frames]}
    if settings.get("notes"):
        out["notes"] = settings["notes"]
    return out
