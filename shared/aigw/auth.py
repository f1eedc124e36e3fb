"""Who may call the gateway. An interface with one implementation per ``AUTH_MODE``.

``none`` (the local default) lets every request through; ``api_key`` requires an
``x-portkey-api-key`` header. Validating that key against the control plane
(``ALBUS_BASEPATH``) is a later backend behind the same interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aigw.errors import AuthenticationRequired


@dataclass(frozen=True)
class Principal:
    # Never the key itself: a short, non-reversible reference safe for logs.
    key_ref: str | None


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class NoAuth:
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return Principal(key_ref=None)


class RequireApiKey:
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = headers.get("x-portkey-api-key", "").strip()
        if not key:
            raise AuthenticationRequired("missing x-portkey-api-key header", param="x-portkey-api-key")
        return Principal(key_ref=f"…{key[-4:]}" if len(key) >= 16 else "…")


def authenticator_for(mode: str) -> Authenticator:
    if mode == "api_key":
        return RequireApiKey()
    return NoAuth()
