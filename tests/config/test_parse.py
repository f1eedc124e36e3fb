import pytest

from aigw.config import features
from aigw.config.model import DEFAULT_RETRY_STATUS, CacheConfig
from aigw.config.parse import is_inline_config, parse_config, parse_config_text
from aigw.errors import InvalidConfig, UnknownProvider, UnsafeCustomHost, error_body

TRUSTED = frozenset({"127.0.0.1", "::1", "localhost"})


def parse(config):
    return parse_config(config, TRUSTED)


def error_of(config, exc=InvalidConfig):
    with pytest.raises(exc) as info:
        parse(config)
    assert info.value.status == 400
    return info.value


def test_single_provider_config_is_a_leaf_at_config():
    root = parse({"provider": "openai", "api_key": "sk-test-123456"})
    assert root.is_leaf and root.provider == "openai" and root.path == "config"
    assert "sk-test" not in repr(root)  # keys never print


def test_nested_targets_get_json_paths():
    root = parse({
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "openai"},
            {"strategy": {"mode": "fallback"}, "targets": [{"provider": "anthropic"}, {"provider": "openai"}]},
        ],
    })
    assert root.targets[1].targets[0].path == "config.targets[1].targets[0]"
    assert root.targets[1].targets[1].provider == "openai"


@pytest.mark.parametrize(
    "config, param",
    [
        ({"strategy": {"mode": "roundrobin"}, "targets": [{"provider": "openai"}]}, "strategy.mode"),
        ({"strategy": {"mode": "fallback"}, "targets": []}, "targets"),
        ({"strategy": {"mode": "fallback"}}, "targets"),
        ({"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai"}, {"api_key": "k"}]}, "targets[1].provider"),
        ({"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "openai"}, {"provider": "openai", "weight": "2"}]}, "targets[1].weight"),
        ({"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "openai", "weight": -1}]}, "targets[0].weight"),
        ({"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "openai", "weight": True}]}, "targets[0].weight"),
        ({"provider": "openai", "retry": {"attempts": 6}}, "retry.attempts"),
        ({"provider": "openai", "retry": {"attempts": 2, "on_status_codes": ["500"]}}, "retry.on_status_codes"),
        ({"provider": "openai", "request_timeout": -5}, "request_timeout"),
        ({"provider": "openai", "override_params": []}, "override_params"),
        ({"provider": "openai", "forward_headers": "x-a"}, "forward_headers"),
        ({"strategy": {"mode": "fallback"}, "targets": ["openai"]}, "targets[0]"),
        ({"strategy": "fallback", "targets": [{"provider": "openai"}]}, "strategy"),
        ({"strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.a": "x"}, "then": "nope"}]},
          "targets": [{"name": "a", "provider": "openai"}]}, "strategy.conditions[0].then"),
        ({"strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.a": {"$bogus": 1}}, "then": "a"}]},
          "targets": [{"name": "a", "provider": "openai"}]}, "strategy.conditions[0].query.metadata.a.$bogus"),
        ({"strategy": {"mode": "conditional", "conditions": [{"query": {"params.model": {"$regex": "("}}, "then": "a"}]},
          "targets": [{"name": "a", "provider": "openai"}]}, "strategy.conditions[0].query.params.model.$regex"),
        ({"strategy": {"mode": "conditional", "conditions": []}, "targets": [{"name": "a", "provider": "openai"}]},
         "strategy.conditions"),
        ({"strategy": {"mode": "fallback"}, "targets": [{"strategy": {"mode": "single"}, "targets": [{"provider": "openai", "weight": "x"}]}]},
         "targets[0].targets[0].weight"),
    ],
)
def test_invalid_configs_name_the_offending_field(config, param):
    err = error_of(config)
    assert err.param == param
    body = error_body(err)["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["type"] == "invalid_request_error"


def test_unknown_provider_is_400_naming_path():
    err = error_of({"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai"}, {"provider": "nope"}]}, UnknownProvider)
    assert err.param == "targets[1].provider"


def test_config_must_be_an_object():
    assert error_of(["x"]).param == "config"


def test_settings_flow_down_the_tree(monkeypatch):
    monkeypatch.setattr(features, "ENABLED", frozenset({features.CACHE, features.SEMANTIC_CACHE}))
    root = parse({
        "strategy": {"mode": "fallback"},
        "override_params": {"temperature": 0.1, "max_tokens": 5},
        "retry": {"attempts": 2},
        "request_timeout": 1000,
        "custom_host": "http://127.0.0.1:9999/v1",
        "forward_headers": ["X-Trace"],
        "cache": {"mode": "simple"},
        "targets": [
            {"provider": "openai", "override_params": {"max_tokens": 9}},
            {"provider": "openai", "retry": {"attempts": 0}, "cache": {"mode": "semantic"}, "request_timeout": 50},
        ],
    })
    first, second = root.targets
    assert first.override_params == {"temperature": 0.1, "max_tokens": 9}  # merged
    assert first.retry.attempts == 2 and second.retry.attempts == 0  # replaced
    assert first.cache == CacheConfig("simple") and second.cache == CacheConfig("semantic")  # replaced
    assert first.request_timeout_ms == 1000 and second.request_timeout_ms == 50
    assert first.custom_host == second.custom_host == "http://127.0.0.1:9999/v1"
    assert first.forward_headers == ("x-trace",)


def test_retry_defaults():
    leaf = parse({"provider": "openai", "retry": {"attempts": 3}})
    assert leaf.retry.on_status_codes == DEFAULT_RETRY_STATUS and not leaf.retry.use_retry_after_header


def test_custom_host_is_guarded_with_path_in_error():
    with pytest.raises(UnsafeCustomHost) as info:
        parse({"strategy": {"mode": "single"}, "targets": [{"provider": "openai", "custom_host": "http://169.254.169.254/latest"}]})
    assert info.value.param == "targets[0].custom_host"


def test_unknown_keys_are_kept_as_provider_options():
    leaf = parse({"provider": "azure-openai", "resource_name": "r", "deployment_id": "d", "api_version": "v"})
    assert leaf.options == {"resource_name": "r", "deployment_id": "d", "api_version": "v"}


def test_header_text_is_parsed_once_and_errors_are_400():
    text = '{"provider": "openai"}'
    assert parse_config_text(text, TRUSTED) is parse_config_text(text, TRUSTED)
    assert parse_config_text(text, TRUSTED, 500) is not parse_config_text(text, TRUSTED)  # the timeout is part of the key
    with pytest.raises(InvalidConfig) as info:
        parse_config_text('{"provider": ', TRUSTED)
    assert info.value.param == "x-portkey-config"
    assert is_inline_config(' {"provider": "openai"}') and not is_inline_config("pc-config-id")


def test_too_deep_nesting_is_refused_without_recursion_error():
    config = {"provider": "openai"}
    for _ in range(50):
        config = {"strategy": {"mode": "single"}, "targets": [config]}
    err = error_of(config)
    assert "deeper" in err.message


@pytest.mark.parametrize(
    "config, param",
    [
        ({"provider": "openai", "api_key": "sk-aaaaaaaaaaaa\n"}, "api_key"),
        ({"provider": "openai", "openai_organization": "org\r\nx-injected: 1"}, "openai_organization"),
        ({"provider": "anthropic", "anthropic_version": "2023-06-01\u2603"}, "anthropic_version"),
        ({"strategy": {"mode": "single"}, "targets": [{"provider": "openai", "virtual_key": "v\x00k"}]}, "targets[0].virtual_key"),
    ],
)
def test_values_sent_as_headers_must_be_valid_header_values(config, param):
    assert error_of(config).param == param


def test_names_may_be_any_text():
    assert parse({"strategy": {"mode": "single"}, "targets": [{"provider": "openai", "name": "模型 ☃"}]}).targets[0].name
