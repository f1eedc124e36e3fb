"""The gateway's services: two egress paths, built on first use, closed together."""

import pytest

from aigw.gateway import Gateway
from aigw.settings import Settings
from aigw.upstream.transport import TransportError


@pytest.mark.parametrize("client", ["aiohttp", "stdlib"])
async def test_infrastructure_egress_reaches_what_provider_egress_refuses(fake_provider, client):
    # GIVEN a gateway that trusts no private address for custom hosts (as on Lambda or Azure)
    gw = Gateway(Settings(trusted_custom_hosts=frozenset(), upstream_client=client))
    # A name that resolves to loopback: IP literals are judged by the URL guard before any transport.
    url = fake_provider.base_url.replace("127.0.0.1", "localhost") + "/v1/models"
    headers = {"authorization": "Bearer sk-infra-0123456789"}
    try:
        # WHEN both egress paths call the same loopback address
        with pytest.raises(TransportError):
            await gw.transport.request("GET", url, headers, None)
        response = await gw.infra_transport.request("GET", url, headers, None)
        while await response.next_chunk():
            pass
        # THEN only the operator's infrastructure path got through (no TRUSTED_CUSTOM_HOSTS needed)
        assert response.status == 200 and len(fake_provider.requests) == 1
    finally:
        await gw.close()


async def test_services_are_built_on_first_use_only():
    gw = Gateway(Settings())
    assert gw.built_transport is None  # health never builds one
    transport = gw.transport
    assert gw.built_transport is transport and gw.transport is transport
    await gw.close()
    assert gw.built_transport is None
