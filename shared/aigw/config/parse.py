"""Strict parsing of the routing config (``x-portkey-config`` or header-only options).

Hand-written rather than pydantic: this runs in every route function, and the pydantic
import alone costs ~80 ms of a 300 ms cold-start budget here; the schema is small and
the error paths (``targets[1].weight``) are what users need. Results are immutable and
cached by the header's text, so a config is parsed once per execution environment.

Unknown keys are kept as provider options rather than refused, so configs written for the
documented gateway load. Features this deployment does not run yet (sticky sessions, caching,
hooks and guardrails) are refused with a 400 when turned on (``config.features``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from aigw.config import features
from aigw.config.features import HOOK_KEYS
from aigw.config.model import (
    CACHE_MODES,
    DEFAULT_BREAKER_STATUS,
    DEFAULT_CACHE_MAX_AGE_S,
    DEFAULT_RETRY_STATUS,
    MAX_CACHE_MAX_AGE_S,
    MIN_COOLDOWN_MS,
    MODES,
    BreakerConfig,
    CacheConfig,
    Condition,
    RetryPolicy,
    Sticky,
    Strategy,
    Target,
    config_param,
)
from aigw.custom_host import check_custom_host
from aigw.errors import InvalidConfig, UnknownProvider
from aigw.providers.registry import is_known_provider
from aigw.redact import MAX_SECRET_LENGTH
from aigw.routing.conditions import compile_query

MAX_DEPTH = 8
MAX_TARGETS = 64
MAX_RETRY_ATTEMPTS = 5
MAX_HASH_FIELDS = 16
MAX_STICKY_TTL_S = 30 * 24 * 3600
MAX_COOLDOWN_MS = 24 * 3600 * 1000
HASH_FIELD_SOURCES = ("metadata", "headers", "params")  # where a sticky hash field's value is read
# Longer provider keys are refused: every answer is scanned for the keys it could echo.
MAX_API_KEY_LENGTH = MAX_SECRET_LENGTH
_NODE_KEYS = frozenset(
    {"strategy", "targets", "name", "weight", "provider", "api_key", "virtual_key", "custom_host",
     "forward_headers", "request_timeout", "retry", "override_params", "cache", "cb_config", *HOOK_KEYS}
)


class _Inherited(NamedTuple):
    override_params: Mapping[str, Any] = {}
    retry: RetryPolicy | None = None
    cache: CacheConfig | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] = ()
    request_timeout_ms: int | None = None
    hooks: Mapping[str, Any] = {}
    breaker: BreakerConfig | None = None


class _Shared(NamedTuple):
    """The fields every node has, whether it routes (strategy) or names a provider (leaf)."""

    path: str
    name: str | None
    weight: float
    custom_host: str | None
    forward_headers: tuple[str, ...]
    request_timeout_ms: int | None
    retry: RetryPolicy | None
    override_params: Mapping[str, Any]
    cache: CacheConfig | None
    hooks: Mapping[str, Any]
    breaker: BreakerConfig | None

    def target(self, **own: Any) -> Target:
        return Target(
            path=self.path, name=self.name, weight=self.weight, custom_host=self.custom_host,
            forward_headers=self.forward_headers, request_timeout_ms=self.request_timeout_ms, retry=self.retry,
            override_params=self.override_params, cache=self.cache, hooks=self.hooks, breaker=self.breaker, **own,
        )


def _snake(key: str) -> str:
    """``requestTimeout`` -> ``request_timeout``: a capital after a lower-case letter or digit
    starts a new word (without a regex: this module is imported at every cold start)."""
    if key.islower() or key.isupper():
        return key  # nothing to convert (the usual spelling)
    out = []
    previous = ""
    for c in key:
        if "A" <= c <= "Z" and ("a" <= previous <= "z" or "0" <= previous <= "9"):
            out.append("_" + c.lower())
        else:
            out.append(c)
        previous = c
    return "".join(out)


def _snake_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    """The reference gateway reads config keys in either spelling (it camel-cases them all), so
    ``inputGuardrails`` or ``requestTimeout`` must not pass as unknown provider options here.
    The snake_case spelling wins when both are given."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        snake = _snake(key) if isinstance(key, str) else key
        if snake not in out or snake == key:
            out[snake] = item
    return out


def _status_codes(value: Any, where: str) -> frozenset[int]:
    if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise InvalidConfig("must be a list of HTTP status codes", param=where)
    if any(not 100 <= c <= 599 for c in value):
        raise InvalidConfig("status codes must be between 100 and 599", param=where)
    return frozenset(value)


def _positive_int(value: Any, where: str, unit: str = "milliseconds", maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or value != int(value) \
            or (maximum is not None and value > maximum):
        at_most = f", at most {maximum}" if maximum is not None else ""
        raise InvalidConfig(f"must be a positive integer ({unit}{at_most})", param=where)
    return int(value)


def _retry(value: Any, where: str) -> RetryPolicy:
    if not isinstance(value, Mapping):
        raise InvalidConfig("retry must be an object", param=where)
    value = _snake_keys(value)
    attempts = value.get("attempts", 0)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 0 <= attempts <= MAX_RETRY_ATTEMPTS:
        raise InvalidConfig(f"must be an integer from 0 to {MAX_RETRY_ATTEMPTS}", param=f"{where}.attempts")
    codes = value.get("on_status_codes")
    use_header = value.get("use_retry_after_header", False)
    if not isinstance(use_header, bool):
        raise InvalidConfig("must be a boolean", param=f"{where}.use_retry_after_header")
    return RetryPolicy(
        attempts=attempts,
        on_status_codes=DEFAULT_RETRY_STATUS if codes is None else _status_codes(codes, f"{where}.on_status_codes"),
        use_retry_after_header=use_header,
    )


def _sticky(value: Any, where: str) -> Sticky:
    value = _snake_keys(value) if isinstance(value, Mapping) else value
    if not isinstance(value, Mapping) or not isinstance(value.get("enabled"), bool):
        raise InvalidConfig("sticky must be an object with a boolean 'enabled'", param=where)
    fields = value.get("hash_fields", [])
    if not isinstance(fields, list) or len(fields) > MAX_HASH_FIELDS:
        raise InvalidConfig(f"must be a list of at most {MAX_HASH_FIELDS} field paths", param=f"{where}.hash_fields")
    for i, path in enumerate(fields):
        source, _, name = path.partition(".") if isinstance(path, str) else ("", "", "")
        if source not in HASH_FIELD_SOURCES or not name or len(path) > 256:
            raise InvalidConfig("a field path is 'metadata.<key>', 'headers.<name>' or 'params.<key>'",
                                param=f"{where}.hash_fields[{i}]")
    ttl = value.get("ttl", 300)
    sticky = Sticky(value["enabled"], tuple(fields), _positive_int(ttl, f"{where}.ttl", "seconds", MAX_STICKY_TTL_S))
    if sticky.enabled and not sticky.hash_fields:
        # Every request would share one identifier: all traffic to one target, nothing balanced.
        raise InvalidConfig("sticky needs at least one hash field", param=f"{where}.hash_fields")
    if sticky.enabled:
        features.refuse_if_disabled(features.STICKY, where, "sticky load balancing (strategy.sticky)")
    return sticky


def _cache(value: Any, where: str) -> CacheConfig | None:
    """A target's cache settings; None when caching is off (``mode: disabled``, or no mode)."""
    if not isinstance(value, Mapping):
        raise InvalidConfig("must be an object", param=where)
    value = _snake_keys(value)
    mode = value.get("mode")
    if mode is None or mode == "disabled":
        return None
    if mode not in CACHE_MODES:
        raise InvalidConfig(f"cache mode must be one of {', '.join(CACHE_MODES)} or disabled", param=f"{where}.mode")
    features.refuse_if_disabled(features.SEMANTIC_CACHE if mode == "semantic" else features.CACHE, where,
                                f"response caching (cache mode {mode})")
    max_age = value.get("max_age", DEFAULT_CACHE_MAX_AGE_S)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 < max_age <= MAX_CACHE_MAX_AGE_S:
        raise InvalidConfig(f"max_age must be seconds, 1 to {MAX_CACHE_MAX_AGE_S}", param=f"{where}.max_age")
    return CacheConfig(mode, max_age)


def _breaker(value: Any, where: str) -> BreakerConfig:
    if not isinstance(value, Mapping):
        raise InvalidConfig("cb_config must be an object", param=where)
    value = _snake_keys(value)
    cooldown = value.get("cooldown_interval")
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or not MIN_COOLDOWN_MS <= cooldown <= MAX_COOLDOWN_MS:
        raise InvalidConfig(f"cooldown_interval is required: milliseconds, {MIN_COOLDOWN_MS} to {MAX_COOLDOWN_MS}",
                            param=f"{where}.cooldown_interval")
    threshold = value.get("failure_threshold")
    if threshold is not None:
        threshold = _positive_int(threshold, f"{where}.failure_threshold", "failures")
    percentage = value.get("failure_threshold_percentage")
    if percentage is not None and (isinstance(percentage, bool) or not isinstance(percentage, (int, float))
                                   or not 0 < percentage <= 100):
        raise InvalidConfig("must be a number above 0 and at most 100", param=f"{where}.failure_threshold_percentage")
    if threshold is None and percentage is None:
        raise InvalidConfig("set failure_threshold or failure_threshold_percentage", param=where)
    minimum = value.get("minimum_requests", 1)
    codes = value.get("failure_status_codes")
    return BreakerConfig(
        cooldown_ms=cooldown,
        failure_threshold=threshold,
        failure_threshold_percentage=None if percentage is None else float(percentage),
        minimum_requests=_positive_int(minimum, f"{where}.minimum_requests", "requests"),
        failure_status_codes=DEFAULT_BREAKER_STATUS if codes is None
        else _status_codes(codes, f"{where}.failure_status_codes"),
    )


def _strategy(value: Any, where: str) -> Strategy:
    if not isinstance(value, Mapping):
        raise InvalidConfig("strategy must be an object", param=where)
    value = _snake_keys(value)
    mode = value.get("mode")
    if mode not in MODES:
        raise InvalidConfig(f"unknown strategy mode {mode!r}; expected one of {', '.join(MODES)}", param=f"{where}.mode")
    codes = value.get("on_status_codes")
    conditions: list[Condition] = []
    default = value.get("default")
    if mode == "conditional":
        raw = value.get("conditions")
        if not isinstance(raw, list) or not raw:
            raise InvalidConfig("conditional mode needs a non-empty list of conditions", param=f"{where}.conditions")
        for i, cond in enumerate(raw):
            at = f"{where}.conditions[{i}]"
            if not isinstance(cond, Mapping) or not isinstance(cond.get("then"), str):
                raise InvalidConfig("a condition needs a 'query' object and a 'then' target name", param=at)
            conditions.append(Condition(compile_query(cond.get("query"), f"{at}.query"), cond["then"]))
        if default is not None and not isinstance(default, str):
            raise InvalidConfig("default must be a target name", param=f"{where}.default")
    sticky = value.get("sticky")
    if sticky is not None and mode != "loadbalance":
        raise InvalidConfig("sticky applies to a loadbalance strategy only", param=f"{where}.sticky")
    return Strategy(
        mode=mode,
        on_status_codes=None if codes is None else _status_codes(codes, f"{where}.on_status_codes"),
        conditions=tuple(conditions),
        default=default,
        sticky=None if sticky is None else _sticky(sticky, f"{where}.sticky"),
    )


def _header_safe(value: str) -> bool:
    # Keys and provider options travel in HTTP headers: no line breaks, NULs or non-latin-1.
    return not any(c in value for c in "\r\n\0") and all(ord(c) < 256 for c in value)


def _optional_str(node: Mapping[str, Any], key: str, path: str, *, header: bool = False,
                  max_length: int | None = None) -> str | None:
    value = node.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidConfig("must be a string", param=config_param(path, key))
    if header and value is not None and not _header_safe(value):
        raise InvalidConfig("must not contain line breaks, NUL or non-latin-1 characters", param=config_param(path, key))
    if max_length is not None and value is not None and len(value) > max_length:
        raise InvalidConfig(f"must be at most {max_length} characters", param=config_param(path, key))
    return value


def _inherit(node: Mapping[str, Any], path: str, up: _Inherited, trusted: frozenset[str]) -> _Inherited:
    overrides = node.get("override_params")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise InvalidConfig("must be an object", param=config_param(path, "override_params"))
    host = _optional_str(node, "custom_host", path)
    if host:
        host = check_custom_host(host, trusted, param=config_param(path, "custom_host"))
    forward = node.get("forward_headers")
    if forward is not None and (not isinstance(forward, list) or not all(isinstance(h, str) for h in forward)):
        raise InvalidConfig("must be a list of header names", param=config_param(path, "forward_headers"))
    cache = _cache(node["cache"], config_param(path, "cache")) if node.get("cache") is not None else up.cache
    timeout = node.get("request_timeout")
    features.check_hooks(node, lambda key: config_param(path, key))
    hooks = {k: node[k] for k in HOOK_KEYS if k in node}
    return _Inherited(
        override_params={**up.override_params, **(overrides or {})},
        retry=_retry(node["retry"], config_param(path, "retry")) if node.get("retry") is not None else up.retry,
        cache=cache,
        custom_host=host or up.custom_host,
        forward_headers=tuple(h.lower() for h in forward) if forward is not None else up.forward_headers,
        request_timeout_ms=_positive_int(timeout, config_param(path, "request_timeout")) if timeout is not None else up.request_timeout_ms,
        hooks={**up.hooks, **hooks},
        breaker=_breaker(node["cb_config"], config_param(path, "cb_config")) if node.get("cb_config") is not None
        else up.breaker,
    )


def _weight(node: Mapping[str, Any], path: str) -> float:
    weight = node.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0 or weight != weight:
        raise InvalidConfig("weight must be a non-negative number", param=config_param(path, "weight"))
    return float(weight)


def _node(node: Any, path: str, up: _Inherited, trusted: frozenset[str], depth: int) -> Target:
    if not isinstance(node, Mapping):
        raise InvalidConfig("must be an object", param=config_param(path))
    node = _snake_keys(node)
    if depth > MAX_DEPTH:
        raise InvalidConfig(f"targets nest deeper than {MAX_DEPTH} levels", param=config_param(path))
    here = _inherit(node, path, up, trusted)
    name = _optional_str(node, "name", path)
    shared = _Shared(
        path=path, name=name, weight=_weight(node, path), custom_host=here.custom_host,
        forward_headers=here.forward_headers, request_timeout_ms=here.request_timeout_ms, retry=here.retry,
        override_params=here.override_params, cache=here.cache, hooks=here.hooks, breaker=here.breaker,
    )
    raw_targets = node.get("targets")
    if "strategy" in node or raw_targets is not None:
        strategy = _strategy(node.get("strategy", {"mode": "single"}), config_param(path, "strategy"))
        if not isinstance(raw_targets, list) or not raw_targets:
            raise InvalidConfig("targets must be a non-empty list", param=config_param(path, "targets"))
        if len(raw_targets) > MAX_TARGETS:
            raise InvalidConfig(f"at most {MAX_TARGETS} targets per level", param=config_param(path, "targets"))
        children = tuple(
            _node(child, f"{path}.targets[{i}]", here, trusted, depth + 1) for i, child in enumerate(raw_targets)
        )
        _check_names(strategy, children, path)
        secrets = tuple(dict.fromkeys(k for child in children for k in child.secrets))
        sticky_below = (strategy.sticky is not None and strategy.sticky.enabled) or any(c.sticky_below for c in children)
        # Conditional picks are not subject to breakers (as documented for the reference).
        breaker_below = (strategy.mode in ("fallback", "loadbalance") and any(c.breaker for c in children)) \
            or any(c.breaker_below for c in children)
        return shared.target(strategy=strategy, targets=children, secrets=secrets, sticky_below=sticky_below,
                             breaker_below=breaker_below)
    provider = _optional_str(node, "provider", path)
    virtual_key = _optional_str(node, "virtual_key", path, header=True)
    if not provider and not virtual_key:
        raise InvalidConfig("target has no provider: set 'provider' (or 'virtual_key')", param=config_param(path, "provider"))
    if provider and not is_known_provider(provider):
        raise UnknownProvider(f"unknown provider {provider!r}", param=config_param(path, "provider"))
    options = {k: v for k, v in node.items() if k not in _NODE_KEYS}
    for key, value in options.items():
        if isinstance(value, str) and not _header_safe(value):
            raise InvalidConfig("must not contain line breaks, NUL or non-latin-1 characters", param=config_param(path, key))
    api_key = _optional_str(node, "api_key", path, header=True, max_length=MAX_API_KEY_LENGTH)
    return shared.target(provider=provider, virtual_key=virtual_key, api_key=api_key, options=options,
                         secrets=(api_key,) if api_key else ())


def _check_names(strategy: Strategy, children: tuple[Target, ...], path: str) -> None:
    if strategy.mode != "conditional":
        return
    names = {c.name for c in children if c.name}
    for i, cond in enumerate(strategy.conditions):
        if cond.then not in names:
            raise InvalidConfig(f"no target named {cond.then!r}", param=config_param(path, f"strategy.conditions[{i}].then"))
    if strategy.default is not None and strategy.default not in names:
        raise InvalidConfig(f"no target named {strategy.default!r}", param=config_param(path, "strategy.default"))


def parse_config(config: Any, trusted_hosts: frozenset[str], default_timeout_ms: int | None = None) -> Target:
    """Validate a decoded config object and return its resolved target tree.

    ``default_timeout_ms`` (from ``x-portkey-request-timeout``) applies wherever the config
    itself sets no ``request_timeout``, as in the reference gateway.
    """
    if not isinstance(config, Mapping):
        raise InvalidConfig("config must be a JSON object", param="config")
    return _node(config, "config", _Inherited(request_timeout_ms=default_timeout_ms), trusted_hosts, 0)


def is_inline_config(raw: str) -> bool:
    """An inline JSON config, as opposed to a saved config's id (``pc-...``)."""
    return raw.lstrip().startswith("{")


@lru_cache(maxsize=512)
def parse_config_text(raw: str, trusted_hosts: frozenset[str], default_timeout_ms: int | None = None) -> Target:
    """Parse an inline config's JSON text; cached, since a deployment sends few distinct configs."""
    try:
        config = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidConfig(f"x-portkey-config is not valid JSON: {exc}", param="x-portkey-config") from None
    return parse_config(config, trusted_hosts, default_timeout_ms)
