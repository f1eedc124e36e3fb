"""strategy.sticky: accepted on loadbalance at any level, refused with a 400 naming the field otherwise."""

import pytest

from aigw.config.parse import parse_config
from aigw.errors import InvalidConfig

LEAF = {"provider": "openai", "api_key": "sk-0123456789"}
TRUSTED = frozenset()


def lb(sticky, mode="loadbalance"):
    return {"strategy": {"mode": mode, "sticky": sticky}, "targets": [LEAF, {**LEAF, "api_key": "sk-other-0123"}]}


def test_sticky_is_parsed_at_any_level_and_marks_the_path_to_it():
    root = parse_config({"strategy": {"mode": "fallback"}, "targets": [
        lb({"enabled": True, "hash_fields": ["metadata.user_id", "headers.x-portkey-api-key", "params.stream"],
            "ttl": 60}), LEAF]}, TRUSTED)
    sticky = root.targets[0].strategy.sticky
    assert sticky.enabled and sticky.ttl_s == 60
    assert sticky.hash_fields == ("metadata.user_id", "headers.x-portkey-api-key", "params.stream")
    assert root.sticky_below and root.targets[0].sticky_below and not root.targets[1].sticky_below


def test_ttl_defaults_to_300_seconds_and_camel_case_is_read():
    assert parse_config(lb({"enabled": True, "hash_fields": ["metadata.u"]}), TRUSTED).strategy.sticky.ttl_s == 300
    assert parse_config(lb({"enabled": True, "hashFields": ["metadata.u"]}), TRUSTED).strategy.sticky.hash_fields == (
        "metadata.u",)


def test_a_disabled_sticky_marks_nothing():
    assert not parse_config(lb({"enabled": False}), TRUSTED).sticky_below
    assert not parse_config({**LEAF}, TRUSTED).sticky_below


@pytest.mark.parametrize("sticky, param", [
    ({"enabled": "yes"}, "strategy.sticky"),
    ("on", "strategy.sticky"),
    ({"enabled": True, "hash_fields": ["metadata.u"], "ttl": 0}, "strategy.sticky.ttl"),
    ({"enabled": True, "hash_fields": ["metadata.u"], "ttl": "300"}, "strategy.sticky.ttl"),
    ({"enabled": True, "hash_fields": "metadata.u"}, "strategy.sticky.hash_fields"),
    ({"enabled": True, "hash_fields": ["metadata.u", "user_id"]}, "strategy.sticky.hash_fields[1]"),
    ({"enabled": True, "hash_fields": ["body.x"]}, "strategy.sticky.hash_fields[0]"),
    ({"enabled": True, "hash_fields": ["metadata."]}, "strategy.sticky.hash_fields[0]"),
    ({"enabled": True, "hash_fields": [7]}, "strategy.sticky.hash_fields[0]"),
    ({"enabled": True, "hash_fields": ["metadata.a"] * 17}, "strategy.sticky.hash_fields"),
])
def test_invalid_sticky_settings_are_a_400_naming_the_field(sticky, param):
    with pytest.raises(InvalidConfig) as info:
        parse_config(lb(sticky), TRUSTED)
    assert info.value.status == 400 and info.value.param == param


def test_sticky_outside_loadbalance_is_refused_not_ignored():
    with pytest.raises(InvalidConfig) as info:
        parse_config(lb({"enabled": True}, mode="fallback"), TRUSTED)
    assert info.value.param == "strategy.sticky"


@pytest.mark.parametrize("sticky, param, says", [
    ({"enabled": True, "hash_fields": ["metadata.u"], "ttl": 10**17}, "strategy.sticky.ttl", "seconds, at most"),
    ({"enabled": True}, "strategy.sticky.hash_fields", "at least one"),
    ({"enabled": True, "hash_fields": []}, "strategy.sticky.hash_fields", "at least one"),
])
def test_bounds_that_would_break_the_store_or_the_balance(sticky, param, says):
    with pytest.raises(InvalidConfig) as info:
        parse_config(lb(sticky), TRUSTED)
    assert info.value.param == param and says in info.value.message
