"""One attempt's result: an OpenAI-shaped success (body or open stream) or a gateway error.

An attempt may be synthetic: a target that could not be called, or (later) one served from
the cache or skipped because its circuit breaker is open. Routing reads only ``status``,
``headers`` and ``discard``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aigw.config.model import Target
from aigw.context import AttemptSource
from aigw.errors import GatewayError

if TYPE_CHECKING:
    from aigw.calls.stream import EventStream
    from aigw.providers.base import Provider


class Attempt:
    __slots__ = ("target", "status", "source", "provider", "headers", "body", "stream", "error", "usage", "secret")

    def __init__(self, target: Target, status: int, *, source: AttemptSource = AttemptSource.PROVIDER,
                 provider: Provider | None = None, headers: Mapping[str, str] | None = None,
                 error: GatewayError | None = None, secret: str | None = None) -> None:
        self.target = target
        self.status = status
        self.source = source
        self.provider = provider
        # The provider's response headers worth passing on (scrubbed when they leave).
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        # Success: the OpenAI-shaped body, or the open stream of OpenAI SSE events.
        self.body = b""
        self.stream: EventStream | None = None
        # Failure: what the client is told if routing ends here.
        self.error = error
        self.usage: Mapping[str, Any] | None = None
        # The provider key this attempt used: scrubbed from whatever it returns.
        self.secret = secret

    def __repr__(self) -> str:
        return f"Attempt({self.target.path}, {self.status}, {self.source})"

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    @property
    def provider_name(self) -> str | None:
        return self.provider.name if self.provider is not None else self.target.provider

    async def discard(self) -> None:
        """Release the upstream response when routing moves on without this attempt."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    @classmethod
    def failed(cls, target: Target, error: GatewayError, *, source: AttemptSource = AttemptSource.UNCALLABLE,
               provider: Provider | None = None) -> Attempt:
        return cls(target, error.status, source=source, provider=provider, error=error)
