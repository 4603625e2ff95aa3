"""Stream slots: at most ``n`` streams generate at once, the rest wait in line (no UI imports)."""
from __future__ import annotations

import threading
import time


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
