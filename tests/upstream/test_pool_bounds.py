"""Both transports: the pool is bounded in total and per host, reports itself, and no
cancellation (the caller's timeouts) ever leaks a connection slot."""

import asyncio
import random
from contextlib import suppress

import pytest

from aigw.upstream.pool_stats import PoolStats
from aigw.upstream.transport import TransportError, make_transport
from tests.upstream.raw_server import RawServer

TRANSPORTS = ["stdlib", "aiohttp"]


def build(name, pool_size, pool_per_host, connect_timeout_s=0.5):
    return make_transport(name, trusted_hosts=frozenset({"127.0.0.1"}), pool_size=pool_size,
                          pool_per_host=pool_per_host, connect_timeout_s=connect_timeout_s)


async def call(transport, port):
    response = await transport.request("GET", f"http://127.0.0.1:{port}/v1/models", {}, None)
    parts = []
    while chunk := await response.next_chunk():
        parts.append(chunk)
    return response.status, b"".join(parts)


async def until(condition, timeout=5.0):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def cancel_all(tasks):
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_host_that_never_answers_cannot_take_every_connection(name):
    # GIVEN a host that never answers, already holding its per-host share of connections
    hanging, healthy = RawServer(hang=True), RawServer()
    transport = build(name, pool_size=8, pool_per_host=2)
    stuck = [asyncio.create_task(call(transport, hanging.port)) for _ in range(2)]
    await until(lambda: transport.pool_stats().in_use == 2)
    # WHEN one more request goes to it
    extra = asyncio.create_task(call(transport, hanging.port))
    await until(lambda: transport.pool_stats().waiting == 1)
    # THEN it waits (the stats say so) while another host still gets through, and then fails
    assert transport.pool_stats() == PoolStats(in_use=2, limit=8, busiest_host_in_use=2, per_host_limit=2, waiting=1)
    assert await call(transport, healthy.port) == (200, b"{}")
    with pytest.raises(TransportError) as info:
        await extra
    if name == "stdlib":
        assert "pool exhausted" in str(info.value)
    assert hanging.connections == 2
    await cancel_all(stuck)
    assert transport.pool_stats().in_use == 0
    await transport.close()
    hanging.close()
    healthy.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_the_pool_size_bounds_connections_in_total(name):
    a, b, c = RawServer(hang=True), RawServer(hang=True), RawServer()
    transport = build(name, pool_size=2, pool_per_host=2, connect_timeout_s=0.3)
    stuck = [asyncio.create_task(call(transport, a.port)), asyncio.create_task(call(transport, b.port))]
    await until(lambda: transport.pool_stats().in_use == 2)
    with pytest.raises(TransportError):
        await call(transport, c.port)
    assert c.connections == 0
    await cancel_all(stuck)
    assert await call(transport, c.port) == (200, b"{}")  # free again
    await transport.close()
    for server in (a, b, c):
        server.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_cancelling_at_any_point_never_leaks_a_slot(name):
    # Timeouts are applied by the caller around request and next_chunk: each one cancels the call
    # wherever it is (waiting for a slot, connecting, waiting for the head, mid-body).
    hanging, partial, healthy = RawServer(hang=True), RawServer(partial=True), RawServer(delay_s=0.01)
    transport = build(name, pool_size=6, pool_per_host=2, connect_timeout_s=2)
    rng = random.Random(1234)

    async def one(port, seconds):
        with suppress(TimeoutError, TransportError):
            async with asyncio.timeout(seconds):
                await call(transport, port)

    for _ in range(20):
        ports = [rng.choice((hanging.port, partial.port, healthy.port)) for _ in range(8)]
        await asyncio.gather(*(one(port, rng.uniform(0, 0.03)) for port in ports))
    stats = transport.pool_stats()
    assert (stats.in_use, stats.busiest_host_in_use, stats.waiting) == (0, 0, 0)
    assert await call(transport, healthy.port) == (200, b"{}")
    await transport.close()
    for server in (hanging, partial, healthy):
        server.close()
