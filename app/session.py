"""Per-tab streams: one ``Session`` per browser tab (engine, control state, recorder), made and freed
by the ``SessionManager`` (``app/manager.py``), which limits concurrent streams (``app/slots.py``).

No UI imports: ``app/ui.py`` turns the events of ``Session.stream()`` into Gradio outputs and
changes a session only through its public methods.

Threads: each running session has one worker thread, the only place its engine steps while it
streams. It samples the newest control just before each step (``FramePlayer.next_step_at``,
app/player.py, tells it when, so the control is as fresh as possible) and publishes the 4 frames to the
player. The page's generator pulls frames from the player as they fall due; a frame the page
could not show in time is dropped, never queued, so latency cannot grow. UI handlers only set
state (controls, a pending reset) and return at once.

Controls come from one ``ControlSource`` (controls/source.py), chosen by the model's control mode
when its engine is made: the keys and sliders of a world model, the body pose of an avatar (the
webcam through ``WebcamTracker``, controls/tracker.py, or a recorded motion).

One class over 450 lines on purpose: a session's lifecycle (slot, worker, reset, stop, close), its
inputs and its plain API share one lock and one state machine; the parts that stand alone live in
app/player.py, app/slots.py, app/manager.py and controls/.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from app.examples import image_digest
from app.models import ModelInfo
from app.player import Frame, FramePlayer, Timings
from app.recorder import Recorder
from controls.camera_input import CameraInput
from controls.detector import find_person
from controls.landmarks import to_square
from controls.motion import RecordedMotion
from controls.pose import NUM_LANDMARKS
from controls.pose_input import PoseInput
from controls.source import ControlSource, source_for
from controls.tracker import WebcamTracker, pose_canvas
from model.engine import ControlError, StreamingEngine, prepare_image

if TYPE_CHECKING:
    from app.manager import SessionManager

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- events to the page
@dataclass
class StreamEvent:
    """What ``Session.stream()`` yields: a frame to show, or a status line."""
    kind: str                        # frame | waiting | status | stopped | error
    frame: Frame | None = None
    message: str = ""
    stats: str | None = None         # a fresh readout line (about twice a second)
    preview: np.ndarray | None = None  # a fresh "what drives the avatar" image


# ----------------------------------------------------------------------------- the session
class SessionError(RuntimeError):
    """A problem the user can act on (the message is shown as is)."""


class Session:
    """One browser tab's stream: engine, controls, first frame, recorder, worker thread."""

    def __init__(self, sid: str, manager: "SessionManager"):
        self.id = sid
        self.manager = manager
        self.mode = manager.default_mode
        self.model_label: str | None = None
        self.seed = 0
        self.first: dict[str, np.ndarray] = {}       # chosen first frame per mode (full image)
        self.engine: StreamingEngine | None = None
        self.engine_label: str | None = None
        self.camera = CameraInput()
        self.pose = PoseInput(retarget="relative")
        self.body_note = ""                            # why the avatar moves a standard body, if it does
        self._bodies: dict[str, np.ndarray | None] = {}   # image digest -> the avatar's body in it
        self.control_source: ControlSource | None = None   # chosen with the engine, by its control mode
        self.tracker = WebcamTracker()                 # webcam frame -> driver's pose and preview
        self.pose_source = "webcam"                   # webcam | motion
        self.webcam_note = ""                          # why the last webcam frame could not be used
        self.player = FramePlayer(manager.fps)
        self.timings = self._new_timings()
        self.recorder: Recorder | None = None
        self.record_armed = False
        self.last_recording: Path | None = None
        self.state = "idle"                            # idle | waiting | running | stopped | closed
        self.message = ""
        self.error: str | None = None
        self.client_seq = 0
        self.control_at = time.monotonic()
        self.last_input = time.monotonic()
        self.last_pull = time.monotonic()
        self.frame_index = 0
        self._pending_reset = False
        self._consumer = 0
        self._lock = threading.RLock()                 # engine and lifecycle
        self._stop = threading.Event()
        self._wake = threading.Event()                 # an input that should not wait for the schedule
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None

    # ------------------------------------------------------------------ inputs (any thread, return at once)
    def touch(self) -> None:
        self.last_input = time.monotonic()

    def set_keys(self, keys: str, seq: int | None = None) -> None:
        self.camera.set_keys(keys)
        self._control_changed(seq)

    def set_slider(self, axis: str, value: object) -> float:
        v = self.camera.set_slider(axis, value)
        self._control_changed(None)
        return v

    def stop_moving(self) -> None:
        """All sliders to 0 and all keys up (the page's *Stop moving*)."""
        self.camera.release()
        self.touch()

    def _control_changed(self, seq: int | None) -> None:
        """A key or slider changed: the worker steps at once rather than at its next slot, and the
        new frames replace what is still queued (a discrete input should show without delay)."""
        self.touch()
        if seq is not None and seq > self.client_seq:
            self.client_seq = int(seq)
        self.control_at = time.monotonic()
        if self.mode == "world":
            self._wake.set()

    def set_pose_source(self, source: str, motion: str | None) -> None:
        """'webcam' or 'motion' (a recorded motion by name)."""
        self.touch()
        if source == "motion":
            path = self.manager.motions.get(motion or "")
            if path is None:
                path = next(iter(self.manager.motions.values()), None)
            if path is None:
                raise SessionError("no recorded motions are installed")
            self.pose.set_motion(RecordedMotion.load(path))
            self.pose_source = "motion"
        else:
            self.pose.set_motion(None)
            self.pose_source = "webcam"

    def set_retarget(self, mode: str | None) -> None:
        """How the driver moves the avatar: ``relative`` (each bone's turn since the driver's first
        pose), ``mirror`` (the driver's bone directions) or None (the driver's landmarks as they are)."""
        self.touch()
        self.pose.set_retarget(mode)
        self.pose.set_body(self.pose.body)

    def avatar_body(self, image: np.ndarray) -> np.ndarray | None:
        """The avatar's own (33, 4) pose in a first frame, normalised to the model's square: a
        shipped render's true pose, else what MediaPipe finds (None, with ``body_note`` set, when
        it finds nobody: the avatar then moves a standard body)."""
        key = image_digest(image)
        if key not in self._bodies:
            body = self.manager.example_poses.get(key)
            if body is None:
                H, W = image.shape[:2]
                lm = find_person(image)
                body = None if lm is None else to_square(lm, W, H)
            self._bodies[key] = body
        body = self._bodies[key]
        self.body_note = "" if body is not None else (
            "No person found in the first frame: the avatar follows you with a standard body.")
        return body

    def webcam_frame(self, frame: np.ndarray | None) -> np.ndarray | None:
        """One webcam frame: detect the body, feed the pose control; returns the preview (frame +
        skeleton, and beside it the retargeted pose the model receives)."""
        self.touch()
        if not self._webcam_drives:
            return self.tracker.preview(frame)
        t = time.monotonic()
        landmarks, preview, self.webcam_note = self.tracker.track(frame)
        self.pose.push(landmarks, t)
        if preview is None:                        # no picture in the frame: nobody in view
            return None
        self.control_at = t
        if self.pose.retargeter is None:
            return preview
        return np.concatenate([preview, pose_canvas(self.pose.current(), preview.shape[0])], 1)

    @property
    def _webcam_drives(self) -> bool:
        return self.mode == "avatar" and self.pose_source == "webcam"

    def set_first_frame(self, mode: str, image: np.ndarray | None) -> np.ndarray | None:
        """Choose the first frame of a mode (None: the default); returns what the model will see.
        A running stream of that mode restarts from it."""
        self.touch()
        if image is None:
            self.first.pop(mode, None)
        else:
            self.first[mode] = np.ascontiguousarray(image)
        if self.state == "running" and mode == self.mode:
            self.request_reset()
        return self.model_view(mode)

    def first_frame(self, mode: str) -> np.ndarray | None:
        return self.first.get(mode, self.manager.default_frame(mode))

    def model_view(self, mode: str) -> np.ndarray | None:
        """The first frame as the model of this mode will see it (centre crop, model resolution)."""
        img = self.first_frame(mode)
        if img is None:
            return None
        info = self.manager.store.get(self.model_label, mode)
        return prepare_image(img, info.resolution if info else 128)

    def request_reset(self) -> None:
        """Restart the stream from the first frame with the current seed (applied by the worker)."""
        self.touch()
        if self.state == "running":
            self._pending_reset = True
            self._wake.set()
        else:
            with self._lock:
                if self.engine is not None and self.state != "closed":
                    self._reset_engine()

    # ------------------------------------------------------------------ engine (worker thread or locked)
    @property
    def loaded_model(self) -> str | None:
        """The label of the model the engine runs (None before the first start)."""
        return self.engine_label

    def _model(self) -> ModelInfo:
        info = self.manager.store.get(self.model_label, self.mode)
        if info is None:
            raise SessionError(self.manager.unavailable_message(self.mode))
        return info

    def _ensure_engine(self) -> StreamingEngine:
        info = self._model()
        if self.engine is None or self.engine_label != info.label:
            self.engine = self.manager.store.engine(info)
            self.engine_label = info.label
            self.control_source = source_for(self.engine.mode, self.camera, self.pose)
        return self.engine

    def _reset_engine(self) -> np.ndarray:
        engine = self._ensure_engine()
        if self.recorder is not None and self.recorder.size != engine.size + engine.size % 2:
            self.stop_recording()                  # another model, another resolution: a new file
        img = self.first_frame(self.mode)
        if img is None:
            img = np.full((engine.size, engine.size, 3), 127, np.uint8)
        body = self.avatar_body(np.asarray(img)) if engine.mode == "pose" else None
        first = engine.reset(img, int(self.seed), pose=body)
        self.camera.reset()
        if engine.mode == "pose":
            self.pose.set_body(body)
        self.pose.reset()
        if self.pose_source == "motion" and self.pose.motion is not None:
            self.pose.set_motion(self.pose.motion)
        self.player.clear()
        self.frame_index = 0
        now = time.monotonic()
        self.player.push([Frame(first, 0, self.client_seq, now, now)])
        if self.recorder is not None:
            self.recorder.add(first)
        self._pending_reset = False
        return first

    def _controls(self, engine: StreamingEngine) -> np.ndarray | None:
        """The next step's controls from the engine's source (None for a model that takes none)."""
        source = self.control_source
        return None if source is None else source.next_frames(engine.fpl, time.monotonic())

    def _step(self) -> list[Frame]:
        engine = self._ensure_engine()
        seq, at = self.client_seq, self.control_at
        frames = engine.step(self._controls(engine))
        now = time.monotonic()
        self.timings.add_step(engine.timing, now, len(frames))
        out = []
        for f in frames:
            self.frame_index += 1
            out.append(Frame(f, self.frame_index, seq, at, now))
        if self.recorder is not None:
            self.recorder.add(frames)
            if self.recorder.full:
                self.stop_recording()
        return out

    def _work(self) -> None:
        """The worker thread: step just in time (or at once after a key or slider change), publish, repeat."""
        try:
            while not self._stop.is_set():
                wait = self.player.next_step_at() - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                if self._stop.is_set():
                    break
                urgent = self._wake.is_set()
                self._wake.clear()
                with self._lock:
                    if self._stop.is_set():
                        break
                    if self._pending_reset:
                        self._reset_engine()
                        continue
                    t0 = time.perf_counter()
                    frames = self._step()
                    step_s = time.perf_counter() - t0
                self.player.push(frames, step_s, preempt=urgent)
        except Exception as e:  # noqa: BLE001 - reported to the page, the app keeps serving
            log.exception("stream %s failed", self.id[:8])
            self.error = self.manager.describe(e)
        finally:
            self.player.wake()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Build or reuse the engine, restart from the first frame and begin generating (holds a slot)."""
        with self._lock:
            if self.state == "closed":
                raise SessionError("this session has ended; reload the page")
            self._stop_worker()
            self.error = None
            self._ensure_engine()
            if self.record_armed and self.recorder is None:
                self.start_recording()
            self._reset_engine()
            self._stop = threading.Event()
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._work, name=f"stream-{self.id[:8]}", daemon=True)
            self.state = "running"
            self.message = ""
            self._last_latency_mark = time.monotonic()     # latency counts inputs made while streaming
            self.timings = self._new_timings()
            self._thread.start()

    def _stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            # the worker takes self._lock per step: release it while waiting for the thread
            self._lock.release()
            try:
                t.join(timeout=10)
            finally:
                self._lock.acquire()
        self._thread = None

    def stop(self, message: str = "Stopped.") -> None:
        """Stop generating and give the slot back (the engine stays for a quick restart)."""
        with self._lock:
            self._stop_worker()
            # _stop_worker lets go of the lock while the worker finishes, and another thread may stop or
            # close the session meanwhile (a tab's close and the end of its stream come together): read
            # the state only now, so that a closed session stays closed
            if self.recorder is not None:
                self.stop_recording()
            if self.state in ("running", "waiting"):
                self.state = "stopped"
                self.message = message
            self._consumer += 1
        self.manager.slots.release(self.id)
        self.player.wake()

    def close(self) -> None:
        """Free everything (tab closed or idle)."""
        self.stop("Closed.")
        with self._lock:
            self.state = "closed"
            self.engine = None
            self.control_source = None
            self.tracker.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------ recording
    @property
    def recording(self) -> bool:
        """A recording is being written."""
        return self.recorder is not None

    @property
    def recording_requested(self) -> bool:
        """Recording now, or armed to start recording with the stream."""
        return self.recorder is not None or self.record_armed

    def start_recording(self) -> None:
        with self._lock:
            self.record_armed = True
            if self.recorder is not None or self.engine is None or self.state == "closed":
                return                                      # armed: starts with the stream
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="aapt-rec-", dir=self.manager.record_dir))
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = self._tmp / f"aapt-{self.mode}-{stamp}.mp4"
            self.recorder = Recorder(path, self.manager.fps, self.engine.size, self.manager.max_record_s)

    def stop_recording(self) -> Path | None:
        """Finish the recording; returns the MP4 (None if nothing was recorded)."""
        with self._lock:
            self.record_armed = False
            rec, self.recorder = self.recorder, None
        if rec is None:
            return self.last_recording
        path = rec.close()
        if rec.frames == 0:
            path.unlink(missing_ok=True)
            return self.last_recording
        self.last_recording = path
        return path

    # ------------------------------------------------------------------ the page's view of the stream
    def stream(self, max_seconds: float | None = None) -> Iterator[StreamEvent]:
        """Wait for a slot, start, then yield frames as they fall due until stopped."""
        with self._lock:
            if self.state == "closed":
                raise SessionError("this session has ended; reload the page")
            self._consumer += 1
            me = self._consumer
            self.state = "waiting"
        self.touch()
        try:
            while True:
                place = self.manager.slots.acquire(self.id, timeout=0.5)
                if me != self._consumer or self.state == "closed":
                    self.manager.slots.leave_line(self.id)
                    return
                if place == 0:
                    break
                self.last_pull = time.monotonic()
                yield StreamEvent("waiting", message=self.manager.waiting_message(place))
            self.start()
            yield StreamEvent("status", message=f"Running {self.engine_label}, seed {self.seed}.")
            end = None if max_seconds is None else time.monotonic() + max_seconds
            last_stats = 0.0
            preview_every = 4
            while me == self._consumer and self.state == "running":
                if self.error is not None:
                    msg = self.error
                    self.stop("Stopped by an error.")
                    yield StreamEvent("error", message=msg)
                    return
                frame = self.player.pop(timeout=0.25)
                now = time.monotonic()
                self.last_pull = now
                if end is not None and now > end:
                    break
                if now - self.last_input > self.manager.idle_timeout:
                    minutes = self.manager.idle_timeout / 60
                    self.stop(f"Stopped after {minutes:g} min without input. Press Start to go on.")
                    break
                if frame is None:
                    continue
                self.timings.shown.append(now)
                if frame.control_at > 0 and frame.index > 0 and frame.control_at >= self._last_latency_mark:
                    self.timings.latency_ms.append((now - frame.control_at) * 1e3)
                    self._last_latency_mark = frame.control_at + 1e-9
                stats = None
                if now - last_stats > 0.5:
                    stats, last_stats = self.readout(now), now
                preview = None
                if self.mode == "avatar" and self.pose_source == "motion" and frame.index % preview_every == 0:
                    preview = pose_canvas(self.pose.current(), 192)
                yield StreamEvent("frame", frame=frame, stats=stats, preview=preview)
            yield StreamEvent("stopped", message=self.message or "Stopped.")
        finally:
            if me == self._consumer and self.state in ("running", "waiting"):
                self.stop("Stopped.")          # nobody is watching any more

    _last_latency_mark = 0.0

    def _new_timings(self) -> Timings:
        """Fresh readouts; the pose detection times are the webcam tracker's, cleared with them."""
        self.tracker.pose_ms.clear()
        return Timings(pose_ms=self.tracker.pose_ms)

    def readout(self, now: float | None = None) -> str:
        """One line of live numbers for the page."""
        now = time.monotonic() if now is None else now
        T = self.timings
        parts = [f"**{T.rate(T.shown, now):.1f} fps** shown", f"{T.rate(T.made, now):.1f} fps made"]
        if T.step_ms:
            parts.append(f"step {T.med(T.step_ms):.0f} ms (DiT {T.med(T.dit_ms):.0f} · decode {T.med(T.decode_ms):.0f})")
        shape = self.tracker.shape
        if self._webcam_drives and T.pose_ms:
            size = f" of {shape[1]}×{shape[0]}" if shape else ""
            parts.append(f"pose {T.med(T.pose_ms):.0f} ms{size} ({self.pose.status})")
        elif self.mode == "avatar":
            parts.append(self.pose.status)
        if self._webcam_drives:
            parts.append(f"retarget: {self.pose.retarget_mode or 'off'}")
            if self.body_note:
                parts.append(self.body_note)
            if self.webcam_note:
                parts.append(f"webcam: {self.webcam_note}")
        if T.latency_ms:
            parts.append(f"input→frame {T.med(T.latency_ms):.0f} ms")
        parts.append(f"dropped {self.player.dropped}")
        parts.append(self.manager.store.precision)
        if self.recorder is not None:
            parts.append(f"● REC {self.recorder.seconds:.0f} s")
        return " · ".join(parts)

    # ------------------------------------------------------------------ plain API (no worker)
    def api_start(self, seed: int, image: np.ndarray | None) -> np.ndarray:
        with self._lock:
            if self.state == "closed":
                raise SessionError("this session has ended; start a new one")
            if self.state == "running":
                raise SessionError("this session is streaming in the page; stop it first")
            if self.manager.slots.acquire(self.id, timeout=0.0) != 0:
                self.manager.slots.leave_line(self.id)
                raise SessionError(self.manager.waiting_message(None))
            self.touch()
            self.seed = seed
            if image is not None:
                self.first[self.mode] = image
            self.state = "stopped"
            self.pose.set_motion(None)
            self.pose_source = "api"
            try:
                return self._reset_engine()
            except BaseException:
                self.manager.slots.release(self.id)       # a model that fails to load must not keep the slot
                raise

    def api_step(self, control: np.ndarray | None, steps: int) -> tuple[np.ndarray, dict]:
        with self._lock:
            if self.state == "running":
                raise SessionError("this session is streaming in the page; stop it first")
            if self.engine is None or not self.manager.slots.holds(self.id):
                raise SessionError("call start first")
            self.touch()
            engine = self.engine
            frames = None
            for _ in range(max(1, int(steps))):
                if control is None:
                    c = self._controls(engine)
                elif engine.mode == "pose":
                    c = self._api_pose(engine, control)
                else:
                    c = control
                frames = engine.step(c)
                self.frame_index += len(frames)
            t = engine.timing
            return frames, {"frame_index": self.frame_index, "step_ms": round(t.total_ms, 2),
                            "dit_ms": round(t.dit_ms, 2), "decode_ms": round(t.decode_ms, 2)}


    def _api_pose(self, engine: StreamingEngine, control: np.ndarray) -> np.ndarray:
        """Driving landmarks from the API, (33, 4) or (fpl, 33, 4), through the same retargeting
        and smoothing as the webcam's: one with nothing visible is nobody (hold, then relax)."""
        c = np.asarray(control, dtype=np.float32)
        if c.shape == (NUM_LANDMARKS, 4):
            c = np.repeat(c[None], engine.fpl, 0)
        if c.shape != (engine.fpl, NUM_LANDMARKS, 4):
            raise ControlError(f"pose control must have shape ({NUM_LANDMARKS}, 4) or ({engine.fpl}, {NUM_LANDMARKS}, 4), got {c.shape}")
        return self.pose.follow(c, self.frame_index / self.manager.fps, self.manager.fps)
