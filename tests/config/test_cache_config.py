"""cache: {mode, max_age}: validated with a 400 naming the field, inherited, replaced by a child's own."""

import pytest

from aigw.config.model import DEFAULT_CACHE_MAX_AGE_S, CacheConfig
from aigw.config.parse import parse_config
from aigw.errors import InvalidConfig

LEAF = {"provider": "openai", "api_key": "sk-0123456789"}


def test_modes_and_max_age():
    assert parse_config({**LEAF, "cache": {"mode": "simple"}}, frozenset()).cache == CacheConfig(
        "simple", DEFAULT_CACHE_MAX_AGE_S)
    assert parse_config({**LEAF, "cache": {"mode": "semantic", "maxAge": 60}}, frozenset()).cache == CacheConfig(
        "semantic", 60)
    assert parse_config({**LEAF, "cache": {"mode": "disabled"}}, frozenset()).cache is None
    root = parse_config({"strategy": {"mode": "fallback"}, "cache": {"mode": "simple", "max_age": 10},
                         "targets": [LEAF, {**LEAF, "cache": {"mode": "disabled"}}]}, frozenset())
    assert root.targets[0].cache == CacheConfig("simple", 10) and root.targets[1].cache is None


@pytest.mark.parametrize("cache, param", [
    ("simple", "cache"),
    ({"mode": "exact"}, "cache.mode"),
    ({"mode": "simple", "max_age": 0}, "cache.max_age"),
    ({"mode": "simple", "max_age": "60"}, "cache.max_age"),
    ({"mode": "simple", "max_age": 1.5}, "cache.max_age"),
    ({"mode": "simple", "max_age": 90 * 24 * 3600 + 1}, "cache.max_age"),
])
def test_invalid_cache_settings_are_a_400_naming_the_field(cache, param):
    with pytest.raises(InvalidConfig) as info:
        parse_config({**LEAF, "cache": cache}, frozenset())
    assert info.value.status == 400 and info.value.param == param
