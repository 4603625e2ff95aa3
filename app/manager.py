"""All sessions of the app: one ``Session`` per browser tab, made on first use, at most
``max_streams`` streaming at once (``Slots``: the rest wait in line), and a reaper thread that stops
orphaned streams and frees idle sessions (no UI imports)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from app.models import ModelStore
from app.session import Session
from app.slots import Slots

log = logging.getLogger(__name__)


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
