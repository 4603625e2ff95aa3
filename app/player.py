"""Frame pacing and the readouts of one stream (no UI imports).

``FramePlayer`` paces the chunks of frames the session's worker makes: the worker asks it when to
step (``next_step_at``) and pushes each chunk; the page's generator pops frames as they fall due.
A frame the page could not show in time is dropped, never queued, so latency cannot grow.
``Timings`` holds the rolling numbers of the page's readout line.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from model.engine import StepTiming


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


@dataclass
class Timings:
    """Rolling readouts of one stream."""
    step_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    dit_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    decode_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=48))
    # pose detection: a session passes its webcam tracker's own (controls/tracker.py WebcamTracker)
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
