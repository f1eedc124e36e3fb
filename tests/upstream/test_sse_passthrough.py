"""The OpenAI-format SSE relay: byte-identical for well-formed streams, repaired otherwise."""

from __future__ import annotations

import pytest

from aigw.upstream import sse_passthrough
from aigw.upstream.sse_passthrough import DONE_EVENT, MAX_PENDING_LINE, line_end, passthrough_sse

WELL_FORMED = (
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"}}]}\n\n'
    b"event: message\r\n"
    b'data: {"choices":[]}\r\n\r\n'
    b"data: [DONE]\n\n"
)


async def source(chunks, log=None):
    for c in chunks:
        if log is not None:
            log.append(c)
        yield c


async def relay(chunks) -> list[bytes]:
    return [c async for c in passthrough_sse(source(chunks))]


def test_line_end():
    assert line_end(b"") == 0
    assert line_end(b"abc") == 0
    assert line_end(b"a\nb") == 2
    assert line_end(b"a\rb") == 2
    assert line_end(b"a\r\n") == 3
    assert line_end(b"a\n\nb\r") == 5


async def test_well_formed_stream_is_byte_identical_however_it_is_split():
    for i in range(len(WELL_FORMED) + 1):
        assert b"".join(await relay([WELL_FORMED[:i], WELL_FORMED[i:]])) == WELL_FORMED, i
        for j in range(i, len(WELL_FORMED) + 1, 2):
            out = b"".join(await relay([WELL_FORMED[:i], WELL_FORMED[i:j], WELL_FORMED[j:]]))
            assert out == WELL_FORMED, (i, j)


async def test_each_line_goes_out_as_soon_as_it_ends():
    log: list[bytes] = []
    stream = passthrough_sse(source([b"data: 1\n\n", b"data: 2", b"\n\n", b"data: [DONE]\n\n"], log))
    assert await stream.__anext__() == b"data: 1\n\n"
    assert len(log) == 1  # nothing read ahead
    assert await stream.__anext__() == b"data: 2\n\n"  # the incomplete line waited for its end
    assert len(log) == 3
    assert await stream.__anext__() == b"data: [DONE]\n\n"
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_nul_bytes_are_dropped_and_invalid_utf8_replaced():
    stream = (b"data: clean \xc3\xa9\n\n"
              b"data: a\x00b\n\n"
              b"data: bad \xff\xfe end \xe2\x82\n\n"
              b"data: [DONE]\n\n")
    expected = (b"data: clean \xc3\xa9\n\n"
                b"data: ab\n\n"
                + "data: bad \ufffd\ufffd end \ufffd\n\n".encode()
                + b"data: [DONE]\n\n")
    assert b"".join(await relay([stream])) == expected
    for i in range(len(stream) + 1):  # a split never changes the result (held lines are whole)
        assert b"".join(await relay([stream[:i], stream[i:]])) == expected, i


async def test_a_key_split_by_a_nul_reaches_the_scrubber_whole():
    from aigw.redact import Scrubber

    key = "sk-abcdefghijklmnop"
    chunks = [b'data: {"k":"sk-abcdefgh\x00ijklmnop"}\n\n']
    out = [c async for c in Scrubber([key]).stream(passthrough_sse(source(chunks)))]
    assert b"".join(out) == b'data: {"k":"[REDACTED]"}\n\n' + DONE_EVENT


@pytest.mark.parametrize(("stream", "expected_tail"), [
    (b"data: x\n\n", b"data: x\n\n" + DONE_EVENT),
    (b"data: x\n", b"data: x\n\n" + DONE_EVENT),
    (b"data: x", b"data: x\n\n" + DONE_EVENT),
    (b"data: x\r\n\r\n", b"data: x\r\n\r\n" + DONE_EVENT),
    (b"data: x\r\n", b"data: x\r\n\n" + DONE_EVENT),
    (b"", DONE_EVENT),
])
async def test_a_clean_end_without_done_gets_done_appended(stream, expected_tail):
    assert b"".join(await relay([stream] if stream else [])) == expected_tail


@pytest.mark.parametrize(("stream", "expected"), [
    (b"data: x\n\ndata: [DONE]\n\n", b"data: x\n\ndata: [DONE]\n\n"),
    (b"data:[DONE]\n\n", b"data:[DONE]\n\n"),
    (b"data: [DONE]\n", b"data: [DONE]\n\n"),  # the last event is ended, not repeated
    (b"data: [DONE]", b"data: [DONE]\n\n"),
    (b"data: [DONE]\r\n\r\n", b"data: [DONE]\r\n\r\n"),
])
async def test_done_is_never_duplicated(stream, expected):
    for i in range(len(stream) + 1):
        assert b"".join(await relay([stream[:i], stream[i:]])) == expected, i


async def test_done_inside_a_value_is_not_done():
    out = b"".join(await relay([b'data: {"content":"data: [DONE]"}\n\n']))
    assert out == b'data: {"content":"data: [DONE]"}\n\n' + DONE_EVENT


async def test_a_source_that_raises_propagates_and_gets_no_done():
    async def broken():
        yield b"data: x\n\n"
        raise ConnectionError("reset")

    out = []
    with pytest.raises(ConnectionError):
        async for chunk in passthrough_sse(broken()):
            out.append(chunk)
    assert out == [b"data: x\n\n"]


async def test_closing_early_closes_the_source_at_once():
    closed = []

    async def src():
        try:
            yield b"data: one\n\n"
            yield b"data: two\n\n"
        finally:
            closed.append(True)

    stream = passthrough_sse(src())
    assert await stream.__anext__() == b"data: one\n\n"
    await stream.aclose()
    assert closed == [True]


async def test_an_over_long_line_is_passed_on_without_splitting_utf8():
    line = b"data: " + "\u00e9".encode() * (MAX_PENDING_LINE // 2 + 7) + b"\n\n"
    chunks = [line[i : i + 65537] for i in range(0, len(line), 65537)]  # odd size: cuts inside characters
    log: list[bytes] = []
    out = []
    async for chunk in passthrough_sse(source(chunks, log)):
        out.append(chunk)
        chunk.decode("utf-8")  # every piece is valid UTF-8 on its own
        assert sum(map(len, log)) - sum(map(len, out)) <= MAX_PENDING_LINE + 65537 + len(DONE_EVENT)
    assert b"".join(out) == line + DONE_EVENT
    assert len(out) > 2  # passed on before its end


async def test_done_lookalike_at_the_end_of_an_over_long_line_is_not_done():
    line = b"x" * (MAX_PENDING_LINE + 1) + b"data: [DONE]\n\n"
    out = b"".join(await relay([line[: MAX_PENDING_LINE + 1], line[MAX_PENDING_LINE + 1 :]]))
    assert out == line + DONE_EVENT


async def test_work_is_linear_each_byte_is_checked_once(monkeypatch):
    checked = []
    real = sse_passthrough._clean
    monkeypatch.setattr(sse_passthrough, "_clean", lambda block: checked.append(len(block)) or real(block))
    line = b"data: " + b"y" * (3 * MAX_PENDING_LINE) + b"\n\n"
    chunks = [line[i : i + 1000] for i in range(0, len(line), 1000)] + [b"data: e\n\n"] * 1000
    out = b"".join(await relay(chunks))
    assert out == b"".join(chunks) + DONE_EVENT
    assert sum(checked) == sum(map(len, chunks))  # every byte checked exactly once, none re-read
