"""Latency benchmark: the latency the gateway ADDS over a direct call to the same upstream.

Run: ``python -m bench.latency`` (or ``make bench``). Everything talks to 127.0.0.1 only.

Processes (so no two of them share a GIL):
  * upstream   - the fake OpenAI-format provider (``tests.fakes.provider_server``), on uvloop;
  * ours       - ``python -m aigw.adapters.local`` with PORT set: exactly what ``make run`` runs;
  * reference  - the npm ``@portkey-ai/gateway`` (``bench.reference_gateway``);
  * this one   - the load generator on uvloop: a lean raw HTTP/1.1 keep-alive client (about half
                 aiohttp's CPU per request; ``--client aiohttp`` to compare), fresh connections
                 per segment;
  * lambda     - a worker process importing ``functions/chat_completions/app.py`` and calling
                 ``handler(event, context)`` with API Gateway HTTP API v2 events;
  * base       - with ``--baseline-ref REF``: the commit REF exported to a temporary directory
                 (``bench._trees``), run the same way (``python -m aigw.adapters.local`` with
                 ``PYTHONPATH=<export>/shared`` first), plus its own Lambda worker process.

HTTP paths: ``direct`` (client -> upstream), ``ours`` (client -> our server -> upstream),
``base`` (the same through the baseline commit's server, with ``--baseline-ref``) and
``reference`` (client -> reference -> upstream, same ``x-portkey-custom-host``). Levels:
sequential, 8 and 32 concurrent for a small non-streaming chat completion, and sequential and
8 concurrent for the time to the first body chunk of a streaming one. Each level runs in
rounds; every round runs every path (in a rotated order) with a fresh warmed session, so
drift hits all paths alike. Added latency = percentile(through gateway) - percentile(direct)
of the same run and level.

Lambda: in one process on one (default asyncio, as in Lambda's runtime) event loop, calls
alternate between ``handler(event, ctx)`` and a direct aiohttp call to the upstream driven
the same way (``loop.run_until_complete``, a pooled session kept across calls, like the
handler's shared session). Both are wall-clock timed around the synchronous call, so the
difference is what the handler adds (event->ASGI->gateway->upstream->ASGI->response dict).
The calls run in rounds too; with a baseline, its worker (the base tree's app.py, the base
tree's shared/ first on sys.path) takes turns with ours, round by round.

Nothing is asserted; results are printed and written to bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import _trees
from bench._stats import percentile, process_cpu_seconds, summarize
from bench._trees import Tree
from bench.reference_gateway import stop_process

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "latency.json"
CHAT_APP = REPO / "functions" / "chat_completions" / "app.py"

API_KEY = "sk-bench-0123456789abcdef"
CHAT_PATH = "/v1/chat/completions"
_MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
CHAT_BODY = json.dumps({"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 16}).encode()
STREAM_BODY = json.dumps({"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 16, "stream": True}).encode()

PATHS = ("direct", "ours", "base", "reference")
TARGETS = {
    "ours_over_reference_added_p50_sequential": 0.5,
    "ours_over_reference_added_p50_c8": 0.2,
    "lambda_added_p50_ms": 1.0,
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    paths = [str(REPO), str(REPO / "shared")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _tree_env(tree: Tree, *extra: Path) -> dict[str, str]:
    """_env() with ``tree``'s shared/ first on PYTHONPATH (then ``extra``)."""
    env = _env()
    env["PYTHONPATH"] = _trees.pythonpath(tree, *extra, inherited=env["PYTHONPATH"])
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def upstream_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}


def gateway_headers(upstream_base: str) -> dict[str, str]:
    return {
        **upstream_headers(),
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"{upstream_base}/v1",
    }


# --------------------------------------------------------------------------- server processes


def serve_upstream() -> None:
    """Child-process mode: the fake provider on uvloop; prints its base URL, serves until killed."""
    import threading
    from collections import deque

    import uvloop

    # FakeProvider makes its loop with asyncio.new_event_loop(), which follows the policy.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from tests.fakes.provider_server import FakeProvider

    fp = FakeProvider()
    fp.requests = deque(maxlen=16)  # type: ignore[assignment]  # don't keep ~40k recorded requests
    fp.start()
    print(fp.base_url, flush=True)
    threading.Event().wait()


@contextlib.contextmanager
def _child(cmd: list[str], env: dict[str, str], stdout: int | None = None,
           cwd: Path = REPO) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=None)
    try:
        yield proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def run_upstream() -> Iterator[tuple[str, int]]:
    cmd = [sys.executable, "-m", "bench.latency", "--serve-upstream"]
    with _child(cmd, _env(), stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake provider did not start (got {line!r})")
        yield line, proc.pid


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def run_ours(tree: Tree | None = None) -> Iterator[tuple[str, int]]:
    """A tree's local server exactly as ``make run`` starts it (``python -m aigw.adapters.local``
    with PORT set: what every version's local.py understands), on a free loopback port.

    ``tree``'s shared/ goes first on PYTHONPATH (checked in a subprocess first), the cwd is the
    tree's root. Default: the working tree.
    """
    tree = tree or Tree(REPO, "ours")
    port = _free_port()
    env = _tree_env(tree)
    aigw_file = _trees.verify_import(tree, env, tree.root)
    print(f"  {tree.label}: aigw from {aigw_file}", flush=True)
    env.update(PORT=str(port), HOST="127.0.0.1", LOG_LEVEL="warning")
    with _child([sys.executable, "-m", "aigw.adapters.local"], env, stdout=subprocess.DEVNULL,
                cwd=tree.root) as proc:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/v1/health", proc)
        yield base, proc.pid


def _child_pid_with(arg: str) -> int | None:
    """Pid of a direct child of this process whose command line contains ``arg``."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode()
            if int(stat[stat.rindex(")") + 2:].split()[1]) != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if arg.encode() in f.read():
                    return int(entry)
        except (OSError, ValueError):
            continue
    return None


@contextlib.contextmanager
def run_reference() -> Iterator[tuple[str, int | None]]:
    from bench.reference_gateway import run_reference_gateway

    port = _free_port()
    with run_reference_gateway(port=port) as base:
        yield base, _child_pid_with(f"--port={port}")


# --------------------------------------------------------------------------- load generation


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (asyncio streams, pre-encoded request).

    Costs a fraction of aiohttp's per-request CPU, so on a 2-core box the load generator leaves
    the cores to the servers being measured. Handles Content-Length and chunked bodies only
    (all the servers here answer with one of the two).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes, stream: bool) -> tuple[float, bool]:
        """Send ``raw``; return (ms to the full body, or to the first body bytes if stream; ok)."""
        if self.writer is None or self.writer.is_closing():
            await self._connect()
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None
        t0 = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked, keep = False, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = b"close" not in value.lower()
        t_first = None
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected: the final CRLF
                    break
                parts.append(await reader.readexactly(size + 2))
                if t_first is None:
                    t_first = time.perf_counter()
            body = b"".join(parts)
        elif length >= 0:
            body = await reader.readexactly(length) if length else b""
            t_first = time.perf_counter()
        else:  # read to EOF
            body = await reader.read()
            t_first = time.perf_counter()
            keep = False
        t_end = time.perf_counter()
        if not keep:
            self.close()
        if stream:
            ok = status == 200 and b"[DONE]" in body
            return ((t_first or t_end) - t0) * 1000.0, ok
        return (t_end - t0) * 1000.0, status == 200 and b"chat.completion" in body


def build_request(url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    assert u.hostname == "127.0.0.1", "the benchmark only talks to 127.0.0.1"
    lines = [f"POST {u.path} HTTP/1.1", f"host: {u.netloc}", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return u.hostname, int(u.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _one_aiohttp(session: Any, url: str, headers: dict[str, str], body: bytes,
                       stream: bool) -> tuple[float, bool]:
    """One request with aiohttp (``--client aiohttp``): same measurement as RawConnection.request."""
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        if stream:
            first = await resp.content.readany()
            t1 = time.perf_counter()
            rest = [first]
            while chunk := await resp.content.readany():
                rest.append(chunk)
            ok = resp.status == 200 and bool(first) and b"[DONE]" in b"".join(rest)
        else:
            data = await resp.read()
            t1 = time.perf_counter()
            ok = resp.status == 200 and b"chat.completion" in data
    return (t1 - t0) * 1000.0, ok


async def _drive(send: Any, concurrency: int, n: int) -> tuple[list[float], int]:
    """``n`` requests from ``concurrency`` workers; ``send(worker_index)`` does one request."""
    latencies: list[float] = []
    errors = 0
    issued = 0

    async def worker(i: int) -> None:
        nonlocal issued, errors
        while issued < n:
            issued += 1
            try:
                ms, ok = await send(i)
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
                continue
            if ok:
                latencies.append(ms)
            else:
                errors += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return latencies, errors


async def _segment(url: str, headers: dict[str, str], body: bytes, stream: bool, concurrency: int, n: int,
                   server_pids: dict[str, int], client: str) -> dict[str, Any]:
    """Fresh keep-alive connections, warmed, then ``n`` measured requests at ``concurrency``."""
    async with contextlib.AsyncExitStack() as stack:
        if client == "aiohttp":
            import aiohttp

            session = await stack.enter_async_context(aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=30), skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar()))

            async def send(i: int) -> tuple[float, bool]:
                return await _one_aiohttp(session, url, headers, body, stream)
        else:
            host, port, raw = build_request(url, headers, body)
            conns = [RawConnection(host, port) for _ in range(concurrency)]
            stack.callback(lambda: [c.close() for c in conns])

            async def send(i: int) -> tuple[float, bool]:
                return await asyncio.wait_for(conns[i].request(raw, stream), 30)

        await _drive(send, concurrency, max(40, 6 * concurrency))
        gc.collect()
        gc.disable()  # no client GC pauses inside the measured window
        cpu0 = {k: process_cpu_seconds(pid) for k, pid in server_pids.items()}
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            lat, errors = await _drive(send, concurrency, n)
        finally:
            wall, client_cpu = time.perf_counter() - w0, time.process_time() - c0
            gc.enable()
        cpu1 = {k: process_cpu_seconds(pid) for k, pid in server_pids.items()}
    server_cpu = {k: cpu1[k] - cpu0[k] for k in server_pids if cpu0[k] is not None and cpu1[k] is not None}
    return {"lat": lat, "errors": errors, "wall_s": wall, "client_cpu_s": client_cpu, "server_cpu_s": server_cpu}


def _levels(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [
        {"name": "sequential", "concurrency": 1, "n": args.sequential, "stream": False},
        {"name": "c8", "concurrency": 8, "n": args.concurrent, "stream": False},
        {"name": "c32", "concurrency": 32, "n": args.concurrent, "stream": False},
        {"name": "stream_ttfc_sequential", "concurrency": 1, "n": args.stream_sequential, "stream": True},
        {"name": "stream_ttfc_c8", "concurrency": 8, "n": args.stream_concurrent, "stream": True},
    ]


async def measure_http(upstream: str, bases: dict[str, str], pids: dict[str, int | None],
                       args: argparse.Namespace) -> dict[str, Any]:
    """Every level, in rounds; ``pids`` maps "upstream" and each gateway path to its process."""
    urls = {p: b + CHAT_PATH for p, b in bases.items()}
    hdrs = {p: (upstream_headers() if p == "direct" else gateway_headers(upstream)) for p in bases}
    paths = [p for p in PATHS if p in bases]
    out: dict[str, Any] = {}
    for level in _levels(args):
        rounds = args.rounds
        per_round = max(1, level["n"] // rounds)
        body = STREAM_BODY if level["stream"] else CHAT_BODY
        segs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
        t_level = time.perf_counter()
        for r in range(rounds):
            order = paths[r % len(paths):] + paths[: r % len(paths)]
            for p in order:
                watched = {"upstream": pids.get("upstream"), "gateway": pids.get(p)}
                segs[p].append(await _segment(urls[p], hdrs[p], body, level["stream"], level["concurrency"],
                                              per_round, {k: v for k, v in watched.items() if v}, args.client))
        res: dict[str, Any] = {"concurrency": level["concurrency"], "stream": level["stream"],
                               "rounds": rounds, "paths": {}}
        for p in paths:
            lat = [x for s in segs[p] for x in s["lat"]]
            wall = sum(s["wall_s"] for s in segs[p])
            client_cpu = sum(s["client_cpu_s"] for s in segs[p])
            entry = summarize(lat)
            entry["errors"] = sum(s["errors"] for s in segs[p])
            entry["throughput_rps"] = len(lat) / wall if wall else None
            entry["client_cpu_util"] = client_cpu / wall if wall else None
            if lat:
                # CPU each process burned per request: steadier than latency on a noisy box.
                entry["client_cpu_us_per_req"] = client_cpu / len(lat) * 1e6
                for who in ("gateway", "upstream"):
                    cpu = [s["server_cpu_s"][who] for s in segs[p] if who in s["server_cpu_s"]]
                    if cpu:
                        entry[f"{who}_cpu_us_per_req"] = sum(cpu) / len(lat) * 1e6
            entry["round_p50_ms"] = [percentile(sorted(s["lat"]), 50) for s in segs[p]]
            res["paths"][p] = entry
        direct = res["paths"].get("direct")
        res["added"] = {}
        for p in paths:
            if p == "direct" or not direct or not direct.get("n") or not res["paths"][p].get("n"):
                continue
            e = res["paths"][p]
            res["added"][p] = {
                "p50_ms": e["p50_ms"] - direct["p50_ms"],
                "p99_ms": e["p99_ms"] - direct["p99_ms"],
                "round_p50_ms": [a - b for a, b in zip(e["round_p50_ms"], direct["round_p50_ms"], strict=False)],
            }
        res["elapsed_s"] = time.perf_counter() - t_level
        out[level["name"]] = res
        print(f"  {level['name']}: done in {res['elapsed_s']:.1f}s", flush=True)
    return out


# --------------------------------------------------------------------------- Lambda, in-process


def _apigw_v2_event(upstream: str, body: bytes) -> dict[str, Any]:
    headers = {
        **gateway_headers(upstream),
        "content-length": str(len(body)),
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "bench/1.0",
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        "accept": "*/*",
    }
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"POST {CHAT_PATH}",
        "rawPath": CHAT_PATH,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": "POST", "path": CHAT_PATH, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "bench/1.0"},
            "requestId": "bench-request",
            "routeKey": f"POST {CHAT_PATH}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


LAMBDA_MARK = "@@bench-lambda "  # prefixes the worker's protocol lines on stdout (the handler may log there)


def lambda_worker(upstream: str, app: Path, warm: int, profile: str | None) -> None:
    """Child-process mode: load ``app`` (a chat_completions app.py), warm up, then obey stdin.

    First stdout line: the setup (where aigw came from, import and first-invocation times).
    Then per ``run K`` line on stdin: K calls alternating handler(event, ctx) and a direct call
    on the same loop, answered with one line of raw samples. ``end``: write the profile, exit.
    """
    import aiohttp

    t_import = time.perf_counter()
    spec = importlib.util.spec_from_file_location("bench_lambda_chat_completions", app)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.handler
    import_ms = (time.perf_counter() - t_import) * 1000
    import aigw

    loop = asyncio.get_event_loop()  # the loop Mangum set up; it lives as long as the environment

    try:  # the shared payload-2.0 fixture when available (tests/events), else a built-in event
        from tests.support.lambda_events import http_api_event

        event = http_api_event("POST", CHAT_PATH, headers=gateway_headers(upstream), body=CHAT_BODY)
        event_source = "tests/events/http-api-chat-completions.json"
    except Exception:  # noqa: BLE001 - the helper is optional here
        event, event_source = _apigw_v2_event(upstream, CHAT_BODY), "built-in"
    context = SimpleNamespace(function_name="chat_completions", function_version="$LATEST", aws_request_id="bench",
                              invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:chat_completions",
                              memory_limit_in_mb=1024, get_remaining_time_in_millis=lambda: 30_000)
    url, hdrs = upstream + CHAT_PATH, upstream_headers()
    session: list[aiohttp.ClientSession] = []

    async def direct() -> bool:
        if not session:  # same client settings as aigw.upstream.aiohttp_transport
            session.append(aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300, enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar()))
        async with session[0].post(url, data=CHAT_BODY, headers=hdrs) as resp:
            data = await resp.read()
        return resp.status == 200 and b"chat.completion" in data

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()

    def call_direct() -> tuple[float, float, bool]:
        c0, t0 = time.process_time(), time.perf_counter()
        ok = loop.run_until_complete(direct())
        return (time.perf_counter() - t0) * 1000, time.process_time() - c0, ok

    def call_handler(profiled: bool = True) -> tuple[float, float, bool]:
        if prof and profiled:
            prof.enable()
        c0, t0 = time.process_time(), time.perf_counter()
        out = handler(event, context)
        ms, cpu = (time.perf_counter() - t0) * 1000, time.process_time() - c0
        if prof and profiled:
            prof.disable()
        return ms, cpu, out.get("statusCode") == 200 and "chat.completion" in out.get("body", "")

    def run(n: int) -> dict[str, Any]:
        gc.collect()
        hand: list[float] = []
        dire: list[float] = []
        diffs: list[float] = []
        errors = {"handler": 0, "direct": 0}
        cpu = {"handler": 0.0, "direct": 0.0}
        for i in range(n):
            # Alternate which goes first, so neither systematically follows the other.
            if i % 2:
                dms, dcpu, dok = call_direct()
                hms, hcpu, hok = call_handler()
            else:
                hms, hcpu, hok = call_handler()
                dms, dcpu, dok = call_direct()
            cpu["handler"] += hcpu
            cpu["direct"] += dcpu
            if hok:
                hand.append(hms)
            else:
                errors["handler"] += 1
            if dok:
                dire.append(dms)
            else:
                errors["direct"] += 1
            if hok and dok:
                diffs.append(hms - dms)
        return {"n": n, "handler_ms": hand, "direct_ms": dire, "diffs_ms": diffs, "errors": errors, "cpu_s": cpu}

    def send(obj: dict[str, Any]) -> None:
        sys.stdout.write(LAMBDA_MARK + json.dumps(obj) + "\n")
        sys.stdout.flush()

    t0 = time.perf_counter()
    first_ms, _, first_ok = call_handler(False)  # first invocation: creates the upstream session and connection
    first_total_ms = (time.perf_counter() - t0) * 1000
    for _ in range(warm):
        call_direct()
        call_handler(False)
    send({"aigw_file": aigw.__file__, "app": str(app), "event": event_source, "import_ms": import_ms,
          "first_invocation_ms": first_ms, "first_invocation_ok": first_ok,
          "first_invocation_total_ms": first_total_ms})
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            send(run(int(arg)))
        elif cmd == "end":
            break
    if prof and profile:
        prof.dump_stats(profile)


class LambdaWorker:
    """Parent side of one ``--lambda-worker`` process (one per tree), driven chunk by chunk."""

    def __init__(self, tree: Tree, upstream: str, profile: str | None) -> None:
        import tempfile

        self.tree = tree
        cmd = [sys.executable, "-m", "bench.latency", "--lambda-worker", upstream, "--lambda-app", str(tree.chat_app)]
        if profile:
            cmd += ["--profile-lambda", profile]
        # The tree's shared/ first, then the repo (the harness: bench/, tests/) - cwd is the repo.
        env = _tree_env(tree, REPO)
        env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
        # The upstream is on loopback, which a route function refuses unless trusted (as in cold_start).
        env["TRUSTED_CUSTOM_HOSTS"] = "127.0.0.1"
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.setup = self._read(120)
        _trees.check_aigw_file(tree, self.setup["aigw_file"])

    def _read(self, timeout: float) -> dict[str, Any]:
        import threading

        assert self.proc.stdout is not None
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            while line := self.proc.stdout.readline():
                text = line.decode(errors="replace")
                if text.startswith(LAMBDA_MARK):
                    return json.loads(text[len(LAMBDA_MARK):])
        finally:
            watchdog.cancel()
        self.proc.wait(10)
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace")[-3000:]
        sys.stderr.write(tail)
        raise RuntimeError(f"{self.tree.label}: lambda worker exited with {self.proc.returncode}")

    def run(self, n: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {n}\n".encode())
        self.proc.stdin.flush()
        return self._read(300)

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(b"end\n")
                self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            stop_process(self.proc)
        self.stderr.close()


def _lambda_summary(tree: Tree, setup: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The lambda result (same fields as ever) from a worker's setup line and its chunks."""
    n = sum(c["n"] for c in chunks)
    hand = [x for c in chunks for x in c["handler_ms"]]
    dire = [x for c in chunks for x in c["direct_ms"]]
    sd = sorted(x for c in chunks for x in c["diffs_ms"])
    h, d = summarize(hand), summarize(dire)
    cpu_h = sum(c["cpu_s"]["handler"] for c in chunks)
    cpu_d = sum(c["cpu_s"]["direct"] for c in chunks)
    rounds = [percentile(sorted(c["handler_ms"]), 50) - percentile(sorted(c["direct_ms"]), 50)
              if c["handler_ms"] and c["direct_ms"] else None for c in chunks]
    return {
        "n": n,
        "errors": {k: sum(c["errors"][k] for c in chunks) for k in ("handler", "direct")},
        "handler": h,
        "direct": d,
        "added": {
            "p50_ms": h["p50_ms"] - d["p50_ms"] if hand and dire else None,
            "p99_ms": h["p99_ms"] - d["p99_ms"] if hand and dire else None,
            "paired_median_ms": percentile(sd, 50) if sd else None,
            "round_p50_ms": rounds,
        },
        "handler_cpu_us_per_call": cpu_h / n * 1e6 if n else None,
        "direct_cpu_us_per_call": cpu_d / n * 1e6 if n else None,
        "rounds": len(chunks),
        "tree": tree.label,
        **setup,
    }


def measure_lambda(upstream: str, args: argparse.Namespace, trees: dict[str, Tree] | None = None) -> dict[str, Any]:
    """One worker process per tree ({"ours": ...} by default); ``args.lambda_n`` calls each, in
    ``args.rounds`` chunks that take turns (rotated order), like the HTTP paths. Returns
    {tree name: result}; a worker that fails gives {"error": ...} and the others carry on."""
    trees = trees or {"ours": Tree(REPO, "ours")}
    out: dict[str, Any] = {}
    workers: dict[str, LambdaWorker] = {}
    chunks: dict[str, list[dict[str, Any]]] = {}
    try:
        for name, tree in trees.items():
            try:
                workers[name] = LambdaWorker(tree, upstream, args.profile_lambda if name == "ours" else None)
                chunks[name] = []
            except Exception as exc:  # noqa: BLE001 - reported in the results
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        names = list(workers)
        per_round = max(1, args.lambda_n // args.rounds)
        for r in range(args.rounds if names else 0):
            for name in names[r % len(names):] + names[: r % len(names)]:
                if name in out:
                    continue
                try:
                    chunks[name].append(workers[name].run(per_round))
                except Exception as exc:  # noqa: BLE001 - reported in the results
                    out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for w in workers.values():
            w.close()
    for name, w in workers.items():
        if name not in out:
            out[name] = _lambda_summary(w.tree, w.setup, chunks[name])
    return {name: out[name] for name in trees}


# --------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def compute_ratios(http: dict[str, Any], lam: dict[str, Any]) -> dict[str, Any]:
    def added(level: str, path: str) -> float | None:
        return http.get(level, {}).get("added", {}).get(path, {}).get("p50_ms")

    def by_round(level: str) -> list[float | None]:
        added_ = http.get(level, {}).get("added", {})
        ours, ref = added_.get("ours", {}).get("round_p50_ms", []), added_.get("reference", {}).get("round_p50_ms", [])
        return [_ratio(a, b) for a, b in zip(ours, ref, strict=False)]

    return {
        "by_round": {level: by_round(level) for level in ("sequential", "c8", "c32")},
        "ours_over_reference_added_p50_sequential": _ratio(added("sequential", "ours"), added("sequential", "reference")),
        "ours_over_reference_added_p50_c8": _ratio(added("c8", "ours"), added("c8", "reference")),
        "ours_over_reference_added_p50_c32": _ratio(added("c32", "ours"), added("c32", "reference")),
        "lambda_added_p50_ms": (lam.get("added") or {}).get("p50_ms"),
    }


def compute_baseline(http: dict[str, Any], lam: dict[str, Any], lam_base: dict[str, Any]) -> dict[str, Any]:
    """Ours against the baseline commit, measured in the same run: per level, added p50/p99 of
    both, ours/base of added p50 (pooled and per round) and of gateway CPU per request; the
    same for the in-process Lambda handler."""
    levels: dict[str, Any] = {}
    for level, res in http.items():
        add, paths = res.get("added", {}), res.get("paths", {})
        if "base" not in add or "ours" not in add:
            continue
        o, b = add["ours"], add["base"]
        cpu_o, cpu_b = paths["ours"].get("gateway_cpu_us_per_req"), paths["base"].get("gateway_cpu_us_per_req")
        levels[level] = {
            "ours_added_p50_ms": o["p50_ms"], "base_added_p50_ms": b["p50_ms"],
            "ours_added_p99_ms": o["p99_ms"], "base_added_p99_ms": b["p99_ms"],
            "ours_minus_base_added_p50_ms": o["p50_ms"] - b["p50_ms"],
            "ours_over_base_added_p50": _ratio(o["p50_ms"], b["p50_ms"]),
            "ours_over_base_added_p50_by_round": [_ratio(x, y) for x, y in
                                                  zip(o["round_p50_ms"], b["round_p50_ms"], strict=False)],
            "ours_gateway_cpu_us_per_req": cpu_o, "base_gateway_cpu_us_per_req": cpu_b,
            "ours_over_base_gateway_cpu": _ratio(cpu_o, cpu_b),
            "ours_errors": paths["ours"].get("errors", 0), "base_errors": paths["base"].get("errors", 0),
        }
    out: dict[str, Any] = {"levels": levels}
    if "error" not in lam and "error" not in lam_base:
        a, b = lam["added"], lam_base["added"]
        out["lambda"] = {
            "ours_added_p50_ms": a["p50_ms"], "base_added_p50_ms": b["p50_ms"],
            "ours_added_p99_ms": a["p99_ms"], "base_added_p99_ms": b["p99_ms"],
            "ours_minus_base_added_p50_ms": (a["p50_ms"] - b["p50_ms"]
                                             if a["p50_ms"] is not None and b["p50_ms"] is not None else None),
            "ours_over_base_added_p50": _ratio(a["p50_ms"], b["p50_ms"]),
            "ours_over_base_added_p50_by_round": [_ratio(x, y) for x, y in
                                                  zip(a["round_p50_ms"], b["round_p50_ms"], strict=False)],
            "ours_over_base_paired_median": _ratio(a["paired_median_ms"], b["paired_median_ms"]),
            "ours_handler_cpu_us_per_call": lam["handler_cpu_us_per_call"],
            "base_handler_cpu_us_per_call": lam_base["handler_cpu_us_per_call"],
            "ours_over_base_handler_cpu": _ratio(lam["handler_cpu_us_per_call"], lam_base["handler_cpu_us_per_call"]),
            "ours_errors": lam["errors"]["handler"], "base_errors": lam_base["errors"]["handler"],
        }
    return out


def _print_lambda(lam: dict[str, Any], label: str = "") -> None:
    if "error" in lam:
        print(f"Lambda in-process{label}: {lam['error']}")
        return
    h, d, a = lam["handler"], lam["direct"], lam["added"]
    print(f"Lambda handler in-process{label} (API GW v2 event, default asyncio loop), n={lam['n']} "
          f"errors={lam['errors']}:")
    print(f"  handler p50 {_fmt(h.get('p50_ms'), 3)}  p99 {_fmt(h.get('p99_ms'), 3)} | direct p50 "
          f"{_fmt(d.get('p50_ms'), 3)}  p99 {_fmt(d.get('p99_ms'), 3)} | added p50 {_fmt(a['p50_ms'], 3)}  p99 "
          f"{_fmt(a['p99_ms'], 3)}"
          f"  paired-median {_fmt(a['paired_median_ms'], 3)}")
    print(f"  CPU per call: handler {_fmt(lam['handler_cpu_us_per_call'], 0)} us, direct "
          f"{_fmt(lam['direct_cpu_us_per_call'], 0)} us; "
          f"module import {_fmt(lam['import_ms'], 1)} ms; first invocation {_fmt(lam['first_invocation_ms'], 1)} ms")


def _errs(c: dict[str, Any]) -> str:
    return f"{c['ours_errors']}/{c['base_errors']}"


def print_baseline(result: dict[str, Any]) -> None:
    bl = result["baseline"]
    ours_label = result["meta"]["trees"]["ours"]["label"]
    print(f"{ours_label} vs {bl['label']} ({bl['sha']}), same run, same rounds "
          "(ours/base: < 1 = ours faster; judge by the CPU ratio and the spread of the per-round ratios):")
    head = (f"{'level':<23}{'+p50 ours':>10}{'base':>7}{'ratio':>7}{'diff':>7}{'+p99 ours':>10}{'base':>7}"
            f"{'gwCPU ours':>11}{'base':>6}{'ratio':>7}{'err o/b':>10}  +p50 ratio by round")
    print(head)
    print("-" * len(head))
    for level, c in bl["levels"].items():
        rounds = " ".join(_fmt(x) for x in c["ours_over_base_added_p50_by_round"])
        print(f"{level:<23}{_fmt(c['ours_added_p50_ms']):>10}{_fmt(c['base_added_p50_ms']):>7}"
              f"{_fmt(c['ours_over_base_added_p50']):>7}{_fmt(c['ours_minus_base_added_p50_ms']):>7}"
              f"{_fmt(c['ours_added_p99_ms']):>10}{_fmt(c['base_added_p99_ms']):>7}"
              f"{_fmt(c['ours_gateway_cpu_us_per_req'], 0):>11}{_fmt(c['base_gateway_cpu_us_per_req'], 0):>6}"
              f"{_fmt(c['ours_over_base_gateway_cpu']):>7}{_errs(c):>10}  {rounds}")
    c = bl.get("lambda")
    if c:
        rounds = " ".join(_fmt(x) for x in c["ours_over_base_added_p50_by_round"])
        print(f"{'lambda in-process':<23}{_fmt(c['ours_added_p50_ms'], 3):>10}{_fmt(c['base_added_p50_ms'], 3):>7}"
              f"{_fmt(c['ours_over_base_added_p50']):>7}{_fmt(c['ours_minus_base_added_p50_ms'], 3):>7}"
              f"{_fmt(c['ours_added_p99_ms']):>10}{_fmt(c['base_added_p99_ms']):>7}"
              f"{_fmt(c['ours_handler_cpu_us_per_call'], 0):>11}{_fmt(c['base_handler_cpu_us_per_call'], 0):>6}"
              f"{_fmt(c['ours_over_base_handler_cpu']):>7}{_errs(c):>10}  {rounds}")
        print(f"  (lambda: CPU columns are the handler's CPU per call in the worker process; paired-median added: "
              f"ours {_fmt(result['lambda']['added']['paired_median_ms'], 3)}, base "
              f"{_fmt(bl['lambda_result']['added']['paired_median_ms'], 3)}, ratio "
              f"{_fmt(c['ours_over_base_paired_median'])})")
    else:
        print(f"lambda in-process: no comparison ({bl['lambda_result'].get('error', 'ours failed')})")
    if any(r["ours_errors"] or r["base_errors"] for r in [*bl["levels"].values(), *([c] if c else [])]):
        print("  ERRORS on a side (err o/b): its numbers are not comparable; see the table above.")
    print()


def print_report(result: dict[str, Any]) -> None:
    http, lam, ratios = result["http"], result["lambda"], result["ratios"]
    m = result["meta"]
    print()
    print(f"Latency (ms), {m['cpu_count']} CPUs, python {m['python']}, node {m['node']}  -- 2-core box: noisy")
    print(f"client: {m['client']}; +p50/+p99 = gateway path minus direct, same run and level; "
          "CPU columns: microseconds of CPU per request in the client / gateway / upstream process; "
          "cli% = client process CPU use")
    head = (f"{'level':<23}{'path':<10}{'n':>5}{'err':>4}{'p50':>7}{'p99':>7}{'+p50':>7}{'+p99':>7}"
            f"{'rps':>6}{'cli/gw/up us':>16}{'cli%':>5}  +p50 by round")
    print(head)
    print("-" * len(head))

    def us(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}"

    for level, res in http.items():
        for p, e in res["paths"].items():
            add = res["added"].get(p, {})
            rounds = " ".join(_fmt(x, 1) for x in add.get("round_p50_ms", []))
            cpu = "/".join(us(e.get(f"{w}_cpu_us_per_req")) for w in ("client", "gateway", "upstream"))
            print(f"{level:<23}{p:<10}{e.get('n', 0):>5}{e['errors']:>4}{_fmt(e.get('p50_ms')):>7}"
                  f"{_fmt(e.get('p99_ms')):>7}{_fmt(add.get('p50_ms')):>7}{_fmt(add.get('p99_ms')):>7}"
                  f"{_fmt(e.get('throughput_rps'), 0):>6}{cpu:>16}"
                  f"{_fmt((e.get('client_cpu_util') or 0) * 100, 0):>5}  {rounds}")
    print()
    _print_lambda(lam)
    if "baseline" in result:
        _print_lambda(result["baseline"]["lambda_result"], f" [{result['baseline']['label']}]")
    print()
    if "baseline" in result:
        print_baseline(result)
    print("Targets:")
    for key, target in TARGETS.items():
        value = ratios.get(key)
        if value is None:
            verdict = "n/a"
        else:
            met = value < target if key == "lambda_added_p50_ms" else value <= target
            verdict = "met" if met else "NOT met"
        cmp = "<" if key == "lambda_added_p50_ms" else "<="
        level = {"ours_over_reference_added_p50_sequential": "sequential",
                 "ours_over_reference_added_p50_c8": "c8"}.get(key)
        rounds = ""
        if level:
            rounds = "  by round: " + " ".join(_fmt(x) for x in ratios["by_round"].get(level, []))
        print(f"  {key:<42} {_fmt(value, 3):>7}  (target {cmp} {target})  {verdict:<8}{rounds}")
    rounds = " ".join(_fmt(x) for x in ratios["by_round"].get("c32", []))
    print(f"  {'ours_over_reference_added_p50_c32':<42} {_fmt(ratios.get('ours_over_reference_added_p50_c32'), 3):>7}"
          f"  (info)                    by round: {rounds}")
    print()
    print(f"Wrote {result['meta']['results_path']}  (total {result['meta']['elapsed_s']:.0f}s)")


def _node_version() -> str | None:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=2000, help="non-streaming sequential requests per path")
    ap.add_argument("--concurrent", type=int, default=4000, help="requests per path at 8 and at 32 concurrent")
    ap.add_argument("--stream-sequential", type=int, default=1000)
    ap.add_argument("--stream-concurrent", type=int, default=2000)
    ap.add_argument("--lambda-n", type=int, default=2000, help="handler calls (and as many direct calls)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="a tenth of the requests (smoke test)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference gateway (no node needed)")
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                    help="load generator: a lean raw HTTP/1.1 client (default) or aiohttp")
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--profile-lambda", metavar="FILE", help="cProfile the handler calls into FILE")
    ap.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lambda-worker", metavar="UPSTREAM", help=argparse.SUPPRESS)
    ap.add_argument("--lambda-app", type=Path, default=CHAT_APP, help=argparse.SUPPRESS)
    _trees.add_arguments(ap)
    args = ap.parse_args(argv)

    if args.serve_upstream:
        serve_upstream()
        return 0
    if args.lambda_worker:
        lambda_worker(args.lambda_worker, args.lambda_app, warm=200, profile=args.profile_lambda)
        return 0
    if args.quick:
        for name in ("sequential", "concurrent", "stream_sequential", "stream_concurrent", "lambda_n"):
            setattr(args, name, max(args.rounds * 10, getattr(args, name) // 10))

    import uvloop

    t0 = time.perf_counter()
    print("latency bench: starting upstream, our server and the reference gateway on 127.0.0.1", flush=True)
    with contextlib.ExitStack() as stack:
        ours_tree, base_tree = stack.enter_context(_trees.open_trees(args))
        trees = {"ours": ours_tree} | ({"base": base_tree} if base_tree else {})
        upstream, up_pid = stack.enter_context(run_upstream())
        bases = {"direct": upstream}
        pids: dict[str, int | None] = {"upstream": up_pid}
        for name, tree in trees.items():
            bases[name], pids[name] = stack.enter_context(run_ours(tree))
        if not args.no_reference:
            try:
                ref, ref_pid = stack.enter_context(run_reference())
                bases["reference"], pids["reference"] = ref, ref_pid
            except Exception as exc:  # noqa: BLE001 - reported; the rest still runs
                print(f"  reference gateway unavailable: {type(exc).__name__}: {exc}", flush=True)
        print(f"  upstream {upstream}  ours {bases['ours']}  reference {bases.get('reference', '-')}"
              + (f"  base ({base_tree.label}) {bases['base']}" if base_tree else ""), flush=True)
        http = uvloop.run(measure_http(upstream, bases, pids, args))
        print("  lambda in-process: running", flush=True)
        lams = measure_lambda(upstream, args, trees)
        lam = lams["ours"]
        tree_meta = {name: tree.describe() for name, tree in trees.items()}
    result = {
        "meta": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "node": _node_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "counts": {k: getattr(args, k) for k in ("sequential", "concurrent", "stream_sequential",
                                                     "stream_concurrent", "lambda_n", "rounds")},
            "client": args.client,
            "trees": tree_meta,
            "elapsed_s": time.perf_counter() - t0,
            "results_path": str(Path(args.output)),
            "notes": "added = percentile(gateway) - percentile(direct), same run and level; latencies in ms; "
                     "stream_* levels measure time to the first body chunk; gateway_cpu_us_per_req is the "
                     "gateway process's own CPU per request.",
        },
        "http": http,
        "lambda": lam,
    }
    result["ratios"] = compute_ratios(http, lam)
    result["targets"] = TARGETS
    if base_tree is not None:
        result["baseline"] = {"ref": base_tree.ref, "sha": base_tree.sha, "label": base_tree.label,
                              **compute_baseline(http, lam, lams["base"]), "lambda_result": lams["base"]}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
