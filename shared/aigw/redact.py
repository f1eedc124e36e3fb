"""Keeps provider keys out of what leaves the gateway, including keys an upstream echoes back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

REDACTED = b"[REDACTED]"
# Keys shorter than this are not scrubbed: replacing a 3-byte "key" would corrupt bodies.
_MIN_SECRET = 8


def _secrets(keys: Iterable[str | None]) -> list[bytes]:
    return sorted({k.encode() for k in keys if k and len(k) >= _MIN_SECRET}, key=len, reverse=True)


def scrub(body: bytes, keys: Iterable[str | None]) -> bytes:
    for secret in _secrets(keys):
        if secret in body:
            body = body.replace(secret, REDACTED)
    return body


def scrub_headers(headers: dict[str, str], keys: Iterable[str | None]) -> dict[str, str]:
    secrets = [k for k in keys if k and len(k) >= _MIN_SECRET]
    if not secrets:
        return headers
    out = {}
    for name, value in headers.items():
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED.decode())
        out[name] = value
    return out


def _held_prefix(data: bytes, secrets: list[bytes]) -> int:
    """Length of the longest tail of ``data`` that could start one of ``secrets``."""
    longest = 0
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(data)), longest, -1):
            if secret.startswith(data[-size:]):
                longest = size
                break
    return longest


async def scrub_stream(chunks: AsyncIterator[bytes], keys: Iterable[str | None]) -> AsyncIterator[bytes]:
    """Scrub a stream whose chunks may split a key; holds back only a tail that could begin one."""
    secrets = _secrets(keys)
    carry = b""
    try:
        async for chunk in chunks:
            if not secrets:
                yield chunk
                continue
            data = carry + chunk
            for secret in secrets:
                if secret in data:
                    data = data.replace(secret, REDACTED)
            hold = _held_prefix(data, secrets)
            carry = data[len(data) - hold:] if hold else b""
            out = data[: len(data) - hold] if hold else data
            if out:
                yield out
        if carry:
            yield carry
    finally:
        # Closed early (client gone): close the source now, so the upstream is released at once.
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
