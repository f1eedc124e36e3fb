"""Stable fingerprints of a strategy node's targets: what sticky and breaker state is keyed by.

A target is described by what makes it itself (provider, name, host, model, nested targets) and
a hash of its key, never the key: the description is hashed again before it is used anywhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aigw.config.model import Target

_CACHE_SIZE = 4096


def _secret_hash(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


def _describe(target: Target) -> Any:
    """What makes a target itself (never its key: only a hash of it), for fingerprints."""
    return {
        "provider": target.provider, "name": target.name, "host": target.custom_host,
        "model": target.override_params.get("model"), "key": _secret_hash(target.api_key),
        "vk": _secret_hash(target.virtual_key), "weight": target.weight,
        "mode": target.strategy.mode if target.strategy else None,
        "targets": [_describe(t) for t in target.targets],
    }


_cache: dict[int, tuple[Target, bytes, tuple[bytes, ...]]] = {}


def fingerprint(node: Target) -> tuple[bytes, tuple[bytes, ...]]:
    """The node's fingerprint and each child's salt; cached by identity (configs are parsed once)."""
    cached = _cache.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1], cached[2]
    salts = tuple(hashlib.blake2b(orjson.dumps(_describe(t), option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
                  for t in node.targets)
    whole = hashlib.blake2b(node.path.encode() + b"".join(salts), digest_size=16).digest()
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[id(node)] = (node, whole, salts)
    return whole, salts


