"""What the cache store costs a request: sticky lookups and cache hits, beside an upstream call.

Run: ``python -m bench.state [--n 2000]`` (from the repo root, project venv; starts its own
redis-server and fake provider on loopback). Nothing is asserted; results are printed and
written to bench/results/state.json.

Measured in one run, interleaved in rounds so machine noise hits every row alike:
  * ``upstream call``: one chat request straight to the fake provider (aiohttp, keep-alive): the
    baseline every other row is compared with;
  * ``sticky L1 hit``: ``StickyState.pick`` for an identifier decided before (identifier hash and
    the in-process lookup), and ``sticky Redis hit`` the same with L1 emptied first, so the
    decision comes from Redis (one GET);
  * ``gateway, forwarded`` and ``gateway, cache HIT``: the same chat request through the local
    server, without a cache and answered from the response cache (embedded store, and Redis).
Reported: p50 and p99 of each, and each p50 over the upstream call's p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from aigw.config.parse import parse_config
from aigw.settings import Settings
from aigw.state.redis_store import RedisStore
from aigw.state.sticky import StickyState, identifier
from bench._stats import summarize
from tests.fakes.provider_server import FakeProvider
from tests.support.local_gateway import LocalGateway
from tests.support.redis_servers import RedisServer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "state.json"
KEY = "sk-bench-state-0123456789"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

Probe = Callable[[], Awaitable[Any]]


async def timed(probe: Probe) -> float:
    start = time.perf_counter()
    await probe()
    return (time.perf_counter() - start) * 1000


async def run(n: int, rounds: int) -> dict[str, Any]:
    with FakeProvider() as fake, RedisServer() as redis_server:
        redis_settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=500)
        with LocalGateway() as plain, LocalGateway(redis_settings) as on_redis:
            async with aiohttp.ClientSession() as http:
                probes = await _probes(http, fake, plain, on_redis, redis_server)
                samples: dict[str, list[float]] = {name: [] for name in probes}
                names = list(probes)
                for r in range(rounds):
                    order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
                    for name in order:
                        probe = probes[name]
                        samples[name].extend([await timed(probe) for _ in range(n // rounds)])
    stats = {name: summarize(values) for name, values in samples.items()}
    base = stats["upstream call"]["p50_ms"]
    return {"rows": {name: {**s, "p50_over_upstream": s["p50_ms"] / base} for name, s in stats.items()},
            "meta": {"n_per_row": n, "rounds": rounds, "python": platform.python_version(),
                     "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}}


async def _probes(http: aiohttp.ClientSession, fake: FakeProvider, plain: LocalGateway, on_redis: LocalGateway,
                  redis_server: RedisServer) -> dict[str, Probe]:
    async def post(url: str, headers: dict[str, str]) -> None:
        async with http.post(url, json=CHAT, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status

    direct = {"authorization": f"Bearer {KEY}"}
    target = {"provider": "openai", "api_key": KEY, "custom_host": fake.base_url + "/v1"}
    forwarded = {"x-portkey-config": json.dumps(target)}
    cached = {"x-portkey-config": json.dumps({**target, "cache": {"mode": "simple"}})}
    for gw in (plain, on_redis):  # fill each gateway's cache once
        await post(gw.base_url + "/v1/chat/completions", cached)

    node = parse_config({"strategy": {"mode": "loadbalance", "sticky": {"enabled": True,
                                                                        "hash_fields": ["metadata.user_id"]}},
                         "targets": [{**target, "api_key": f"sk-{i}-0123456789"} for i in range(3)]},
                        frozenset({"127.0.0.1"}))
    sources = {"metadata": {"user_id": "user-42"}}
    store = RedisStore(redis_server.url, tls=False, cluster=False, timeout_s=0.5, clock=time.monotonic)
    await store.connect()
    sticky = StickyState(lambda: store, time.time)
    await sticky.pick(node, identifier(("metadata.user_id",), sources))  # decided once, stored in Redis

    async def l1_hit() -> None:
        await sticky.pick(node, identifier(("metadata.user_id",), sources))

    async def redis_hit() -> None:
        sticky._l1.clear()  # noqa: SLF001 - the bench measures the store path on purpose
        await sticky.pick(node, identifier(("metadata.user_id",), sources))

    return {
        "upstream call": lambda: post(fake.base_url + "/v1/chat/completions", direct),
        "sticky L1 hit": l1_hit,
        "sticky Redis hit": redis_hit,
        "gateway, forwarded": lambda: post(plain.base_url + "/v1/chat/completions", forwarded),
        "gateway, cache HIT (embedded)": lambda: post(plain.base_url + "/v1/chat/completions", cached),
        "gateway, cache HIT (Redis)": lambda: post(on_redis.base_url + "/v1/chat/completions", cached),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.state", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="samples per row")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.n, args.rounds))
    print(f"{'row':32} {'p50 ms':>9} {'p99 ms':>9} {'p50/upstream':>13}")
    for name, row in result["rows"].items():
        print(f"{name:32} {row['p50_ms']:9.4f} {row['p99_ms']:9.4f} {row['p50_over_upstream']:13.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"Wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
