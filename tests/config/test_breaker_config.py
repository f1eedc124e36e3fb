"""cb_config: validated with a 400 naming the field, inherited down the tree, replaced by a child's own."""

import pytest

from aigw.config.model import DEFAULT_BREAKER_STATUS
from aigw.config.parse import parse_config
from aigw.errors import InvalidConfig

LEAF = {"provider": "openai", "api_key": "sk-0123456789"}
TRUSTED = frozenset()
CB = {"failure_threshold": 3, "cooldown_interval": 30_000}


def test_cb_config_is_parsed_and_inherited():
    root = parse_config({"strategy": {"mode": "fallback"}, "cb_config": CB, "targets": [
        LEAF, {**LEAF, "cbConfig": {"failureThresholdPercentage": 50, "minimumRequests": 10,
                                    "cooldownInterval": 60_000, "failureStatusCodes": [429, 503]}}]}, TRUSTED)
    inherited, own = root.targets
    assert inherited.breaker == root.breaker and inherited.breaker.failure_threshold == 3
    assert inherited.breaker.failure_status_codes == DEFAULT_BREAKER_STATUS == frozenset(range(500, 600))
    assert own.breaker.failure_threshold is None and own.breaker.failure_threshold_percentage == 50.0
    assert own.breaker.minimum_requests == 10 and own.breaker.cooldown_ms == 60_000
    assert own.breaker.failure_status_codes == {429, 503}
    assert root.breaker_below


def test_breakers_apply_below_fallback_and_loadbalance_only():
    conditional = {"strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.x": "1"}, "then": "a"}],
                                "default": "a"}, "targets": [{**LEAF, "name": "a", "cb_config": CB}]}
    assert not parse_config(conditional, TRUSTED).breaker_below
    assert parse_config({"strategy": {"mode": "fallback"}, "targets": [conditional]}, TRUSTED).breaker_below is False
    nested = {"strategy": {"mode": "fallback"}, "targets": [
        {"strategy": {"mode": "loadbalance"}, "targets": [{**LEAF, "cb_config": CB}]}]}
    root = parse_config(nested, TRUSTED)
    assert root.breaker_below and root.targets[0].breaker_below and root.breaker is None
    assert not parse_config(LEAF, TRUSTED).breaker_below


@pytest.mark.parametrize("cb, param", [
    ("on", "cb_config"),
    ({"failure_threshold": 3}, "cb_config.cooldown_interval"),
    ({"failure_threshold": 3, "cooldown_interval": 29_999}, "cb_config.cooldown_interval"),
    ({"failure_threshold": 3, "cooldown_interval": 10**19}, "cb_config.cooldown_interval"),
    ({"failure_threshold": 3, "cooldown_interval": "30000"}, "cb_config.cooldown_interval"),
    ({"cooldown_interval": 30_000}, "cb_config"),
    ({"failure_threshold": 0, "cooldown_interval": 30_000}, "cb_config.failure_threshold"),
    ({"failure_threshold_percentage": 0, "cooldown_interval": 30_000}, "cb_config.failure_threshold_percentage"),
    ({"failure_threshold_percentage": 101, "cooldown_interval": 30_000}, "cb_config.failure_threshold_percentage"),
    ({**CB, "minimum_requests": -1}, "cb_config.minimum_requests"),
    ({**CB, "failure_status_codes": [700]}, "cb_config.failure_status_codes"),
    ({**CB, "failure_status_codes": "5xx"}, "cb_config.failure_status_codes"),
])
def test_invalid_cb_config_is_a_400_naming_the_field(cb, param):
    with pytest.raises(InvalidConfig) as info:
        parse_config({**LEAF, "cb_config": cb}, TRUSTED)
    assert info.value.status == 400 and info.value.param == param
