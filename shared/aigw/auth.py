"""Who may call the gateway: an ``Authenticator`` per ``AUTH_MODE``.

``none`` (the local default) lets every request through. ``api_key`` requires an
``x-portkey-api-key`` that hashes (SHA-256) to one of the configured key hashes
(``GATEWAY_API_KEY_HASHES`` or ``GATEWAY_API_KEYS_FILE``): only hashes are configured, so a
leaked environment reveals no usable key. The control plane (``ALBUS_BASEPATH``) becomes
another authenticator behind the same interface; the key list stays as its simplest form.

``python -m aigw.auth hash`` reads a key on stdin and prints the line to configure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aigw.errors import AuthenticationRequired

HEADER = "x-portkey-api-key"
MAX_KEY_LENGTH = 512
_PREFIX = "sha256:"


@dataclass(frozen=True)
class Principal:
    # Never the key itself: a short prefix of its hash, safe for logs and cache keys.
    key_id: str | None


ANONYMOUS = Principal(key_id=None)


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class NoAuth:
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return ANONYMOUS


def key_hash(key: str) -> str:
    import hashlib  # here: only deployments with gateway keys pay its import (~2 ms of cold start)

    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key_hashes(entries: Iterable[str]) -> frozenset[str]:
    """``sha256:<64 hex>`` or bare 64-hex entries (blank ones skipped); ValueError otherwise."""
    hashes: set[str] = set()
    for raw in entries:
        entry = raw.strip().lower().removeprefix(_PREFIX)
        if not entry:
            continue
        if len(entry) != 64 or any(c not in "0123456789abcdef" for c in entry):
            raise ValueError("gateway key hashes must be SHA-256 hex digests (64 hex characters, "
                             "optionally prefixed 'sha256:')")
        hashes.add(entry)
    return frozenset(hashes)


class KeyListAuth:
    """Accepts a key whose SHA-256 is in the configured set; fails closed on an empty set."""

    def __init__(self, hashes: frozenset[str]) -> None:
        import hashlib  # here: only deployments with gateway keys pay these imports
        import hmac

        if not hashes:
            raise ValueError("KeyListAuth needs at least one key hash")
        self._hashes = tuple(bytes.fromhex(h) for h in sorted(hashes))
        self._sha256, self._same = hashlib.sha256, hmac.compare_digest

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = headers.get(HEADER, "").strip()
        if not key:
            raise AuthenticationRequired(f"missing {HEADER} header", param=HEADER)
        if len(key) > MAX_KEY_LENGTH:
            raise AuthenticationRequired("invalid gateway API key", param=HEADER)
        digest = self._sha256(key.encode("utf-8")).digest()
        # Compare against every entry in constant time: no early exit reveals which one matched.
        found = False
        for known in self._hashes:
            found |= self._same(digest, known)
        if not found:
            raise AuthenticationRequired("invalid gateway API key", param=HEADER)
        return Principal(key_id=digest.hex()[:12])


def authenticator_for(mode: str, key_hashes: frozenset[str] = frozenset()) -> Authenticator:
    if mode == "api_key":
        return KeyListAuth(key_hashes)
    if mode == "none":
        return NoAuth()
    raise ValueError(f"unknown AUTH_MODE {mode!r}")


def main(argv: list[str]) -> int:
    if argv[1:] != ["hash"]:
        print("usage: python -m aigw.auth hash   (reads the key on stdin, prints sha256:<hex>)", file=sys.stderr)
        return 2
    key = sys.stdin.readline().strip()
    if not key:
        print("no key on stdin", file=sys.stderr)
        return 2
    print(_PREFIX + key_hash(key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
