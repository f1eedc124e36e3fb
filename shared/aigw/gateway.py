"""The gateway's per-environment state: settings, authenticator, upstream transport,
randomness and clock.

Built once per process (a Lambda execution environment, the local server) from the
environment; tests build one with their own settings, seeded randomness and fake sleep.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aigw.auth import Authenticator, authenticator_for
from aigw.settings import Settings
from aigw.upstream.transport import Transport, make_transport


def transport_for(settings: Settings, default_client: str = "aiohttp") -> Transport:
    return make_transport(
        settings.upstream_client or default_client,
        settings.trusted_custom_hosts,
        settings.upstream_pool_size,
        settings.upstream_connect_timeout_ms / 1000,
    )


@dataclass
class Gateway:
    settings: Settings
    auth: Authenticator
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    # Which transport to build when UPSTREAM_CLIENT does not say (see aigw.upstream.transport).
    default_client: str = "aiohttp"
    _transport: Transport | None = field(default=None, repr=False)

    @property
    def transport(self) -> Transport:
        """Built on first use, so routes that never call a provider (health) never import one."""
        if self._transport is None:
            self._transport = transport_for(self.settings, self.default_client)
        return self._transport

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, *, default_client: str = "aiohttp") -> Gateway:
        settings = Settings.from_env(env)
        return cls(settings=settings, auth=authenticator_for(settings.auth_mode), default_client=default_client)
