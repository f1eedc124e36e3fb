import pytest

from aigw.upstream.aiohttp_transport import AiohttpTransport, _proxies_configured
from aigw.upstream.transport import TransportError


async def read_all(response):
    parts = []
    while chunk := await response.next_chunk():
        parts.append(chunk)
    return b"".join(parts)

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def test_proxy_lookup_only_when_a_proxy_is_configured(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    assert _proxies_configured() is False
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert _proxies_configured() is True


async def test_connection_refused_is_a_transport_error_and_the_pool_is_reused(fake_provider):
    transport = AiohttpTransport(frozenset({"127.0.0.1"}), pool_size=4, connect_timeout_s=5)
    for _ in range(3):
        r = await transport.request("GET", fake_provider.base_url + "/v1/models", {"authorization": "Bearer sk-x-0123456"}, None)
        assert r.status == 200 and (await read_all(r)).startswith(b"{")
    connector = transport._session.connector  # one keep-alive connection served all three
    assert sum(len(v) for v in connector._conns.values()) == 1
    with pytest.raises(TransportError):
        await transport.request("GET", "http://127.0.0.1:1/v1/models", {}, None)
    await transport.close()
