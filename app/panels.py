"""The Gradio page's layout: its panels, their labels and element ids, the help text and the styles.

``layout`` lays out the page inside ``gr.Blocks``, one function a panel (``stream_panel``,
``avatar_panel``, ``world_panel``, ``first_frame_panel``), each returning its components; ``app/ui.py``
wires their events. ``LiveImage`` is the output that carries frames inside the stream message.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import gradio as gr
import numpy as np
from gradio import component_meta
from gradio.data_classes import ImageData

from app.adapter import jpeg_data_url
from controls.camera_input import AXES, KEY_HELP, LIMITS

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
class StreamPanel:
    """The left column: the live picture, its readouts and the stream's buttons."""
    out: LiveImage
    hud: gr.Markdown
    status: gr.Markdown
    start: gr.Button
    stop: gr.Button
    reset: gr.Button
    seed: gr.Number
    dice: gr.Button
    model: gr.Dropdown
    record: gr.Button
    download: gr.File


@dataclass
class AvatarPanel:
    """The Avatar tab: what drives the avatar, the webcam and its preview."""
    tab: gr.Tab
    source: gr.Radio
    retarget: gr.Radio
    motion: gr.Dropdown
    webcam: gr.Image
    skeleton: LiveImage


@dataclass
class WorldPanel:
    """The World tab: the steady-motion sliders."""
    tab: gr.Tab
    sliders: dict[str, gr.Slider]
    still: gr.Button


@dataclass
class FirstFramePanel:
    """The first-frame accordion: examples, upload, default and what the model starts from."""
    gallery: gr.Gallery
    upload: gr.UploadButton
    default: gr.Button
    preview: gr.Image


@dataclass
class Page:
    """All panels, and the hidden elements the page script talks through."""
    stream: StreamPanel
    avatar: AvatarPanel
    world: WorldPanel
    first: FirstFramePanel
    meta: gr.Textbox          # which frame is shown and when it left (read by static/live.js)
    keys: gr.Textbox          # the held keys (written by static/live.js)
    keys_btn: gr.Button       # clicked by static/live.js when they change

    @property
    def mode_outputs(self) -> list:
        return [self.stream.model, self.first.gallery, self.first.preview, self.stream.start]


def layout(default_mode: str, notes: dict[str, str], motions: list[str]) -> Page:
    """The whole page, panel by panel (inside ``gr.Blocks``). ``notes``: per mode, why it is
    unavailable ('' when it is not); ``motions``: the recorded motions' names."""
    header()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            stream = stream_panel()
        with gr.Column(scale=2, min_width=320):
            with gr.Tabs(selected=default_mode):
                avatar = avatar_panel(notes["avatar"], motions)
                world = world_panel(notes["world"])
            first = first_frame_panel()
            with gr.Accordion("Help", open=False):
                gr.Markdown(HELP)
    return Page(stream, avatar, world, first,
                meta=gr.Textbox(visible="hidden", elem_id="aapt-meta"),
                keys=gr.Textbox(visible="hidden", elem_id="aapt-keys"),
                keys_btn=gr.Button("keys", visible="hidden", elem_id="aapt-keys-btn"))


def header() -> None:
    gr.Markdown("# AAPT Live\nReal-time interactive video: one network call per frame, driven by your "
                "body or your keyboard. Pick a mode and a first frame, then **Start**.")


def stream_panel() -> StreamPanel:
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
    return StreamPanel(out, hud, status, start, stop, reset, seed, dice, model, record, download)


def avatar_panel(note: str, motions: list[str]) -> AvatarPanel:
    with gr.Tab("Avatar", id="avatar", elem_id="aapt-avatar") as tab:
        gr.Markdown(note)
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
    return AvatarPanel(tab, source, retarget, motion, webcam, skeleton)


def world_panel(note: str) -> WorldPanel:
    with gr.Tab("World", id="world", elem_id="aapt-world") as tab:
        gr.Markdown(note)
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
    return WorldPanel(tab, sliders, still)


def first_frame_panel() -> FirstFramePanel:
    with gr.Accordion("First frame", open=True):
        gallery = gr.Gallery([], label="Examples (click one)", columns=5, height=170, allow_preview=False,
                             elem_id="aapt-gallery", object_fit="cover")
        with gr.Row():
            upload = gr.UploadButton("Upload an image…", file_types=["image"], elem_id="aapt-upload")
            default = gr.Button("Default frame", elem_id="aapt-default")
        preview = gr.Image(label="What the model starts from (centre crop at model resolution)",
                           interactive=False, height=160, elem_id="aapt-preview", format="png")
    return FirstFramePanel(gallery, upload, default, preview)
