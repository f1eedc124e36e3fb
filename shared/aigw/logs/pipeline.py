"""The in-process log pipeline of a long-lived server (``make run``): the completion callback
builds each request's record and queues it; a task drains the queue in batches into the log
store, in a worker thread (file and network writes never block the event loop). Logging adds no
client-visible latency (the callback only builds and queues) and never fails a request.

A record that cannot be written is retried a few times, then written as one structured line to
stderr (never lost silently) and counted. Closing the pipeline writes what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable

import orjson

from aigw.context import RequestContext
from aigw.logs.record import LogRecord, build_record
from aigw.logs.stores.base import LogStore

log = logging.getLogger("aigw")

BATCH = 100
MAX_QUEUED = 10_000  # requests waiting for their record: beyond it they are counted as dropped
CLOSE_TIMEOUT_S = 10.0
WINDOW_S = 0.2  # how long a batch waits for more records
ATTEMPTS = 3


class LocalLogPipeline:
    def __init__(self, store: LogStore, service: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self._service, self._clock = store, service, clock
        self._queue: asyncio.Queue[tuple[RequestContext, float]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failed = 0
        self._last_drop_warning = -10.0

    def start(self) -> None:
        self._queue = asyncio.Queue(MAX_QUEUED)
        self._task = asyncio.ensure_future(self._drain())

    def __call__(self, ctx: RequestContext) -> None:
        """The completion callback: the request (over, so no longer changing) is queued with the
        time it ended; its record is built with its batch, off the request path."""
        if self._queue is None:
            self._dropped("the pipeline is closed")
            return
        try:
            self._queue.put_nowait((ctx, self._clock()))
        except asyncio.QueueFull:  # the store is far behind: memory stays bounded, the loss is counted
            self._dropped("the log queue is full")

    def _dropped(self, why: str) -> None:
        self.failed += 1
        now = time.monotonic()
        if now - self._last_drop_warning >= 10:
            self._last_drop_warning = now
            log.warning("%s", orjson.dumps({"event": "log_records_dropped", "reason": why,
                                            "dropped_so_far": self.failed}).decode())

    async def _drain(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            # Wait a little for more: one hop to the writer thread per batch, not per request.
            deadline = loop.time() + WINDOW_S
            while len(batch) < BATCH:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
            try:
                await loop.run_in_executor(None, self._build_and_write, batch)
            except Exception as exc:  # never the end of the pipeline: the next batch goes on
                self.failed += len(batch)
                log.error("a log batch failed: %s", type(exc).__name__)
            finally:
                for _ in batch:
                    queue.task_done()

    def _build_and_write(self, batch: list[tuple[RequestContext, float]]) -> None:
        records = []
        for ctx, ended in batch:
            try:
                records.append(build_record(ctx, self._service, ended))
            except Exception as exc:  # a record that cannot be built is a bug: said, never silent
                self.failed += 1
                log.error("log record of %s could not be built (%s)", getattr(ctx, "trace_id", "?"), type(exc).__name__)
        if records:
            self._write(records)

    def _write(self, batch: list[LogRecord]) -> None:
        for attempt in range(ATTEMPTS):
            try:
                self.written += self.store.put_many(batch)
                return
            except Exception as exc:  # a store failure: retried, then kept on stderr
                if attempt == ATTEMPTS - 1:
                    self.failed += len(batch)
                    for record in batch:
                        _to_stderr(record, exc)
                else:
                    time.sleep(0.05 * (attempt + 1))

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            left = self._queue.qsize() if self._queue is not None else 0
            self.failed += left
            log.error("log pipeline closed with %d records unwritten (the store did not keep up)", left)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._queue = None
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def _to_stderr(record: LogRecord, error: Exception) -> None:
    """The record, already free of secrets, as one line a log collector keeps. Never raises."""
    line = b'{"event":"log_record_unwritten","error":' + orjson.dumps(type(error).__name__) + \
        b',"log_id":' + orjson.dumps(record.log_id) + b',"record":' + record.document + b"}\n"
    try:
        sys.stderr.flush()
        os.write(2, line)  # the process's stderr, whatever sys.stderr was replaced with
    except Exception:  # nowhere left to write: counted by the caller
        pass
    log.error("log record %s could not be written (%s)", record.log_id, type(error).__name__)
