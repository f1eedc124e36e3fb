"""Key scrubbing cost (``aigw.redact.Scrubber``), against baselines measured in the same run.

Run: ``python -m bench.scrub`` (about 30 s). Nothing is asserted; results are printed and written
to bench/results/scrub.json.

* body: ``Scrubber.bytes`` on a 64 KB chat completion body holding no key, against
  ``bytes.replace`` of the key (the cheapest possible scrub, and what the gateway used to do).
  Three bodies: plain ASCII, JSON with ``\\n``/``\\"`` escapes, and one with ``\\uXXXX`` escapes
  of key characters (the slow path: escapes decoded into a view).
* stream: ``Scrubber.stream`` over 2000 small SSE events, one chunk each, against an async
  generator that yields the chunks unchanged and one that ``bytes.replace``s each chunk.
* big keys: seconds for 20 MB streams (64 KB chunks) with the longest allowed key (8192
  characters) and, with the limit lifted for the measurement, a 60 KB key: benign text, and
  the adversarial cases (a self-overlapping key and input made of its characters; one line of
  20 MB with no line end; a key whose probe nearly matches every position of short lines; a
  flood of escapes of a key character, each decoded in Python: the slowest path).
"""

from __future__ import annotations

import asyncio
import json
import platform
import random
import string
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aigw import redact
from aigw.redact import Scrubber

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "scrub.json"

_rnd = random.Random(7)
KEY = "sk-proj-" + "".join(_rnd.choice(string.ascii_letters + string.digits) for _ in range(48))


def best_of(fn: Callable[[], object], runs: int, inner: int) -> float:
    """Seconds per call, the best of ``runs`` batches of ``inner`` calls."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t) / inner)
    return best


def bodies() -> dict[str, bytes]:
    words = "the quick brown fox jumps over the lazy dog while gateways relay tokens "
    text = (words * 900)[:60000]
    plain = json.dumps({"id": "chatcmpl-1", "object": "chat.completion",
                        "choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
    escaped = json.dumps({"choices": [{"message": {"content": text.replace("dog ", 'dog "x"\n')}}]}).encode()
    key_escapes = escaped.replace(b"fox", b"\\u0066ox")  # "f" is a key character: decoded into a view
    return {"plain": plain[:65536], "json escapes": escaped[:65536], "key-char \\u escapes": key_escapes[:65536]}


def bench_bodies(out: dict[str, object]) -> None:
    scrubber = Scrubber([KEY])
    key = KEY.encode()
    print("bytes() of a 64 KB body without the key (ratio to bytes.replace of the key):")
    for name, body in bodies().items():
        base = best_of(lambda body=body: body.replace(key, redact.REDACTED), 7, 200)
        ours = best_of(lambda body=body: scrubber.bytes(body), 7, 200)
        print(f"  {name:22} replace {base * 1e6:8.1f} us   ours {ours * 1e6:8.1f} us   ratio {ours / base:6.2f}")
        out[f"body[{name}]"] = {"replace_us": base * 1e6, "ours_us": ours * 1e6, "ratio": ours / base}
    build = best_of(lambda: Scrubber([KEY, "sk-ant-" + KEY]), 5, 2000)
    print(f"  Scrubber([2 keys]) construction: {build * 1e6:.1f} us")
    out["construction_us"] = build * 1e6


async def _drain(stream: AsyncIterator[bytes]) -> int:
    n = 0
    async for chunk in stream:
        n += len(chunk)
    return n


async def _source(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _replace_relay(chunks: AsyncIterator[bytes], key: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.replace(key, redact.REDACTED)


def bench_small_chunks(out: dict[str, object]) -> None:
    events = [
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
        b'{"content":"token %d and some text\\n"},"finish_reason":null}]}\n\n' % i
        for i in range(2000)
    ]
    scrubber = Scrubber([KEY])
    key = KEY.encode()

    def run(make: Callable[[], AsyncIterator[bytes]]) -> float:
        return best_of(lambda: asyncio.run(_drain(make())), 7, 3)

    base = run(lambda: _source(events))
    replace = run(lambda: _replace_relay(_source(events), key))
    ours = run(lambda: scrubber.stream(_source(events)))
    print("stream of 2000 small SSE events, one chunk each:")
    print(f"  identity relay {base * 1e3:7.2f} ms   replace relay {replace * 1e3:7.2f} ms ({replace / base:.2f}x)"
          f"   ours {ours * 1e3:7.2f} ms ({ours / base:.2f}x identity, {ours / replace:.2f}x replace)")
    extra = (ours - base) / len(events)
    print(f"  scrubbing cost per chunk: {extra * 1e6:.2f} us")
    out["small_chunks"] = {"identity_ms": base * 1e3, "replace_ms": replace * 1e3, "ours_ms": ours * 1e3,
                           "ratio_identity": ours / base, "ratio_replace": ours / replace, "per_chunk_us": extra * 1e6}


def _timed_stream(scrubber: Scrubber, data: bytes, chunk: int = 65536) -> tuple[float, int]:
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    t = time.perf_counter()
    n = asyncio.run(_drain(scrubber.stream(_source(chunks))))
    return time.perf_counter() - t, n


def bench_big_keys(out: dict[str, object]) -> None:
    size = 20_000_000
    line = b'data: {"choices":[{"delta":{"content":"' + b"lorem ipsum dolor sit amet " * 37 + b'"}}]}\n\n'
    benign = line * (size // len(line))
    rnd = random.Random(3)
    key8k = "".join(rnd.choice(string.ascii_letters) for _ in range(8192))
    key60k = "".join(rnd.choice(string.ascii_letters) for _ in range(60000))
    periodic8k = "a" * 4096 + "b" + "a" * 4095
    periodic60k = "a" * 30000 + "b" + "a" * 29999
    a_lines = (b"a" * 60000 + b"\n") * (size // 60001)
    a_short_lines = (b"a" * 2000 + b"\n") * (size // 2001)
    a_one_line = b"a" * size
    escape_flood = (b"\\u0061" * 300 + b"\n") * (size // 1801)
    probe_adversary = "a" * 16 + "b" + "a" * 8175  # its 32-byte probe nearly matches everywhere in "aaa..."
    cases = [
        ("8K key, benign SSE", key8k, benign),
        ("8K periodic key, 'a' lines", periodic8k, a_lines),
        ("8K periodic key, one 20 MB line", periodic8k, a_one_line),
        ("8K key, probe-adversarial, 2 KB lines", probe_adversary, a_short_lines),
        ("8K key, a flood of \\u0061 escapes", periodic8k, escape_flood),
        ("60K key, benign SSE", key60k, benign),
        ("60K periodic key, 'a' lines", periodic60k, a_lines),
        ("60K periodic key, one 20 MB line", periodic60k, a_one_line),
    ]
    print("20 MB streams in 64 KB chunks (seconds; 60K keys with MAX_SECRET_LENGTH lifted for the measurement):")
    limit = redact.MAX_SECRET_LENGTH
    results = {}
    try:
        redact.MAX_SECRET_LENGTH = 65536
        for name, key, data in cases:
            scrubber = Scrubber([key])
            seconds, n = _timed_stream(scrubber, data)
            base = best_of(lambda data=data: data.replace(b"\0", b"?"), 1, 1)
            print(f"  {name:38} {seconds:6.3f} s  ({len(data) / seconds / 1e6:6.0f} MB/s; "
                  f"one bytes.replace pass {base:.3f} s; out {n} bytes)")
            results[name] = {"seconds": seconds, "mb_per_s": len(data) / seconds / 1e6, "replace_pass_s": base}
    finally:
        redact.MAX_SECRET_LENGTH = limit
    # Linearity: the same case at 1x and 4x input.
    for name, key, unit in [("8K periodic key, one line", periodic8k, b"a" * 5_000_000)]:
        t1, _ = _timed_stream(Scrubber([key]), unit)
        t4, _ = _timed_stream(Scrubber([key]), unit * 4)
        print(f"  linearity, {name}: 5 MB {t1:.3f} s, 20 MB {t4:.3f} s (x{t4 / t1:.2f} for x4 input)")
        results[f"linearity[{name}]"] = {"s_5mb": t1, "s_20mb": t4}
    out["big_keys"] = results


def main() -> None:
    out: dict[str, object] = {"python": sys.version.split()[0], "machine": platform.machine()}
    bench_bodies(out)
    bench_small_chunks(out)
    bench_big_keys(out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
