"""The routing config as immutable objects.

A config is a tree of ``Target`` nodes. A node with ``strategy`` routes among its
``targets``; a node without is a leaf that names a provider. Settings that flow down
the tree (``override_params`` merged, ``retry``/``cache`` replaced, ``custom_host``,
``forward_headers``, ``request_timeout`` and hooks inherited) are already resolved on
every node by the parser, so the router reads each node's own fields only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

MODES = ("single", "loadbalance", "fallback", "conditional")
DEFAULT_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def config_param(path: str, key: str | None = None) -> str:
    """How errors name a config field: ``config.targets[1]`` + ``weight`` -> ``targets[1].weight``."""
    base = path.removeprefix("config").lstrip(".")
    if key is None:
        return base or "config"
    return f"{base}.{key}" if base else key


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 0
    on_status_codes: frozenset[int] = DEFAULT_RETRY_STATUS
    use_retry_after_header: bool = False


@dataclass(frozen=True)
class Condition:
    query: Any  # a compiled query from aigw.routing.conditions.compile_query
    then: str


@dataclass(frozen=True)
class Sticky:
    enabled: bool
    hash_fields: tuple[str, ...] = ()
    ttl_s: int = 300


CACHE_MODES = ("simple", "semantic")
DEFAULT_CACHE_MAX_AGE_S = 7 * 24 * 3600  # as Portkey documents: 7 days
MAX_CACHE_MAX_AGE_S = 90 * 24 * 3600


class CacheConfig(NamedTuple):
    """``cache``: how answers of this target are cached (``mode`` simple or semantic). (A
    NamedTuple: a frozen dataclass costs ~0.9 ms of every route function's init, this ~0.2.)"""

    mode: str
    max_age_s: int = DEFAULT_CACHE_MAX_AGE_S


DEFAULT_BREAKER_STATUS = frozenset(range(500, 600))
MIN_COOLDOWN_MS = 30_000


class BreakerConfig(NamedTuple):
    """``cb_config``: when a target's circuit opens, and for how long it is skipped."""

    cooldown_ms: int
    failure_threshold: int | None = None  # failures in a window that open the circuit
    failure_threshold_percentage: float | None = None  # or this share of the window's requests...
    minimum_requests: int = 1  # ...once the window has at least this many
    failure_status_codes: frozenset[int] = DEFAULT_BREAKER_STATUS


@dataclass(frozen=True)
class Strategy:
    mode: str
    on_status_codes: frozenset[int] | None = None
    conditions: tuple[Condition, ...] = ()
    default: str | None = None
    sticky: Sticky | None = None


@dataclass(frozen=True)
class Target:
    # JSON path of this node, as reported in x-portkey-last-used-option-index.
    path: str = "config"
    name: str | None = None
    weight: float = 1.0
    strategy: Strategy | None = None
    targets: tuple[Target, ...] = ()
    provider: str | None = None
    api_key: str | None = field(default=None, repr=False)
    virtual_key: str | None = field(default=None, repr=False)
    custom_host: str | None = None
    forward_headers: tuple[str, ...] = ()
    request_timeout_ms: int | None = None
    retry: RetryPolicy | None = None
    override_params: Mapping[str, Any] = field(default_factory=dict)
    cache: CacheConfig | None = None
    hooks: Mapping[str, Any] = field(default_factory=dict)
    # Whether this node or one below it load-balances with sticky on: the router is then given a
    # sticky picker (only then, so that requests without it pay nothing).
    sticky_below: bool = False
    # The circuit breaker settings that apply to this node (its own cb_config, or inherited).
    breaker: BreakerConfig | None = None
    # Whether a breaker applies to a child of this node or below it: the router then gets a view.
    breaker_below: bool = False
    # Provider-specific fields (Azure resource/deployment/api version, anthropic version, ...).
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Every api_key in this subtree: what any answer to the request is scrubbed of.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def is_leaf(self) -> bool:
        return self.strategy is None

    def param(self, key: str | None = None) -> str:
        """How errors name this node's ``key`` (see ``config_param``)."""
        return config_param(self.path, key)
