"""Whether a remote store is usable: one warning per outage, not one per request, and while it
is down at most one request per interval spends its time probing it (the others skip it at once)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson

log = logging.getLogger("aigw")

PROBE_EVERY_S = 1.0


class Availability:
    __slots__ = ("_store", "_clock", "_probe_every_s", "up", "_down_since", "_next_probe")

    def __init__(self, store: str, clock: Callable[[], float], probe_every_s: float = PROBE_EVERY_S) -> None:
        self._store, self._clock, self._probe_every_s = store, clock, probe_every_s
        self.up = True
        self._down_since = 0.0
        self._next_probe = 0.0

    def usable(self) -> bool:
        """Up, or down and due for a probe (this caller is the probe)."""
        if self.up:
            return True
        now = self._clock()
        if now < self._next_probe:
            return False
        self._next_probe = now + self._probe_every_s
        return True

    def failed(self, error: BaseException) -> None:
        now = self._clock()
        self._next_probe = now + self._probe_every_s
        if self.up:
            self.up, self._down_since = False, now
            # The error's type only: a redis error message can carry the URL (and its password).
            log.warning("%s", orjson.dumps({"event": "cache_store_unavailable", "store": self._store,
                                            "error": type(error).__name__}).decode())

    def succeeded(self) -> None:
        if not self.up:
            self.up = True
            log.warning("%s", orjson.dumps({"event": "cache_store_recovered", "store": self._store,
                                            "outage_s": round(self._clock() - self._down_since, 3)}).decode())
