"""The Gradio page: layout and wiring only. State lives in ``app/session.py``; values and errors pass
through ``app/adapter.py``.
"""
from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio import component_meta
from gradio.data_classes import ImageData

from app.adapter import (MAX_UPLOAD_MB, UserError, decode_data_url, describe, encode_png, guard, jpeg_data_url,
                         load_upload, parse_keys_message, step_session, to_seed)
from app.examples import Examples
from app.models import ModelStore, discover
from app.session import SessionError, SessionManager
from controls.camera_input import AXES, KEY_HELP, LIMITS

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
UI = {"api_visibility": "undocumented"}      # page events stay out of the API docs; the API is /models /start /step /stop
WEBCAM, MOTION = "Webcam", "Recorded motion"
RELATIVE = "relative motion"
# how the driver moves the avatar (controls/retarget.py): its label in the page -> the retarget mode
RETARGET = {RELATIVE: "relative", "mirror my pose": "mirror", "my landmarks as they are": None}
# a small capture is plenty for pose detection and halves the browser's and the server's work per frame
WEBCAM_CONSTRAINTS = {"video": {"width": {"ideal": 320}, "height": {"ideal": 240}}}
SLIDER_LABELS = {"yaw": "Turn right °/frame", "pitch": "Look up °/frame", "roll": "Roll °/frame",
                 "forward": "Forward /frame", "strafe": "Strafe right /frame", "up": "Rise /frame"}

HELP = f"""
**What this is.** A video model that makes every new frame in one network call, from your input, live.
Pick a mode, pick a first frame, press **Start**.

- **Avatar**: press Start, allow the camera; your body pose (MediaPipe, skeleton shown under the webcam)
  drives the avatar. No webcam? Choose *{MOTION}*. Step out of view and the avatar relaxes to a neutral pose.
- **World**: click on the page (not in a text box), then steer with the keyboard: {KEY_HELP}.
  The sliders hold a steady motion; *Stop moving* zeroes them. Pitch and roll drift back to level when
  you let go, as in the training data.
- **First frame**: click an example or upload any image (it is centre-cropped and resized; the preview
  shows exactly what the model starts from). Changing it while running restarts from it.
- **Seed** picks the noise; the same seed, first frame and inputs give the same video. **Reset** restarts.
- **Record** saves what you see as an H.264 MP4 to download (stops itself after 10 minutes).
- Readouts: frames per second shown in this page and made by the model, the model step time (DiT and
  decoder), pose detection time, and the time from an input to the first frame that reflects it.

Each browser tab has its own stream; when all stream slots are busy you wait in line.
"""

CSS = """
#aapt-out img, #aapt-preview img, #aapt-skeleton img { width: 100%; height: 100%; object-fit: contain; }
#aapt-gallery .thumbnail-item { max-height: 72px; }
#aapt-hud, #aapt-client-hud { font-variant-numeric: tabular-nums; font-size: 0.95em; }
#aapt-client-hud { color: var(--body-text-color-subdued); min-height: 1.4em; }
#aapt-status p { margin: 0; }
"""


@contextlib.contextmanager
def _no_stub_files():
    """Gradio writes a ``.pyi`` stub next to every module that defines a component subclass (and
    fails where the source folder is read-only); nothing here needs one."""
    original = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *a, **k: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = original


with _no_stub_files():
    class LiveImage(gr.Image):
        """A ``gr.Image`` output whose frames travel inside the stream message as JPEG data URLs: no
        cache file and no extra HTTP request per frame (with files, a third of the frames were still
        loading when the next one arrived and were never shown)."""

        def get_block_name(self) -> str:
            return "image"                     # the stock Image front end

        def postprocess(self, value):
            if isinstance(value, np.ndarray) and value.ndim == 3:
                return ImageData(url=jpeg_data_url(value), mime_type="image/jpeg", orig_name="frame.jpg")
            return super().postprocess(value)


@dataclass
class AppConfig:
    """Everything ``python -m app`` can set."""
    assets: Path
    examples: Path
    max_streams: int = 2
    idle_timeout: float = 300.0
    fps: float = 24.0
    max_upload_mb: float = MAX_UPLOAD_MB
    max_record_s: float = 600.0
    webcam_every: float = 0.1        # seconds between webcam frames sent to the server (pose is interpolated)
    dtype: str = "auto"              # compute dtype (model/runtime.py): auto | float32 | bfloat16


def build(cfg: AppConfig) -> tuple[gr.Blocks, SessionManager, dict]:
    """The page, its session manager, and the keyword arguments for ``launch``."""
    store = ModelStore(discover(cfg.assets), cfg.dtype)
    examples = Examples(cfg.examples)
    manager = SessionManager(store, {m: examples.default(m) for m in ("world", "avatar")}, examples.motions(),
                             max_streams=cfg.max_streams, idle_timeout=cfg.idle_timeout, fps=cfg.fps,
                             max_record_s=cfg.max_record_s, describe=describe, example_poses=examples.poses())
    motions = list(manager.motions)

    def session(request: gr.Request):
        return manager.get(getattr(request, "session_hash", None))

    def mode_ui(mode: str, s) -> tuple:
        """Model choices, gallery, preview, Start availability and note for a mode."""
        options = store.for_mode(mode)
        labels = [m.label for m in options]
        current = store.get(s.model_label, mode)
        note = "" if options else manager.unavailable_message(mode)
        gallery = [(str(e.path), e.caption) for e in examples.gallery(mode)]
        return (gr.update(choices=labels, value=current.label if current else None, interactive=len(labels) > 1),
                gallery, s.model_view(mode), gr.update(interactive=bool(options)), note)

    with gr.Blocks(title="AAPT Live", analytics_enabled=False, delete_cache=(60, 120)) as demo:
        gr.Markdown("# AAPT Live\nReal-time interactive video: one network call per frame, driven by your "
                    "body or your keyboard. Pick a mode and a first frame, then **Start**.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                out = LiveImage(label="Live", format="jpeg", interactive=False, elem_id="aapt-out", height=480,
                               show_label=False, buttons=["fullscreen"])
                gr.HTML("<div id='aapt-client-hud'></div>")
                hud = gr.Markdown("", elem_id="aapt-hud")
                status = gr.Markdown("", elem_id="aapt-status")
                with gr.Row():
                    start = gr.Button("▶ Start", variant="primary", elem_id="aapt-start")
                    stop = gr.Button("■ Stop", elem_id="aapt-stop")
                    reset = gr.Button("↺ Reset", elem_id="aapt-reset")
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=2 ** 31 - 1, elem_id="aapt-seed",
                                     scale=2)
                    dice = gr.Button("Random", scale=1, min_width=80, elem_id="aapt-dice", size="sm")
                    model = gr.Dropdown([], label="Model (resolution)", elem_id="aapt-model", scale=3)
                with gr.Row():
                    record = gr.Button("● Record", elem_id="aapt-record")
                    download = gr.File(label="Recording (MP4)", interactive=False, elem_id="aapt-download",
                                       height=80, visible=False)
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs(selected=manager.default_mode):
                    with gr.Tab("Avatar", id="avatar", elem_id="aapt-avatar") as tab_avatar:
                        gr.Markdown(manager.unavailable_message("avatar") if not store.for_mode("avatar")
                                                  else "")
                        gr.Markdown("Sitting or standing, near or far: the avatar keeps its own body and takes "
                                    "your motion. Bones the camera does not see hold still.")
                        with gr.Row():
                            source = gr.Radio([WEBCAM, MOTION], value=WEBCAM, label="Drive the avatar with",
                                              elem_id="aapt-source")
                            retarget = gr.Radio(list(RETARGET), value=RELATIVE, label="Your motion",
                                                elem_id="aapt-retarget")
                        motion = gr.Dropdown(motions, value=motions[0] if motions else None, label="Recorded motion",
                                             elem_id="aapt-motion", visible=False)
                        with gr.Row():
                            webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                                              elem_id="aapt-webcam", height=240,
                                              webcam_options=gr.WebcamOptions(mirror=True, constraints=WEBCAM_CONSTRAINTS))
                            skeleton = LiveImage(label="You, and the pose the model follows", format="jpeg",
                                                 interactive=False, elem_id="aapt-skeleton", height=240)
                    with gr.Tab("World", id="world", elem_id="aapt-world") as tab_world:
                        gr.Markdown(manager.unavailable_message("world") if not store.for_mode("world")
                                                 else "")
                        gr.Markdown(f"**Keyboard** (click the page first): {KEY_HELP}.")
                        sliders = {}
                        with gr.Row():
                            for group in (("yaw", "pitch", "roll"), ("forward", "strafe", "up")):
                                with gr.Column(min_width=160):
                                    for a in group:
                                        i = AXES.index(a)
                                        sliders[a] = gr.Slider(-float(LIMITS[i]), float(LIMITS[i]), value=0.0,
                                                               step=float(LIMITS[i]) / 20, label=SLIDER_LABELS[a],
                                                               elem_id=f"aapt-{a}")
                        still = gr.Button("Stop moving", elem_id="aapt-still")
                with gr.Accordion("First frame", open=True):
                    gallery = gr.Gallery([], label="Examples (click one)", columns=5, height=170, allow_preview=False,
                                         elem_id="aapt-gallery", object_fit="cover")
                    with gr.Row():
                        upload = gr.UploadButton("Upload an image…", file_types=["image"], elem_id="aapt-upload")
                        default = gr.Button("Default frame", elem_id="aapt-default")
                    preview = gr.Image(label="What the model starts from (centre crop at model resolution)",
                                       interactive=False, height=160, elem_id="aapt-preview", format="png")
                with gr.Accordion("Help", open=False):
                    gr.Markdown(HELP)
        meta = gr.Textbox(visible="hidden", elem_id="aapt-meta")
        keys = gr.Textbox(visible="hidden", elem_id="aapt-keys")
        keys_btn = gr.Button("keys", visible="hidden", elem_id="aapt-keys-btn")

        mode_outputs = [model, gallery, preview, start]

        # ------------------------------------------------------------------ page and mode
        @guard
        def on_load(request: gr.Request):
            s = session(request)
            s.mode = manager.default_mode
            *ui, note = mode_ui(s.mode, s)
            return (*ui, note or "Pick a first frame and press Start.")

        demo.load(on_load, None, mode_outputs + [status], queue=False, **UI)

        def on_unload(request: gr.Request):
            manager.close(getattr(request, "session_hash", None))

        demo.unload(on_unload)

        def switch(mode: str):
            @guard
            def on_mode(request: gr.Request):
                s = session(request)
                if s.mode != mode and s.state in ("running", "waiting"):
                    s.stop(f"Stopped: switched to {mode} mode.")
                s.mode = mode
                *ui, note = mode_ui(mode, s)
                return (*ui, note or f"{mode.capitalize()} mode. Press Start.")
            return on_mode

        tab_avatar.select(switch("avatar"), None, mode_outputs + [status], queue=False, **UI)
        tab_world.select(switch("world"), None, mode_outputs + [status], queue=False,
                         js="() => { if (window.aapt) window.aapt.stopWebcam(); return []; }", **UI)

        # ------------------------------------------------------------------ the stream
        @guard
        def on_start(model_label, seed_value, source_value, motion_value, request: gr.Request):
            s = session(request)
            s.model_label = model_label
            s.seed = to_seed(seed_value)
            if s.mode == "avatar":
                s.set_pose_source("motion" if source_value == MOTION else "webcam", motion_value)
            skip = gr.skip()
            for ev in s.stream():
                if ev.kind == "frame":
                    f = ev.frame
                    # the page script reads which frame and key state this is, and when it left
                    meta_text = f"f={f.index};c={f.control_seq};t={time.time() * 1000:.1f}"
                    yield (f.image, meta_text, ev.stats or skip, skip,
                           ev.preview if ev.preview is not None else skip)
                elif ev.kind == "error":
                    yield skip, skip, skip, f"⚠️ {ev.message}", skip
                else:
                    yield skip, skip, skip, ev.message, skip

        start.click(on_start, [model, seed, source, motion], [out, meta, hud, status, skeleton],
                    concurrency_limit=None, show_progress="hidden",
                    js="(...a) => { if (window.aapt) window.aapt.startWebcam(); return a; }", **UI)

        @guard
        def on_stop(request: gr.Request):
            s = session(request)
            s.stop("Stopped.")
            path = s.last_recording
            file = gr.update(value=str(path), visible=True) if path else gr.skip()
            return "Stopped.", gr.update(value="● Record"), file

        stop.click(on_stop, None, [status, record, download], queue=False,
                   js="() => { if (window.aapt) window.aapt.stopWebcam(); return []; }", **UI)

        @guard
        def on_reset(seed_value, request: gr.Request):
            s = session(request)
            s.seed = to_seed(seed_value)
            s.request_reset()
            shown = gr.skip() if s.state == "running" else s.model_view(s.mode)   # stopped: show the start
            return f"Reset (seed {s.seed}).", shown

        reset.click(on_reset, [seed], [status, out], queue=False, **UI)
        dice.click(lambda: random.randint(0, 2 ** 31 - 1), None, [seed], queue=False, **UI)

        @guard
        def on_model(label, request: gr.Request):
            s = session(request)
            s.model_label = label
            if s.state == "running":
                s.request_reset()
            return s.model_view(s.mode)

        model.input(on_model, [model], [preview], queue=False, **UI)

        # ------------------------------------------------------------------ recording
        @guard
        def on_record(request: gr.Request):
            s = session(request)
            if s.recorder is not None or s.record_armed:
                path = s.stop_recording()
                if path is None:
                    return "● Record", gr.skip(), "Nothing was recorded."
                return "● Record", gr.update(value=str(path), visible=True), "Recording saved: download it below."
            s.start_recording()
            msg = "Recording." if s.recorder is not None else "Recording starts with the stream."
            return "■ Stop recording", gr.skip(), msg

        record.click(on_record, None, [record, download, status], queue=False, **UI)

        # ------------------------------------------------------------------ world controls
        def slider_handler(axis: str):
            @guard
            def on_slider(value, request: gr.Request):
                session(request).set_slider(axis, value)
            return on_slider

        for axis, sl in sliders.items():
            sl.change(slider_handler(axis), [sl], None, queue=False, show_progress="hidden", **UI)

        @guard
        def on_still(request: gr.Request):
            s = session(request)
            s.camera.release()
            s.touch()
            return [0.0] * len(sliders)

        still.click(on_still, None, list(sliders.values()), queue=False, **UI)

        @guard
        def on_keys(message, request: gr.Request):
            seq, held = parse_keys_message(message)
            session(request).set_keys(held, seq)

        keys_btn.click(on_keys, [keys], None, queue=False, show_progress="hidden",
                       js="(k) => (window.aapt ? window.aapt.keystate : '')", **UI)

        # ------------------------------------------------------------------ avatar controls
        @guard
        def on_webcam(frame, request: gr.Request):
            s = session(request)
            preview_img = s.webcam_frame(frame)
            return preview_img if preview_img is not None else gr.skip()

        webcam.stream(on_webcam, [webcam], [skeleton], stream_every=cfg.webcam_every, time_limit=None,
                      concurrency_limit=None, show_progress="hidden", **UI)

        @guard
        def on_source(source_value, motion_value, request: gr.Request):
            s = session(request)
            s.set_pose_source("motion" if source_value == MOTION else "webcam", motion_value)
            return gr.update(visible=source_value == MOTION)

        source.change(on_source, [source, motion], [motion], queue=False, **UI)

        @guard
        def on_retarget(value, request: gr.Request):
            session(request).set_retarget(RETARGET.get(value, "relative"))

        retarget.change(on_retarget, [retarget], None, queue=False, **UI)
        motion.change(on_source, [source, motion], [motion], queue=False, **UI)

        # ------------------------------------------------------------------ first frame
        @guard
        def on_example(evt: gr.SelectData, request: gr.Request):
            s = session(request)
            items = examples.gallery(s.mode)
            i = evt.index if isinstance(evt.index, int) else (evt.index[0] if evt.index else 0)
            if not 0 <= i < len(items):
                raise UserError("That example is no longer available.")
            return s.set_first_frame(s.mode, examples.load(items[i].path)), f"First frame: {items[i].caption}."

        gallery.select(on_example, None, [preview, status], queue=False, **UI)

        @guard
        def on_upload(file, request: gr.Request):
            s = session(request)
            img = load_upload(file, cfg.max_upload_mb)
            h, w = img.shape[:2]
            return s.set_first_frame(s.mode, img), f"First frame: your image ({w}×{h}, centre-cropped)."

        upload.upload(on_upload, [upload], [preview, status], **UI)

        @guard
        def on_default(request: gr.Request):
            s = session(request)
            return s.set_first_frame(s.mode, None), "First frame: default."

        default.click(on_default, None, [preview, status], queue=False, **UI)

        # ------------------------------------------------------------------ plain API (gradio_client)
        def api_models() -> dict:
            """The installed models: label, mode and resolution of each."""
            return {"models": [{"name": m.name, "label": m.label, "mode": m.mode, "resolution": m.resolution}
                               for m in store.models.values()]}

        def api_start(mode: str = "", model: str = "", seed: int = 0, image: str = "",
                      request: gr.Request = None) -> dict:
            """Start (or restart) this client's stream. mode: world | avatar ('' = the default);
            model: a name or label from /models ('' = the first of the mode; a named model sets the mode);
            image: '' (default frame), an example caption, or a base64 image (data URL). Returns the first
            frame as a PNG data URL."""
            try:
                s = session(request)
                info = store.named(model) if model else None
                if model and info is None:
                    names = ", ".join(sorted(x.name for x in store.models.values())) or "none"
                    raise UserError(f"There is no model {model!r}. Installed models: {names}.")
                m = mode or (info.mode if info else manager.default_mode)
                if m not in ("world", "avatar"):
                    raise UserError("mode must be 'world' or 'avatar'")
                if info is not None and info.mode != m:
                    raise UserError(f"The model {model!r} is a {info.mode} model, not a {m} one.")
                s.mode, s.model_label = m, info.label if info else None
                img = None
                if image:
                    named = {e.caption: e.path for e in examples.gallery(m)}
                    img = examples.load(named[image]) if image in named else decode_data_url(image, cfg.max_upload_mb)
                first = s.api_start(to_seed(seed), img)
                return {"ok": True, "mode": m, "model": s.engine_label, "resolution": int(first.shape[0]),
                        "frame": encode_png(first)}
            except Exception as e:  # noqa: BLE001 - the API answers with a message, never a traceback
                if not isinstance(e, (UserError, SessionError)):
                    log.exception("api start")
                return {"ok": False, "error": describe(e)}

        def api_step(control: str = "", steps: int = 1, request: gr.Request = None) -> dict:
            """Advance this client's stream by `steps` latent frames (4 video frames each) and return the
            last 4 frames as PNG data URLs. control: JSON, see app/adapter.py parse_control; values it had
            to sanitise (NaN, out of range, unknown fields) are listed in "notes"."""
            try:
                return step_session(session(request), control, steps)
            except Exception as e:  # noqa: BLE001
                if not isinstance(e, (UserError, SessionError)):
                    log.exception("api step")
                return {"ok": False, "error": describe(e)}

        def api_stop(request: gr.Request = None) -> dict:
            """Stop this client's stream and free its slot."""
            manager.close(getattr(request, "session_hash", None))
            return {"ok": True}

        gr.api(api_models, api_name="models", queue=False)
        gr.api(api_start, api_name="start", concurrency_limit=None)
        gr.api(api_step, api_name="step", concurrency_limit=None)
        gr.api(api_stop, api_name="stop", queue=False)

    head = "<script>\n" + (STATIC / "live.js").read_text() + "\n</script>"
    launch_kwargs = {"head": head, "css": CSS, "max_file_size": f"{cfg.max_upload_mb:g}mb"}
    return demo, manager, launch_kwargs
