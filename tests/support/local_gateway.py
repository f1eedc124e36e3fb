"""The real local server (uvicorn + the gateway's ASGI app) on a free loopback port, in a thread."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import uvicorn

from aigw.adapters.asgi import GatewayApp
from aigw.adapters.http_protocol import bounded_protocol
from aigw.gateway import Gateway
from aigw.routes import ROUTES
from aigw.settings import Settings


class Sleeps:
    """Records retry waits and sleeps only a scaled-down fraction of them, so tests stay fast."""

    def __init__(self, scale: float = 0.0) -> None:
        self.waits: list[float] = []
        self.scale = scale

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds * self.scale)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalGateway:
    def __init__(self, settings: Settings | None = None, seed: int = 1234, client: str = "aiohttp",
                 clock: Callable[[], float] = time.time) -> None:
        self.sleeps = Sleeps()
        settings = settings or Settings()
        settings = replace(settings, upstream_client=client)
        self.gateway = Gateway(settings=settings, rng=random.Random(seed), sleep=self.sleeps, clock=clock)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            GatewayApp(ROUTES, self.gateway), host="127.0.0.1", port=self.port, loop="uvloop",
            http=bounded_protocol(settings.max_header_bytes, header_timeout_s=2.0,
                                  body_timeout_s=settings.request_body_timeout_ms / 1000,
                                  write_timeout_s=settings.response_write_timeout_ms / 1000),
            log_level="warning", access_log=False, lifespan="on", ws="none",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LocalGateway:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("local gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
