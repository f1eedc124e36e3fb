"""Closing an async iterator that may be a generator: one helper for every stream stage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def aclose(source: AsyncIterator[Any]) -> None:
    """Close ``source`` now if it can be closed (an async generator): a stage closed early (the
    client left) closes what feeds it, down to the upstream connection, at once."""
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()
