"""The incremental SSE decoder gives the same events however the bytes are split."""

from __future__ import annotations

import pytest

from aigw.upstream.sse import SSEDecoder, SSEEvent, sse_event

STREAM = (
    b": keepalive comment\n"
    b"event: message_start\n"
    b'data: {"type":"message_start"}\n'
    b"\n"
    b"data: line one\n"
    b"data: line two\n"
    b"\n"
    b"event: ping\r\n"
    b"data: {}\r\n"
    b"\r\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\r"
    b"\r"
    b"id: 7\n"
    b"retry: 100\n"
    b"data:no-space\n"
    b"\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"type":"message_start"}'),
    SSEEvent(None, "line one\nline two"),
    SSEEvent("ping", "{}"),
    SSEEvent(None, "café €"),
    SSEEvent(None, "no-space"),
]


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.flush()


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


def test_every_split_point_gives_the_same_events() -> None:
    for i in range(len(STREAM) + 1):
        assert decode([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_one_byte_chunks() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    # A "\r" closing one chunk and the "\n" opening the next are one terminator, not a blank line.
    assert decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent(None, "a\nb")]


def test_empty_chunk_keeps_pending_cr() -> None:
    assert decode([b"data: a\r", b"", b"\ndata: b\n\n"]) == [SSEEvent(None, "a\nb")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: x\n\n", [SSEEvent(None, "x")]),
        (b"data:\n\n", [SSEEvent(None, "")]),  # an empty data line still makes an event
        (b"data\n\n", [SSEEvent(None, "")]),  # a field without colon has an empty value
        (b"data:  two spaces\n\n", [SSEEvent(None, " two spaces")]),  # only one space is dropped
        (b"event: lonely\n\n", []),  # no data: nothing to dispatch
        (b": only a comment\n\n", []),
        (b"\n\n\n", []),
        (b"event: a\nevent: b\ndata: x\n\n", [SSEEvent("b", "x")]),  # the last event field wins
        (b"unknown: field\ndata: x\n\n", [SSEEvent(None, "x")]),
        (b"\xef\xbb\xbfdata: bom\n\n", [SSEEvent(None, "bom")]),  # a leading BOM is skipped
        (b"data: a\n\nevent: e\ndata: b\n\n", [SSEEvent(None, "a"), SSEEvent("e", "b")]),  # event type resets
    ],
)
def test_field_rules(raw: bytes, expected: list[SSEEvent]) -> None:
    assert decode([raw]) == expected


def test_event_is_returned_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: e\ndata: x\n") == []
    assert decoder.feed(b"\n") == [SSEEvent("e", "x")]


def test_flush_dispatches_an_event_missing_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\ndata: last") == [SSEEvent(None, "first")]
    assert decoder.flush() == [SSEEvent(None, "last")]
    assert decoder.flush() == []


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: 日本\n\n".encode()
    assert decode([raw[:7], raw[7:]]) == [SSEEvent(None, "日本")]


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        ('{"a":1}', b'data: {"a":1}\n\n'),
        (b"[DONE]", b"data: [DONE]\n\n"),
        ("one\ntwo", b"data: one\ndata: two\n\n"),
        ("", b"data: \n\n"),
    ],
)
def test_sse_event(data: str | bytes, wire: bytes) -> None:
    assert sse_event(data) == wire


@pytest.mark.parametrize("data", ["plain", "multi\nline\r\nbreaks", '{"k":"v"}'])
def test_encoder_round_trips_through_decoder(data: str) -> None:
    expected = data.replace("\r\n", "\n")
    assert decode([sse_event(data)]) == [SSEEvent(None, expected)]
