"""Config features not running on this deployment are refused (400), never silently ignored."""

import pytest

from aigw.config.parse import parse_config
from aigw.errors import FeatureNotEnabled

LEAF = {"provider": "openai", "api_key": "sk-0123456789"}
TRUSTED = frozenset()


@pytest.mark.parametrize("config, param", [
    ({**LEAF, "input_guardrails": ["pg-1"]}, "input_guardrails"),
    ({**LEAF, "output_guardrails": [{"default.contains": {"words": ["x"]}}]}, "output_guardrails"),
    ({**LEAF, "before_request_hooks": [{"id": "h"}]}, "before_request_hooks"),
    ({"strategy": {"mode": "single"}, "targets": [{**LEAF, "after_request_hooks": [{"id": "h"}]}]},
     "targets[0].after_request_hooks"),
])
def test_turned_on_features_are_a_400_naming_the_field(config, param):
    with pytest.raises(FeatureNotEnabled) as info:
        parse_config(config, TRUSTED)
    assert info.value.status == 400 and info.value.param == param
    assert info.value.code == "feature_not_enabled" and "not enabled" in info.value.message


@pytest.mark.parametrize("extra", [
    {"cache": {"mode": "disabled"}}, {"cache": {}}, {"input_guardrails": []}, {"after_request_hooks": []},
])
def test_features_turned_off_are_accepted(extra):
    parse_config({**LEAF, **extra}, TRUSTED)
    parse_config({"strategy": {"mode": "loadbalance", "sticky": {"enabled": False}}, "targets": [LEAF]}, TRUSTED)


def test_header_timeout_applies_where_the_config_sets_none():
    config = {"strategy": {"mode": "fallback"}, "targets": [LEAF, {**LEAF, "request_timeout": 500}]}
    root = parse_config(config, TRUSTED, default_timeout_ms=1500)
    assert root.request_timeout_ms == 1500
    assert [t.request_timeout_ms for t in root.targets] == [1500, 500]
    own = parse_config({**config, "request_timeout": 900}, TRUSTED, default_timeout_ms=1500)
    assert [t.request_timeout_ms for t in own.targets] == [900, 500]


def test_overlong_api_keys_are_refused():
    from aigw.config.parse import MAX_API_KEY_LENGTH
    from aigw.errors import InvalidConfig

    with pytest.raises(InvalidConfig) as info:
        parse_config({"provider": "openai", "api_key": "k" * (MAX_API_KEY_LENGTH + 1)}, TRUSTED)
    assert info.value.param == "api_key"


def test_camel_case_keys_convert_only_ascii_capitals():
    from aigw.config.parse import _snake

    assert [_snake(k) for k in ("requestTimeout", "apiKey", "URL", "request_timeout", "éX", "²X", "x1Y")] == [
        "request_timeout", "api_key", "URL", "request_timeout", "éX", "²X", "x1_y"]
