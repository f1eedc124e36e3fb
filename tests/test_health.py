"""GET /v1/health: cheap, and honest about a saturated provider connection pool."""

import threading

import httpx

from aigw.settings import Settings
from tests.fakes.provider_server import Reply
from tests.support.local_gateway import LocalGateway

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_health_before_any_provider_call_builds_no_transport():
    with LocalGateway() as gw, httpx.Client(base_url=gw.base_url) as c:
        r = c.get("/v1/health")
        assert r.status_code == 200 and r.json()["status"] == "success" and "upstream_pool" not in r.json()
        assert gw.gateway.built_transport is None


def test_a_saturated_pool_makes_health_503_until_it_frees(fake_provider):
    # GIVEN a gateway whose provider pool holds one connection, busy with a slow call
    settings = Settings(upstream_pool_size=1, upstream_pool_per_host=1)
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake_provider.base_url + "/v1",
               "authorization": "Bearer sk-test-0123456789"}
    with LocalGateway(settings) as gw, httpx.Client(base_url=gw.base_url, timeout=10) as c:
        assert c.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200  # pool built
        fake_provider.script("openai.chat", Reply(delay_s=1.5))
        slow = threading.Thread(target=lambda: c.post("/v1/chat/completions", json=CHAT, headers=headers))
        slow.start()
        try:
            # WHEN health is asked while the call is in flight
            statuses = []
            for _ in range(200):
                r = c.get("/v1/health")
                statuses.append(r.status_code)
                if r.status_code == 503:
                    break
                threading.Event().wait(0.01)
            # THEN it reports the saturation
            assert statuses[-1] == 503, statuses
            assert r.json()["upstream_pool"]["in_use"] == 1 and r.json()["upstream_pool"]["limit"] == 1
        finally:
            slow.join()
        # AND once the call is over, it is healthy again
        r = c.get("/v1/health")
        assert r.status_code == 200 and r.json()["upstream_pool"]["in_use"] == 0
