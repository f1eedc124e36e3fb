"""Retry timing: exponential backoff with full jitter, and the provider's ``Retry-After``. Pure."""

from __future__ import annotations

import random
from collections.abc import Mapping


def backoff_ms(retry_number: int, base_ms: int, cap_ms: int, rng: random.Random) -> float:
    """Delay before retry ``retry_number`` (1-based): uniform in [0, min(cap, base * 2**(n-1))]."""
    ceiling = min(cap_ms, base_ms * (2 ** (retry_number - 1)))
    return float(rng.random() * ceiling)


def retry_after_ms(headers: Mapping[str, str], now_s: float) -> float | None:
    """The wait a provider asks for: ``retry-after-ms``, or ``retry-after`` in seconds or as a date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms)
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
        return seconds * 1000 if seconds >= 0 else None
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare: dates only; ~7 ms of cold start

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when.timestamp() - now_s) * 1000)
