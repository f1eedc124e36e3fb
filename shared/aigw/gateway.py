"""The gateway's per-environment state: settings, authenticator, randomness and clock.

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


@dataclass
class Gateway:
    settings: Settings
    auth: Authenticator
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Gateway:
        settings = Settings.from_env(env)
        return cls(settings=settings, auth=authenticator_for(settings.auth_mode))
