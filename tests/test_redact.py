import pytest

from aigw.redact import REDACTED, scrub, scrub_stream

KEY = "sk-abcdefghijklmnop"


async def collect(chunks, keys):
    async def gen():
        for c in chunks:
            yield c

    return [c async for c in scrub_stream(gen(), keys)]


def test_scrub_replaces_every_occurrence_and_ignores_short_or_missing_keys():
    body = f'{{"k": "{KEY}", "again": "{KEY}"}}'.encode()
    assert KEY.encode() not in scrub(body, [KEY, None])
    assert scrub(body, [KEY]).count(REDACTED) == 2
    assert scrub(b"abc", ["ab"]) == b"abc"  # too short to be a key: left alone
    assert scrub(b"abc", [None, ""]) == b"abc"


async def test_stream_scrub_catches_a_key_split_at_every_point():
    data = f"data: {{\"echo\": \"{KEY}\"}}\n\ndata: [DONE]\n\n".encode()
    for i in range(1, len(data)):
        for j in range(i, len(data)):
            out = await collect([data[:i], data[i:j], data[j:]], [KEY])
            joined = b"".join(out)
            assert joined == scrub(data, [KEY]), (i, j)


async def test_stream_scrub_holds_back_only_a_possible_key_prefix():
    out = await collect([b"hello sk-abc", b"xyz"], [KEY])
    assert out == [b"hello ", b"sk-abcxyz"]  # "sk-abc" waited for the next chunk, then went out whole
    out = await collect([b"plain text", b" more"], [KEY])
    assert out == [b"plain text", b" more"]  # nothing held when no key prefix ends a chunk


@pytest.mark.parametrize("keys", [[], [None]])
async def test_stream_without_keys_passes_chunks_through(keys):
    assert await collect([b"a", b"b"], keys) == [b"a", b"b"]


def test_scrub_headers():
    from aigw.redact import scrub_headers

    out = scrub_headers({"x-echo": f"key={KEY}", "x-ok": "fine"}, [KEY])
    assert out == {"x-echo": "key=[REDACTED]", "x-ok": "fine"}


async def test_closing_the_scrubbed_stream_closes_its_source_at_once():
    closed = []

    async def source():
        try:
            yield b"one"
            yield b"two"
        finally:
            closed.append(True)

    stream = scrub_stream(source(), [KEY])
    assert await stream.__anext__() == b"one"
    await stream.aclose()
    assert closed == [True]
