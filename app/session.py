"""Per-tab streams: one ``Session`` per browser tab (engine, control state, recorder), a ``SessionManager``
that limits concurrent streams and frees idle ones, and the ``FramePlayer`` that paces frames.

No UI imports: ``app/ui.py`` turns the events of ``Session.stream()`` into Gradio outputs.

Threads: each running session has one worker thread, the only place its engine steps while it
streams. It samples the newest control just before each step (``FramePlayer.next_step_at``
tells it when, so the control is as fresh as possible) and publishes the 4 frames to the
player. The page's generator pulls frames from the player as they fall due; a frame the page
could not show in time is dropped, never queued, so latency cannot grow. UI handlers only set
state (controls, a pending reset) and return at once.
"""
from __future__ import annotations

import collections
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from app.examples import image_digest
from app.models import ModelInfo, ModelStore
from app.recorder import Recorder
from controls.camera_input import CameraInput
from controls.detector import MIN_SIDE, PoseDetector, as_rgb_frame, find_person
from controls.landmarks import draw_skeleton, to_square
from controls.motion import RecordedMotion
from controls.pose import NUM_LANDMARKS
from controls.pose_input import PoseInput
from model.engine import ControlError, StepTiming, StreamingEngine, prepare_image

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- frame pacing
@dataclass
class Frame:
    """One video frame on its way to the page."""
    image: np.ndarray            # (H, W, 3) uint8
    index: int                   # video frame number in this stream
    control_seq: int             # newest client control sequence number the frame reflects
    control_at: float            # monotonic time that control arrived at the server
    made_at: float               # monotonic time the frame's step finished
    shown_at: float = 0.0        # monotonic time it was handed to the page


class FramePlayer:
    """Paces chunks of frames for display; thread-safe.

    The first frame of a chunk is due when it arrives (or right after the frame before it);
    the others follow at ``frame_dt`` = max(1 / fps, step time / chunk size), so the stream
    plays at the model's frame rate when the engine keeps up and as fast as it can when not.
    A backlog longer than one chunk is dropped, and so is every due frame but the newest.
    """

    def __init__(self, fps: float = 24.0, margin_s: float = 0.010):
        self.min_dt = 1.0 / fps
        self.margin_s = margin_s
        self._cond = threading.Condition()
        self.clear()

    def clear(self) -> None:
        with self._cond:
            self._queue: collections.deque[tuple[float, Frame]] = collections.deque()
            self.last_due = 0.0
            self.frame_dt = self.min_dt
            self.step_s = 0.0
            self.dropped = 0
            self._cond.notify_all()

    def push(self, frames: list[Frame], step_s: float | None = None, preempt: bool = False) -> None:
        """Queue a chunk; ``preempt`` (a fresh user input) drops what is still queued and shows it now."""
        now = time.monotonic()
        with self._cond:
            if preempt and self._queue:
                self.dropped += len(self._queue)
                self._queue.clear()
                self.last_due = now - self.frame_dt
            if step_s is not None and step_s > 0:
                self.step_s = step_s if self.step_s == 0 else 0.8 * self.step_s + 0.2 * step_s
                self.frame_dt = max(self.min_dt, self.step_s / max(1, len(frames)))
            start = max(now, self.last_due + self.frame_dt)           # even spacing after the last frame
            if start - now > self.frame_dt * max(1, len(frames)):     # over a chunk behind: catch up
                self.dropped += len(self._queue)
                self._queue.clear()
                start = now
            for k, f in enumerate(frames):
                self._queue.append((start + k * self.frame_dt, f))
            self.last_due = self._queue[-1][0]
            self._cond.notify_all()

    def next_step_at(self) -> float:
        """When the worker should start its next step so the chunk lands as the last one ends."""
        with self._cond:
            return self.last_due + self.frame_dt - self.step_s - self.margin_s

    def pop(self, timeout: float) -> Frame | None:
        """The newest frame that is due, waiting up to ``timeout`` s; None if none fell due."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._queue and self._queue[0][0] <= now:
                    item = self._queue.popleft()[1]
                    while self._queue and self._queue[0][0] <= now:   # the page fell behind: skip
                        item = self._queue.popleft()[1]
                        self.dropped += 1
                    item.shown_at = now
                    return item
                if now >= end:
                    return None
                wait = end - now
                if self._queue:
                    wait = min(wait, self._queue[0][0] - now)
                self._cond.wait(max(wait, 0.0005))

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


# ----------------------------------------------------------------------------- stream slots
class Slots:
    """At most ``n`` streams at once; the rest wait in arrival order."""

    def __init__(self, n: int):
        self.n = max(1, int(n))
        self._holders: set[str] = set()
        self._waiting: list[str] = []
        self._cond = threading.Condition()

    def acquire(self, sid: str, timeout: float = 0.0) -> int:
        """0 once ``sid`` holds a slot, else its 1-based place in the line (after waiting up to timeout)."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                if sid in self._holders:
                    return 0
                if sid not in self._waiting:
                    self._waiting.append(sid)
                place = self._waiting.index(sid)
                if len(self._holders) + place < self.n:
                    self._waiting.remove(sid)
                    self._holders.add(sid)
                    return 0
                left = end - time.monotonic()
                if left <= 0:
                    return place + 1 - (self.n - len(self._holders))
                self._cond.wait(left)

    def leave_line(self, sid: str) -> None:
        with self._cond:
            if sid in self._waiting:
                self._waiting.remove(sid)
                self._cond.notify_all()

    def release(self, sid: str) -> None:
        with self._cond:
            self._holders.discard(sid)
            if sid in self._waiting:
                self._waiting.remove(sid)
            self._cond.notify_all()

    def holds(self, sid: str) -> bool:
        with self._cond:
            return sid in self._holders

    @property
    def in_use(self) -> int:
        with self._cond:
            return len(self._holders)


# ----------------------------------------------------------------------------- events to the page
@dataclass
class StreamEvent:
    """What ``Session.stream()`` yields: a frame to show, or a status line."""
    kind: str                        # frame | waiting | status | stopped | error
    frame: Frame | None = None
    message: str = ""
    stats: str | None = None         # a fresh readout line (about twice a second)
    preview: np.ndarray | None = None  # a fresh "what drives the avatar" image


@dataclass
class Timings:
    """Rolling readouts of one stream."""
    step_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    dit_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    decode_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    pose_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    latency_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=16))
    shown: collections.deque = field(default_factory=lambda: collections.deque(maxlen=96))
    made: collections.deque = field(default_factory=lambda: collections.deque(maxlen=96))
    steps: int = 0                   # steps made in this stream (the deques keep only the newest)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_step(self, t: StepTiming, made_at: float, frames: int) -> None:
        with self._lock:
            self.step_ms.append(t.total_ms)
            self.dit_ms.append(t.dit_ms)
            self.decode_ms.append(t.decode_ms)
            self.made.extend([made_at] * frames)
            self.steps += 1

    def steps_since(self, seen: int) -> tuple[int, list[float]]:
        """(steps made so far, step times in ms of the steps after the first ``seen`` that are still held)."""
        with self._lock:
            new = min(self.steps - seen, len(self.step_ms))
            return self.steps, (list(self.step_ms)[-new:] if new > 0 else [])

    @staticmethod
    def med(d: collections.deque) -> float | None:
        return float(np.median(list(d))) if d else None

    @staticmethod
    def rate(d: collections.deque, now: float, span: float = 2.0, least: float = 0.25) -> float:
        """Events per second over the last ``span`` seconds: the events after the window's first
        timestamp over the time since it. Frames made by one step share a timestamp, so a
        window must cover ``least`` seconds (a few steps) before it says anything (0 until then)."""
        ts = [t for t in list(d) if now - t <= span]
        if not ts or ts[-1] - ts[0] < least:
            return 0.0
        return sum(1 for t in ts if t > ts[0]) / (ts[-1] - ts[0])


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
        self.detector: PoseDetector | None = None
        self.pose_source = "webcam"                   # webcam | motion
        self.webcam_shape: tuple[int, int] | None = None
        self.webcam_note = ""                          # why the last webcam frame could not be used
        self.player = FramePlayer(manager.fps)
        self.timings = Timings()
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
        """One webcam frame: detect the body, feed the pose control; returns the preview (frame + skeleton)."""
        self.touch()
        rgb = as_rgb_frame(frame)
        t = time.monotonic()
        if self.mode != "avatar" or self.pose_source != "webcam":
            return None if rgb is None else _preview(rgb, None)
        if rgb is None:
            self.webcam_note = _unusable(frame)
            self.pose.push(None, t)
            return None
        self.webcam_note = ""
        self.webcam_shape = rgb.shape[:2]
        if self.detector is None:
            self.detector = PoseDetector(model_complexity=1)
        t0 = time.perf_counter()
        lm = self.detector.detect(_shrink(rgb, DETECT_WIDTH))     # landmarks are normalised: any scale will do
        self.timings.pose_ms.append((time.perf_counter() - t0) * 1e3)
        H, W = rgb.shape[:2]
        self.pose.push(None if lm is None else to_square(lm, W, H), t)
        self.control_at = t
        preview = _preview(rgb, lm)
        if self.pose.retargeter is None:
            return preview
        # beside the driver, the retargeted pose the model receives
        return np.concatenate([preview, _pose_canvas(self.pose.current(), preview.shape[0])], 1)

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
        return self.engine

    def _reset_engine(self) -> np.ndarray:
        engine = self._ensure_engine()
        if self.recorder is not None and self.recorder.size != engine.size + engine.size % 2:
            self.stop_recording()                  # another model, another resolution: a new file
        img = self.first_frame(self.mode)
        if img is None:
            img = np.full((engine.size, engine.size, 3), 127, np.uint8)
        first = engine.reset(img, int(self.seed))
        self.camera.reset()
        if engine.mode == "pose":
            self.pose.set_body(self.avatar_body(np.asarray(img)))
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
        now = time.monotonic()
        if engine.mode == "camera":
            return self.camera.next_frames(engine.fpl)
        if engine.mode == "pose":
            return self.pose.next_frames(engine.fpl, now)
        return None

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
            self.timings = Timings()
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
            if self.detector is not None:
                self.detector.close()
                self.detector = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------ recording
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
                    preview = _pose_canvas(self.pose.current(), 192)
                yield StreamEvent("frame", frame=frame, stats=stats, preview=preview)
            yield StreamEvent("stopped", message=self.message or "Stopped.")
        finally:
            if me == self._consumer and self.state in ("running", "waiting"):
                self.stop("Stopped.")          # nobody is watching any more

    _last_latency_mark = 0.0

    def readout(self, now: float | None = None) -> str:
        """One line of live numbers for the page."""
        now = time.monotonic() if now is None else now
        T = self.timings
        parts = [f"**{T.rate(T.shown, now):.1f} fps** shown", f"{T.rate(T.made, now):.1f} fps made"]
        if T.step_ms:
            parts.append(f"step {T.med(T.step_ms):.0f} ms (DiT {T.med(T.dit_ms):.0f} · decode {T.med(T.decode_ms):.0f})")
        if self.mode == "avatar" and self.pose_source == "webcam" and T.pose_ms:
            size = f" of {self.webcam_shape[1]}×{self.webcam_shape[0]}" if self.webcam_shape else ""
            parts.append(f"pose {T.med(T.pose_ms):.0f} ms{size} ({self.pose.status})")
        elif self.mode == "avatar":
            parts.append(self.pose.status)
        if self.mode == "avatar" and self.pose_source == "webcam":
            parts.append(f"retarget: {self.pose.retarget_mode or 'off'}")
            if self.body_note:
                parts.append(self.body_note)
        if self.mode == "avatar" and self.pose_source == "webcam" and self.webcam_note:
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


DETECT_WIDTH = 320     # MediaPipe takes 41 ms a 640x480 frame here and 24 ms at 320x240, same landmarks


def _unusable(frame: object) -> str:
    """Why a webcam frame gave no picture (``as_rgb_frame`` returned None), for the readout."""
    if frame is None:
        return "no frame arrived (is the camera allowed and free?)"
    shape = getattr(frame, "shape", None)
    if not shape:
        return "the frame was not an image"
    if len(shape) >= 2 and min(shape[:2]) < MIN_SIDE:
        return f"the frame ({shape[1]}×{shape[0]}) is too small to find a person in"
    return f"the frame has an unusable layout {tuple(shape)}"


def _shrink(rgb: np.ndarray, width: int) -> np.ndarray:
    """The frame at most ``width`` wide (area-averaged)."""
    import cv2

    H, W = rgb.shape[:2]
    if W <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(H * width / W))), interpolation=cv2.INTER_AREA)


def _preview(rgb: np.ndarray, landmarks: np.ndarray | None, width: int = 240) -> np.ndarray:
    """A small copy of a webcam frame with the skeleton and the square the model sees."""
    import cv2

    out = draw_skeleton(_shrink(rgb, width), landmarks)
    sh, sw = out.shape[:2]
    s = min(sh, sw)
    x0, y0 = (sw - s) // 2, (sh - s) // 2
    cv2.rectangle(out, (x0, y0), (x0 + s - 1, y0 + s - 1), (255, 255, 255), 1)
    return out


def _pose_canvas(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The pose driving the avatar, drawn on a dark square."""
    return draw_skeleton(np.full((size, size, 3), 24, np.uint8), landmarks)


# ----------------------------------------------------------------------------- the manager
class SessionManager:
    """All sessions of the app: creation, stream slots, idle clean-up."""

    def __init__(self, store: ModelStore, defaults: dict[str, np.ndarray | None], motions: dict[str, Path],
                 max_streams: int = 2, idle_timeout: float = 300.0, fps: float = 24.0, max_record_s: float = 600.0,
                 record_dir: str | None = None, describe=None, orphan_s: float = 15.0, reap_every: float = 2.0,
                 example_poses: dict[str, np.ndarray] | None = None):
        """``example_poses``: {image digest: true (33, 4) pose} of the shipped avatar renders (app/examples.py)."""
        self.store = store
        self.defaults = defaults
        self.example_poses = example_poses or {}
        self.motions = motions
        self.slots = Slots(max_streams)
        self.idle_timeout = idle_timeout
        self.fps = fps
        self.max_record_s = max_record_s
        self.record_dir = record_dir
        self.describe = describe or (lambda e: f"{type(e).__name__}")
        self.orphan_s = orphan_s              # a running stream nobody pulled frames from this long is stopped
        self.reap_every = reap_every
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        modes = [m for m in ("avatar", "world") if store.for_mode(m)]
        self.default_mode = modes[0] if modes else "world"
        self._reaper = threading.Thread(target=self._reap, name="session-reaper", daemon=True)
        self._closing = threading.Event()
        self._reaper.start()

    def get(self, sid: str | None) -> Session:
        sid = sid or "anonymous"
        with self._lock:
            s = self.sessions.get(sid)
            if s is None or s.state == "closed":
                s = self.sessions[sid] = Session(sid, self)
            return s

    def peek(self, sid: str | None) -> Session | None:
        with self._lock:
            return self.sessions.get(sid or "anonymous")

    def close(self, sid: str | None) -> None:
        with self._lock:
            s = self.sessions.pop(sid or "anonymous", None)
        if s is not None:
            s.close()

    def default_frame(self, mode: str) -> np.ndarray | None:
        return self.defaults.get(mode)

    def unavailable_message(self, mode: str) -> str:
        kind = "avatar (pose-driven)" if mode == "avatar" else "world (camera-driven)"
        control = "pose" if mode == "avatar" else "camera"
        return (f"No {kind} model is installed yet, so {mode} mode is unavailable. Add one to the assets "
                f"folder (autoencoder/ and generator/ with control \"{control}\") or start the app with --assets.")

    def waiting_message(self, place: int | None) -> str:
        n = self.slots.n
        where = f" You are number {place} in line." if place else ""
        return f"All {n} stream slot{'s' if n != 1 else ''} are in use: waiting for a free slot.{where}"

    def running(self) -> int:
        return self.slots.in_use

    def _reap(self) -> None:
        while not self._closing.wait(self.reap_every):
            now = time.monotonic()
            with self._lock:
                items = list(self.sessions.items())
            for sid, s in items:
                try:
                    if s.state == "running" and now - s.last_pull > self.orphan_s:
                        s.stop("Stopped: the page stopped showing frames.")        # orphaned stream
                    if now - s.last_input > self.idle_timeout and now - s.last_pull > min(5.0, self.orphan_s):
                        self.close(sid)                                         # idle: free the engine
                    elif (s.state != "running" and self.slots.holds(sid)
                          and now - s.last_input > min(self.idle_timeout, 120.0)):
                        self.slots.release(sid)                                 # an API client went quiet
                except Exception:  # noqa: BLE001 - the reaper must survive anything
                    log.exception("reaping session %s", sid[:8])

    def shutdown(self) -> None:
        self._closing.set()
        with self._lock:
            sids = list(self.sessions)
        for sid in sids:
            self.close(sid)
