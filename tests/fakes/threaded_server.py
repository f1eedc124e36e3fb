"""Base of the fake servers: an ``aiohttp.web`` app in a daemon thread with its own event loop.

Sync tests, async tests and subprocesses can all call ``base_url`` (127.0.0.1 and a free port
unless told otherwise). A subclass implements ``_handle(request)``, which gets every request
(any method, any path), and names its thread with ``thread_name``::

    with SomeFake() as fake:        # start() ... stop()
        urlopen(fake.url("/path"))
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self

from aiohttp import web


class ThreadedServer:
    """An aiohttp server in a background thread; ``start``/``stop`` or use it as a context manager."""

    thread_name = "fake-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 0.25) -> None:
        self.host, self._port, self._shutdown_timeout = host, port, shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._thread is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self._port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, errors), name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            self._thread = None
            raise RuntimeError(f"{type(self).__name__} failed to start") from (errors[0] if errors else None)
        return self

    def stop(self) -> None:
        """Close all connections (in-flight handlers get ``shutdown_timeout``) and join the thread."""
        thread, loop, runner = self._thread, self._loop, self._runner
        if thread is None or loop is None:
            return
        if runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(self._shutdown_timeout + 5)
            except Exception:  # noqa: BLE001 - best effort; the loop is stopped below anyway
                pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    @staticmethod
    def _drop(request: web.Request) -> None:
        # Close the socket under aiohttp; its later writes fail with ConnectionError, which it ignores.
        if request.transport is not None:
            request.transport.close()

    # ------------------------------------------------------------------ server thread

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            errors.append(exc)
        ready.set()
        if not errors:
            loop.run_forever()
        # Loop stopped: cancel leftovers so nothing warns about pending tasks.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
