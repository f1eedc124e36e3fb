"""What the gateway knows about one request while it serves it, and who is told when it ends.

A ``RequestContext`` is made by the shell when a request arrives and travels through the
stages (resolve, parse, route, respond) and every upstream attempt: trace id, the
authenticated principal, the resolved config, each attempt made, token usage, cache status,
hook results. Once the body or the last stream chunk has been sent, or the client left, the
shell calls ``complete`` and every completion callback gets the context (the log record of
the logging pipeline hangs here). Callbacks never fail a request: one that raises is logged
by type and place only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aigw.errors import ErrorFormat, GatewayError, InvalidHeader

if TYPE_CHECKING:
    from aigw.auth import Principal
    from aigw.calls.spec import CallSpec
    from aigw.config.model import Target
    from aigw.request import GatewayRequest

log = logging.getLogger("aigw")
MAX_TRACE_ID = 256


def new_trace_id() -> str:
    """A random (version 4) UUID. Not ``uuid.uuid4``: the uuid module costs ~6 ms of cold start."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def trace_id_from(headers: Mapping[str, str]) -> str:
    """The client's ``x-portkey-trace-id``, or a new one; an invalid one is a 400."""
    raw = headers.get("x-portkey-trace-id")
    if raw is None:
        return new_trace_id()
    if not raw or len(raw) > MAX_TRACE_ID or not raw.isprintable():
        raise InvalidHeader(f"x-portkey-trace-id must be 1 to {MAX_TRACE_ID} printable characters",
                            param="x-portkey-trace-id")
    return raw


class AttemptSource(StrEnum):
    PROVIDER = "provider"  # a real call to the provider
    UNCALLABLE = "uncallable"  # the target could not be called (no key, no deployment, ...)
    CACHE = "cache"  # served from the response cache (cache-store issue)
    SKIPPED = "skipped"  # not tried, e.g. its circuit breaker is open (cache-store issue)


class AttemptRecord:
    """One try of one target, as the log record and the response headers need it.

    (Plain classes with ``__slots__`` here and for the other per-request types: a dataclass
    costs ~0.6 ms of each route function's cold start to create.)"""

    __slots__ = ("path", "provider", "source", "status", "started_ms", "duration_ms", "retry_index",
                 "error_code", "retried")

    def __init__(self, path: str, provider: str | None, source: AttemptSource, status: int, started_ms: float,
                 duration_ms: float, retry_index: int = 0, error_code: str | None = None) -> None:
        self.path = path  # the target's config path, as in x-portkey-last-used-option-index
        self.provider = provider
        self.source = source
        self.status = status
        self.started_ms = started_ms  # since the request arrived
        self.duration_ms = duration_ms
        self.retry_index = retry_index  # 0 for the first try of this target, n for its n-th retry
        self.error_code = error_code
        self.retried = False  # a later attempt retried this target

    def __repr__(self) -> str:
        return f"AttemptRecord({self.path}, {self.source}, {self.status}, retry {self.retry_index})"


class Completion(StrEnum):
    SENT = "sent"  # the body or the last chunk was handed to the client
    CLIENT_GONE = "client_gone"  # the client left before the end
    FAILED = "failed"  # the gateway could not finish sending (a bug or a broken stream)


CompletionCallback = Callable[["RequestContext"], None]


_NO_METADATA: Mapping[str, Any] = {}
_NO_STICKY: list[tuple[str, str]] = []  # shared and never appended to: a sticky request gets its own


class RequestContext:
    __slots__ = ("request", "trace_id", "error_format", "deadline", "started_at", "started_mono", "principal",
                 "config", "spec", "metadata", "_tries", "_records", "usage", "cache_status", "sticky", "hook_results", "response_body", "secrets",
                 "last_used_path", "retries", "status", "error", "stream_broken", "completion", "_callbacks")

    def __init__(self, request: GatewayRequest, trace_id: str, error_format: ErrorFormat = ErrorFormat.OPENAI,
                 deadline: float | None = None) -> None:
        self.request = request
        self.trace_id = trace_id
        self.error_format = error_format
        # Monotonic seconds by which the work must be over (Lambda: the invocation's remaining time).
        self.deadline = deadline
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.principal: Principal | None = None
        self.config: Target | None = None
        # What every attempt of this request shares (set by the parse stage).
        self.spec: CallSpec | None = None
        self.metadata: Mapping[str, Any] = _NO_METADATA
        # Each attempt as it happened, kept raw; AttemptRecords are made when first read (the
        # log record reads them after the response): ~6 000 instructions less per request.
        self._tries: list[tuple[str, str | None, AttemptSource, int, float, float, str | None]] = []
        self._records: list[AttemptRecord] | None = None
        self.usage: Mapping[str, Any] | None = None
        self.cache_status = "DISABLED"
        # Sticky loadbalance decisions taken for this request: (node path, HIT | NEW | REPICK).
        self.sticky: list[tuple[str, str]] = _NO_STICKY
        self.hook_results: list[Any] = []
        # The body the client got (a stream: the answer assembled from it), kept only when a
        # completion callback will read it (the log record).
        self.response_body: bytes | None = None
        # Every key the request carries (its provider key, the gateway key, the config's keys):
        # what its response, its cached answer and its log record are scrubbed of.
        self.secrets: tuple[str, ...] = ()
        # The target that answered, its retries (-1: they ran out), the status sent, and the error
        # the client was told (a stream's error event included).
        self.last_used_path: str | None = None
        self.retries = 0
        self.status: int | None = None
        self.error: GatewayError | None = None
        self.stream_broken = False
        self.completion: Completion | None = None
        self._callbacks: list[CompletionCallback] = []

    def __repr__(self) -> str:
        return f"RequestContext({self.trace_id}, {self.request.method} {self.request.path}, status {self.status})"

    def remaining_s(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def record(self, path: str, provider: str | None, source: AttemptSource, status: int, started_mono: float,
               ended_mono: float, error_code: str | None) -> None:
        """One attempt, as the call chain saw it (monotonic seconds)."""
        self._tries.append((path, provider, source, status, started_mono, ended_mono, error_code))
        self._records = None

    def skipped(self, target: Target) -> None:
        """A target not tried because its circuit breaker is open (a synthetic attempt)."""
        now = time.monotonic()
        self.record(target.path, target.provider, AttemptSource.SKIPPED, 503, now, now, "circuit_open")

    @property
    def attempts(self) -> list[AttemptRecord]:
        """Every attempt made, in order, with its timing and whether it was retried."""
        if self._records is None:
            records: list[AttemptRecord] = []
            last_of: dict[str, AttemptRecord] = {}
            for path, provider, source, status, started, ended, code in self._tries:
                record = AttemptRecord(path, provider, source, status, (started - self.started_mono) * 1000,
                                       (ended - started) * 1000, 0, code)
                earlier = last_of.get(path)
                if earlier is not None:
                    earlier.retried = True
                    record.retry_index = earlier.retry_index + 1
                last_of[path] = record
                records.append(record)
            self._records = records
        return self._records

    def on_complete(self, callback: CompletionCallback) -> None:
        self._callbacks.append(callback)

    @property
    def observed(self) -> bool:
        """Whether anything will read this request once it is over (then its body is kept)."""
        return bool(self._callbacks)

    def stream_failed(self, error: GatewayError) -> None:
        """The stream ended with an error event (it broke or stalled after its first byte)."""
        self.error, self.stream_broken = error, True

    def complete(self, how: Completion) -> None:
        """Called once by the shell when the response is over; later calls do nothing."""
        if self.completion is not None:
            return
        self.completion = Completion.FAILED if how is Completion.SENT and self.stream_broken else how
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:  # a callback must never fail the request or hide the others
                log.error("completion callback %s failed with %s", getattr(callback, "__qualname__", "?"),
                          type(exc).__name__)
