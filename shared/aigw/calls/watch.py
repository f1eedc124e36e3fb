"""Time bounds of one upstream call: a deadline for the whole call, an idle bound for each wait.

Checked by one sweep per event loop, every ``TICK`` seconds while any call is in flight, not by
a timer per call or an ``asyncio.timeout`` per await: on the default event loop (Lambda's) a
timer armed and cancelled per call measured ~40 000 instructions a request, a fifth more than
the rest of the gateway's own work; joining and leaving the sweep costs a set insertion. Bounds
are therefore honoured within ``TICK`` (50 ms). Between waits nothing counts: a wait only notes
when it began, so time spent handing a chunk to a slow client is not idle time. When a sweep
finds a wait past its bound it cancels the task, and that wait raises ``Expired`` (the
cancellation is taken back, as ``asyncio.timeout`` does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar
from weakref import WeakKeyDictionary, ref

T = TypeVar("T")
DEADLINE = "deadline"
IDLE = "idle"
TICK = 0.05


class Expired(TimeoutError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # DEADLINE or IDLE


class _Sweep:
    """The watches of one event loop in flight, checked every ``TICK`` while there are any.

    Holds no reference to its loop or its pending timer (only the loop does): a closed loop,
    tests make many, is collected with its last timer instead of living on in ``_SWEEPS``."""

    __slots__ = ("_loop", "watches", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = ref(loop)
        self.watches: set[Watch] = set()
        self._armed = False

    def add(self, watch: Watch, loop: asyncio.AbstractEventLoop) -> None:
        self.watches.add(watch)
        if not self._armed:
            self._armed = True
            loop.call_at(loop.time() + TICK, self._sweep)

    def remove(self, watch: Watch) -> None:
        self.watches.discard(watch)

    def _sweep(self) -> None:
        loop = self._loop()
        if loop is None or not self.watches:
            self._armed = False
            return
        now = loop.time()
        for watch in list(self.watches):
            watch._check(now)
        loop.call_at(now + TICK, self._sweep)


_SWEEPS: WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweep] = WeakKeyDictionary()


def _sweep_of(loop: asyncio.AbstractEventLoop) -> _Sweep:
    sweep = _SWEEPS.get(loop)
    if sweep is None:
        sweep = _SWEEPS[loop] = _Sweep(loop)
    return sweep


class Watch:
    __slots__ = ("_deadline", "_idle_s", "_loop", "_sweep", "_since", "_task", "_fired", "_cancelling",
                 "__weakref__")

    def __init__(self, deadline: float | None, idle_s: float | None = None) -> None:
        """``deadline``: loop time by which every wait must be over (None: none); ``idle_s``: the
        longest any one wait may last (None: no such bound, e.g. before an answer's first byte)."""
        self._loop = asyncio.get_running_loop()
        self._sweep: _Sweep | None = None
        self._deadline = deadline
        self._idle_s = idle_s
        self._since: float | None = None  # when the current wait began; None between waits
        self._task: asyncio.Task[object] | None = None
        self._fired: str | None = None
        self._cancelling = 0  # the task's pending cancellations when the wait began

    def idle(self, idle_s: float) -> None:
        """From now on each wait is also bounded by ``idle_s`` (the answer has begun)."""
        self._idle_s = idle_s

    def __enter__(self) -> Watch:
        """``with watch: await ...``: one bounded wait. The form for the hottest loops (a chunk
        read): unlike ``wait``, it makes no coroutine per wait."""
        self._since = self._loop.time()
        task = self._task = asyncio.current_task()
        self._cancelling = task.cancelling() if task is not None else 0
        if self._sweep is None and (self._deadline is not None or self._idle_s is not None):
            self._sweep = _sweep_of(self._loop)
            self._sweep.add(self, self._loop)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        """The wait is over; a cancellation this watch caused becomes ``Expired``."""
        self._since = None
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            expired = self._expired()
            if expired is not None:
                raise expired from None

    def _expired(self) -> Expired | None:
        """On ``CancelledError`` in a wait: the ``Expired`` to raise if this watch caused it (the
        cancellation is then taken back), None if someone else did (pass it on)."""
        reason = self._fired
        if reason is None:
            return None
        self._fired = None
        if self._task is not None and self._task.uncancel() > self._cancelling:
            return None  # someone else cancelled too (the client left): that one wins
        return Expired(reason)

    async def wait(self, awaitable: Awaitable[T]) -> T:
        with self:
            return await awaitable

    def _check(self, now: float) -> None:
        since = self._since
        if since is None or self._fired is not None:
            return  # between waits, or already told
        idle_s, deadline = self._idle_s, self._deadline
        if deadline is not None and now >= deadline:
            reason = DEADLINE
        elif idle_s is not None and now - since >= idle_s:
            reason = IDLE
        else:
            return
        if self._task is not None and not self._task.done():
            self._fired = reason
            self._task.cancel()

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.remove(self)
            self._sweep = None
