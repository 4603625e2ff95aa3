"""The Gradio page: wiring only. The layout is ``app/panels.py``; state lives in ``app/session.py``
(reached only through ``Session``'s public methods); values and errors pass through ``app/adapter.py``.

``build`` lays out the page (``panels.layout``), then wires each panel's events (``_page_events``,
``_stream_events``, ``_world_events``, ``_avatar_events``, ``_first_frame_events``) and the plain API
(``_api_routes``).
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app.adapter import (MAX_UPLOAD_MB, UserError, decode_data_url, describe, encode_png, guard, load_upload,
                         parse_keys_message, step_session, to_seed)
from app.examples import Examples
from app.manager import SessionManager
from app.models import ModelStore, discover
from app.panels import CSS, MOTION, RETARGET, Page, layout
from app.session import Session, SessionError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
UI = {"api_visibility": "undocumented"}      # page events stay out of the API docs; the API is /models /start /step /stop


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
    recycle: str = "auto"            # the generators' recycled frame: auto | latent | pixels (app/models.py)


@dataclass
class _App:
    """What every handler shares: the settings, the installed models, the examples and the sessions."""
    cfg: AppConfig
    store: ModelStore
    examples: Examples
    manager: SessionManager

    def session(self, request: gr.Request | None) -> Session:
        return self.manager.get(getattr(request, "session_hash", None))

    def unavailable_note(self, mode: str) -> str:
        return self.manager.unavailable_message(mode) if not self.store.for_mode(mode) else ""

    def mode_ui(self, mode: str, s: Session) -> tuple:
        """Model choices, gallery, preview, Start availability and note for a mode."""
        options = self.store.for_mode(mode)
        labels = [m.label for m in options]
        current = self.store.get(s.model_label, mode)
        note = "" if options else self.manager.unavailable_message(mode)
        gallery = [(str(e.path), e.caption) for e in self.examples.gallery(mode)]
        return (gr.update(choices=labels, value=current.label if current else None, interactive=len(labels) > 1),
                gallery, s.model_view(mode), gr.update(interactive=bool(options)), note)


def build(cfg: AppConfig) -> tuple[gr.Blocks, SessionManager, dict]:
    """The page, its session manager, and the keyword arguments for ``launch``."""
    store = ModelStore(discover(cfg.assets), cfg.dtype, cfg.recycle)
    examples = Examples(cfg.examples)
    manager = SessionManager(store, {m: examples.default(m) for m in ("world", "avatar")}, examples.motions(),
                             max_streams=cfg.max_streams, idle_timeout=cfg.idle_timeout, fps=cfg.fps,
                             max_record_s=cfg.max_record_s, describe=describe, example_poses=examples.poses())
    app = _App(cfg, store, examples, manager)

    with gr.Blocks(title="AAPT Live", analytics_enabled=False, delete_cache=(60, 120)) as demo:
        page = layout(manager.default_mode, {m: app.unavailable_note(m) for m in ("avatar", "world")},
                      list(manager.motions))
        _page_events(demo, app, page)
        _stream_events(app, page)
        _world_events(app, page)
        _avatar_events(app, page)
        _first_frame_events(app, page)
        _api_routes(app)

    head = "<script>\n" + (STATIC / "live.js").read_text() + "\n</script>"
    launch_kwargs = {"head": head, "css": CSS, "max_file_size": f"{cfg.max_upload_mb:g}mb"}
    return demo, manager, launch_kwargs


# ----------------------------------------------------------------------------- events (wiring)
def _page_events(demo: gr.Blocks, app: _App, page: Page) -> None:
    """Page load and unload, and switching modes by tab."""
    manager, outputs = app.manager, page.mode_outputs + [page.stream.status]

    @guard
    def on_load(request: gr.Request):
        s = app.session(request)
        s.mode = manager.default_mode
        *ui, note = app.mode_ui(s.mode, s)
        return (*ui, note or "Pick a first frame and press Start.")

    demo.load(on_load, None, outputs, queue=False, **UI)

    def on_unload(request: gr.Request):
        manager.close(getattr(request, "session_hash", None))

    demo.unload(on_unload)

    def switch(mode: str):
        @guard
        def on_mode(request: gr.Request):
            s = app.session(request)
            if s.mode != mode and s.state in ("running", "waiting"):
                s.stop(f"Stopped: switched to {mode} mode.")
            s.mode = mode
            *ui, note = app.mode_ui(mode, s)
            return (*ui, note or f"{mode.capitalize()} mode. Press Start.")
        return on_mode

    page.avatar.tab.select(switch("avatar"), None, outputs, queue=False, **UI)
    page.world.tab.select(switch("world"), None, outputs, queue=False,
                          js="() => { if (window.aapt) window.aapt.stopWebcam(); return []; }", **UI)


def _stream_events(app: _App, page: Page) -> None:
    """Start, Stop, Reset, the seed, the model and Record."""
    p, session = page.stream, app.session

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

    p.start.click(on_start, [p.model, p.seed, page.avatar.source, page.avatar.motion],
                  [p.out, page.meta, p.hud, p.status, page.avatar.skeleton], concurrency_limit=None,
                  show_progress="hidden",
                  js="(...a) => { if (window.aapt) window.aapt.startWebcam(); return a; }", **UI)

    @guard
    def on_stop(request: gr.Request):
        s = session(request)
        s.stop("Stopped.")
        path = s.last_recording
        file = gr.update(value=str(path), visible=True) if path else gr.skip()
        return "Stopped.", gr.update(value="● Record"), file

    p.stop.click(on_stop, None, [p.status, p.record, p.download], queue=False,
                 js="() => { if (window.aapt) window.aapt.stopWebcam(); return []; }", **UI)

    @guard
    def on_reset(seed_value, request: gr.Request):
        s = session(request)
        s.seed = to_seed(seed_value)
        s.request_reset()
        shown = gr.skip() if s.state == "running" else s.model_view(s.mode)   # stopped: show the start
        return f"Reset (seed {s.seed}).", shown

    p.reset.click(on_reset, [p.seed], [p.status, p.out], queue=False, **UI)
    p.dice.click(lambda: random.randint(0, 2 ** 31 - 1), None, [p.seed], queue=False, **UI)

    @guard
    def on_model(label, request: gr.Request):
        s = session(request)
        s.model_label = label
        if s.state == "running":
            s.request_reset()
        return s.model_view(s.mode)

    p.model.input(on_model, [p.model], [page.first.preview], queue=False, **UI)

    @guard
    def on_record(request: gr.Request):
        s = session(request)
        if s.recording_requested:
            path = s.stop_recording()
            if path is None:
                return "● Record", gr.skip(), "Nothing was recorded."
            return "● Record", gr.update(value=str(path), visible=True), "Recording saved: download it below."
        s.start_recording()
        msg = "Recording." if s.recording else "Recording starts with the stream."
        return "■ Stop recording", gr.skip(), msg

    p.record.click(on_record, None, [p.record, p.download, p.status], queue=False, **UI)


def _world_events(app: _App, page: Page) -> None:
    """The sliders, Stop moving, and the held keys the page script reports."""
    sliders, session = page.world.sliders, app.session

    def slider_handler(axis: str):
        @guard
        def on_slider(value, request: gr.Request):
            session(request).set_slider(axis, value)
        return on_slider

    for axis, sl in sliders.items():
        sl.change(slider_handler(axis), [sl], None, queue=False, show_progress="hidden", **UI)

    @guard
    def on_still(request: gr.Request):
        session(request).stop_moving()
        return [0.0] * len(sliders)

    page.world.still.click(on_still, None, list(sliders.values()), queue=False, **UI)

    @guard
    def on_keys(message, request: gr.Request):
        seq, held = parse_keys_message(message)
        session(request).set_keys(held, seq)

    page.keys_btn.click(on_keys, [page.keys], None, queue=False, show_progress="hidden",
                        js="(k) => (window.aapt ? window.aapt.keystate : '')", **UI)


def _avatar_events(app: _App, page: Page) -> None:
    """Webcam frames, the driving source and how the driver's motion is retargeted."""
    p, session = page.avatar, app.session

    @guard
    def on_webcam(frame, request: gr.Request):
        preview_img = session(request).webcam_frame(frame)
        return preview_img if preview_img is not None else gr.skip()

    p.webcam.stream(on_webcam, [p.webcam], [p.skeleton], stream_every=app.cfg.webcam_every, time_limit=None,
                    concurrency_limit=None, show_progress="hidden", **UI)

    @guard
    def on_source(source_value, motion_value, request: gr.Request):
        session(request).set_pose_source("motion" if source_value == MOTION else "webcam", motion_value)
        return gr.update(visible=source_value == MOTION)

    p.source.change(on_source, [p.source, p.motion], [p.motion], queue=False, **UI)

    @guard
    def on_retarget(value, request: gr.Request):
        session(request).set_retarget(RETARGET.get(value, "relative"))

    p.retarget.change(on_retarget, [p.retarget], None, queue=False, **UI)
    p.motion.change(on_source, [p.source, p.motion], [p.motion], queue=False, **UI)


def _first_frame_events(app: _App, page: Page) -> None:
    """An example, an upload or the default as the first frame."""
    p, session, examples = page.first, app.session, app.examples
    outputs = [p.preview, page.stream.status]

    @guard
    def on_example(evt: gr.SelectData, request: gr.Request):
        s = session(request)
        items = examples.gallery(s.mode)
        i = evt.index if isinstance(evt.index, int) else (evt.index[0] if evt.index else 0)
        if not 0 <= i < len(items):
            raise UserError("That example is no longer available.")
        return s.set_first_frame(s.mode, examples.load(items[i].path)), f"First frame: {items[i].caption}."

    p.gallery.select(on_example, None, outputs, queue=False, **UI)

    @guard
    def on_upload(file, request: gr.Request):
        s = session(request)
        img = load_upload(file, app.cfg.max_upload_mb)
        h, w = img.shape[:2]
        return s.set_first_frame(s.mode, img), f"First frame: your image ({w}×{h}, centre-cropped)."

    p.upload.upload(on_upload, [p.upload], outputs, **UI)

    @guard
    def on_default(request: gr.Request):
        s = session(request)
        return s.set_first_frame(s.mode, None), "First frame: default."

    p.default.click(on_default, None, outputs, queue=False, **UI)


# ----------------------------------------------------------------------------- plain API (gradio_client)
def _api_routes(app: _App) -> None:
    """/models, /start, /step and /stop for programs (``gradio_client``)."""
    cfg, store, examples, manager, session = app.cfg, app.store, app.examples, app.manager, app.session

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
            return {"ok": True, "mode": m, "model": s.loaded_model, "resolution": int(first.shape[0]),
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
