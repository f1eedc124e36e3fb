"""Stable descriptions of targets: what sticky, breaker and cache state is keyed by.

A target is described by everything that decides where its calls go and what they ask for
(provider, custom host, provider options such as an Azure deployment, forwarded header names,
parameter overrides) and by hashes of its keys, never the keys: descriptions are hashed again
before they are used anywhere. A node's fingerprint is cached on the node itself (a frozen
dataclass: in its ``__dict__``, beside its fields), so it lives exactly as long as the parsed
config and nothing else holds configs alive.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aigw.config.model import Target

_CACHED = "_aigw_fingerprint"


def _hash(value: Any) -> str | None:
    if value is None:
        return None
    data = value.encode() if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()[:32]


def identity(target: Target) -> dict[str, Any]:
    """What makes a leaf's answers what they are (no weight, no name): the response cache's view."""
    return {
        "provider": target.provider, "host": target.custom_host, "key": _hash(target.api_key),
        "vk": _hash(target.virtual_key), "options": _hash(dict(target.options)) if target.options else None,
        "forward": list(target.forward_headers),
    }


def _describe(target: Target) -> dict[str, Any]:
    return {
        **identity(target), "name": target.name, "weight": target.weight,
        "overrides": _hash(dict(target.override_params)) if target.override_params else None,
        "mode": target.strategy.mode if target.strategy else None,
        "targets": [_describe(t) for t in target.targets],
    }


def fingerprint(node: Target) -> tuple[bytes, tuple[bytes, ...]]:
    """The node's fingerprint and a distinct salt for each child (two identical entries get two
    salts, so each still gets its share of a rendezvous pick)."""
    cached: tuple[bytes, tuple[bytes, ...]] | None = node.__dict__.get(_CACHED)
    if cached is not None:
        return cached
    seen: dict[bytes, int] = {}
    salts = []
    for child in node.targets:
        described = orjson.dumps(_describe(child), option=orjson.OPT_SORT_KEYS)
        repeat = seen[described] = seen.get(described, -1) + 1
        salts.append(hashlib.blake2b(described + repeat.to_bytes(2, "big"), digest_size=16).digest())
    whole = hashlib.blake2b(node.path.encode() + b"".join(salts), digest_size=16).digest()
    result = (whole, tuple(salts))
    node.__dict__[_CACHED] = result  # not a field: equality, hashing and repr ignore it
    return result
