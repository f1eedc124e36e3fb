import pytest

from aigw.errors import InvalidHeader, UnknownProvider, UnsafeCustomHost
from aigw.portkey_headers import bearer_key, read_options

TRUSTED = frozenset({"127.0.0.1"})


@pytest.mark.parametrize(
    "headers, key",
    [
        ({"authorization": "Bearer sk-1"}, "sk-1"),
        ({"authorization": "bearer   sk-2 "}, "sk-2"),
        ({"authorization": "Bearer undefined"}, None),
        ({"authorization": "Bearer"}, None),
        ({"authorization": "Bearer null", "x-api-key": "ant-1"}, "ant-1"),
        ({"api-key": "az-1"}, "az-1"),
        ({}, None),
        # Only a bearer token is a key: another scheme is never forwarded as one.
        ({"authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"authorization": "sk-raw-no-scheme"}, None),
        ({"authorization": "Basic dXNlcjpwYXNz", "x-api-key": "ant-2"}, "ant-2"),
    ],
)
def test_provider_key_from_request(headers, key):
    assert bearer_key(headers) == key


def test_headers_only_target():
    opts = read_options({
        "x-portkey-provider": "azure-openai", "x-portkey-azure-resource-name": "r", "x-portkey-azure-deployment-id": "d",
        "x-portkey-request-timeout": "1500", "x-portkey-forward-headers": "X-A, x-b", "x-portkey-metadata": '{"u": "1"}',
        "authorization": "Bearer k",
    }, TRUSTED)
    root = opts.root
    assert root.provider == "azure-openai" and root.path == "config"
    assert root.options == {"resource_name": "r", "deployment_id": "d"}
    assert root.request_timeout_ms == 1500 and root.forward_headers == ("x-a", "x-b")
    assert opts.metadata == {"u": "1"} and opts.api_key == "k"


def test_config_header_wins_over_provider_header():
    opts = read_options({"x-portkey-config": '{"provider": "anthropic"}', "x-portkey-provider": "openai"}, TRUSTED)
    assert opts.root.provider == "anthropic"


def test_a_saved_config_is_parsed_with_the_header_timeout_as_default():
    opts = read_options({"x-portkey-config": "pc-abc", "x-portkey-request-timeout": "700"}, TRUSTED,
                        saved_config={"provider": "openai"})
    assert opts.root.provider == "openai" and opts.root.request_timeout_ms == 700


@pytest.mark.parametrize(
    "headers, exc, param",
    [
        ({}, InvalidHeader, "x-portkey-provider"),
        ({"x-portkey-provider": "nope"}, UnknownProvider, "x-portkey-provider"),
        ({"x-portkey-provider": "openai", "x-portkey-request-timeout": "-1"}, InvalidHeader, "x-portkey-request-timeout"),
        ({"x-portkey-config": '{"provider": "openai"}', "x-portkey-request-timeout": "soon"}, InvalidHeader,
         "x-portkey-request-timeout"),
        ({"x-portkey-provider": "openai", "x-portkey-metadata": '{"a": {"b": 1}}'}, InvalidHeader, "x-portkey-metadata.a"),
        ({"x-portkey-provider": "openai", "x-portkey-custom-host": "http://10.1.2.3/v1"}, UnsafeCustomHost, "x-portkey-custom-host"),
    ],
)
def test_bad_headers(headers, exc, param):
    with pytest.raises(exc) as info:
        read_options(headers, TRUSTED)
    assert info.value.param == param and info.value.status == 400
