"""Which proxy a request goes through, read from the environment as curl and aiohttp read it."""

import pytest

from aigw.upstream.proxy_env import from_env
from aigw.upstream.stdlib_connection import connect_request


@pytest.mark.parametrize(
    "env, scheme, host, expected",
    [
        ({}, "https", "api.openai.com", None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https", "api.openai.com", "http://proxy:3128"),
        ({"https_proxy": "http://p:1"}, "https", "api.openai.com", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "openai.com,localhost"}, "https", "api.openai.com", None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": ".openai.com"}, "https", "API.openai.com.", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https", "x.example", None),
        ({"HTTP_PROXY": "http://p:1"}, "https", "api.openai.com", None),
        ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "example.org"}, "http", "notexample.com", "http://p:1"),
        ({"HTTP_PROXY": "p:1"}, "http", "x.example", "http://p:1"),  # as curl reads it
    ],
)
def test_proxy_for(env, scheme, host, expected):
    proxy = from_env(env).select(scheme, host)
    assert (proxy.url if proxy else None) == expected


def test_proxy_address_credentials_and_names():
    settings = from_env({"HTTPS_PROXY": "http://us%40er:p%3Ass@proxy.corp:3128", "HTTP_PROXY": "squid"})
    https = settings.select("https", "api.openai.com")
    assert (https.host, https.port, https.authorization) == ("proxy.corp", 3128, "Basic dXNAZXI6cDpzcw==")
    http = settings.select("http", "x.example")
    assert (http.host, http.port, http.authorization) == ("squid", 80, None)
    assert settings.hosts == {"proxy.corp", "squid"}
    assert not from_env({})


def test_the_connect_line_names_the_checked_address():
    # The proxy is asked for the IP the SSRF guard checked, never for the name it could re-resolve.
    assert connect_request("93.184.215.14", 443, None) == (
        b"CONNECT 93.184.215.14:443 HTTP/1.1\r\nHost: 93.184.215.14:443\r\n\r\n")
    assert connect_request("2606:2800::1", 8443, "Basic eDp5") == (
        b"CONNECT [2606:2800::1]:8443 HTTP/1.1\r\nHost: [2606:2800::1]:8443\r\nProxy-Authorization: Basic eDp5\r\n\r\n")
