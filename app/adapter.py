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
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.session import SessionError
from controls.camera import CONTROL_DIM
from controls.camera_input import AXES, LIMITS
from controls.landmarks import sanitize
from controls.pose import NUM_LANDMARKS
from model.engine import ControlError

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 20.0
MAX_PIXELS = 40_000_000          # larger images are refused (decompression bombs included)
MAX_SEED = 2 ** 31 - 1

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
    elif type(e).__name__ == "ModelFileError":
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


def load_image(source: str | Path | bytes | None, max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """An uploaded file (path or bytes) -> (H, W, 3) uint8 RGB; any problem -> UserError."""
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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            try:
                im = Image.open(io.BytesIO(data))
                if im.width * im.height > MAX_PIXELS:
                    raise UserError("That image has too many pixels; please upload one under 40 megapixels.")
                im.load()
            finally:
                Image.MAX_IMAGE_PIXELS = old
        im = ImageOps.exif_transpose(im) or im
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        a = np.asarray(im.convert("RGB"))
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError("That file is not an image the app can read (or it is too large); "
                        "try a PNG or JPEG photo.") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UserError("That image could not be read (the file may be damaged); try another one.") from e
    if a.ndim != 3 or min(a.shape[:2]) < 8:
        raise UserError("That image is too small; it needs at least 8 pixels on each side.")
    return np.ascontiguousarray(a)


def decode_data_url(s: str, max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """'data:image/...;base64,...' or bare base64 -> image (for the API)."""
    b64 = s.split(",", 1)[1] if s.startswith("data:") else s
    if len(b64) > max_mb * 1.4e6:
        raise UserError(f"That image is larger than {max_mb:g} MB.")
    try:
        data = base64.b64decode(b64, validate=False)
    except (ValueError, TypeError) as e:
        raise UserError("The image is not valid base64.") from e
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


def parse_control(text: str | None, mode: str) -> tuple[np.ndarray | None, dict]:
    """The API's control (JSON) -> a raw engine control or None, plus input-state settings.

    world: {"keys": "w,arrowleft"} and/or {"yaw": 2.0, ...} (held rates, like the page), or
           {"raw": [7 numbers] or [[7 numbers] x 4]} (per-frame controls, sanitised and clamped).
    avatar: {"landmarks": [[x, y, z, visibility] x 33]} or {"raw": [[...] x 33] x 4}.
    Empty or null: keep the current inputs.
    """
    if text is None or not str(text).strip():
        return None, {}
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise UserError("control must be JSON, e.g. {\"keys\": \"w\"} or {\"yaw\": 2}") from e
    if isinstance(obj, list):
        obj = {"raw": obj}
    if not isinstance(obj, dict):
        raise UserError("control must be a JSON object")
    settings: dict = {}
    raw = None
    try:
        if mode == "world":
            if "keys" in obj:
                settings["keys"] = str(obj["keys"])[:200]
            settings["sliders"] = {a: obj[a] for a in AXES if a in obj}
            if "raw" in obj:
                r = np.asarray(obj["raw"], dtype=np.float64)
                if r.shape not in ((CONTROL_DIM,), (4, CONTROL_DIM)):
                    raise UserError(f"raw camera control must be 7 numbers or 4 rows of 7, got shape {r.shape}")
                raw = np.clip(np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0), -LIMITS, LIMITS)
        else:
            if "landmarks" in obj:
                raw = sanitize(np.asarray(obj["landmarks"], dtype=np.float64))
            elif "raw" in obj:
                r = np.asarray(obj["raw"], dtype=np.float64)
                if r.shape != (4, NUM_LANDMARKS, 4):
                    raise UserError(f"raw pose control must have shape (4, 33, 4), got {r.shape}")
                raw = np.stack([sanitize(f) for f in r])
    except UserError:
        raise
    except (ValueError, TypeError) as e:
        raise UserError(f"control values must be numbers: {e}") from e
    return raw, settings
