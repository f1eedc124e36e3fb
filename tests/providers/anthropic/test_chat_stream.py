"""Anthropic stream -> OpenAI chunks: recorded output, any byte split, errors, cut-short streams.

The recorded stream and its output are docs/reference-behaviour.md §10 ("Anthropic streaming").
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aigw.config.model import Target
from aigw.providers.anthropic import PROVIDER
from aigw.providers.anthropic.chat_stream import AnthropicChatStream
from aigw.providers.base import StreamTransformer
from tests.fakes.sse import anthropic_sse, parse_sse

NOW = 1795636590.076
MODEL = "claude-3-5-sonnet-20241022"
Event = tuple[str, dict[str, Any]]
START: Event = ("message_start", {"message": {
    "id": "msg_01", "type": "message", "role": "assistant", "model": MODEL, "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 1},
}})
STOP: Event = ("message_stop", {})


def text_delta(text: str, index: int = 0) -> Event:
    return ("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text}})


def json_delta(partial: str, index: int) -> Event:
    return ("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": partial}})


def tool_start(index: int, tool_id: str, name: str) -> Event:
    return ("content_block_start", {"index": index, "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}})


def finish(stop_reason: str, output_tokens: int) -> Event:
    return ("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens}})


RECORDED = b"".join(anthropic_sse([
    START,
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {}),
    text_delta("Hello"),
    text_delta(" world"),
    ("content_block_stop", {"index": 0}),
    tool_start(1, "toolu_01", "get_weather"),
    json_delta("", 1),
    json_delta('{"city":', 1),
    json_delta(' "Paris"}', 1),
    ("content_block_stop", {"index": 1}),
    finish("tool_use", 15),
    STOP,
]))

PREFIX = b'{"id":"anthropic-1795636590076","object":"chat.completion.chunk","created":1795636590,"model":"claude-3-5-sonnet-20241022","provider":"anthropic",'


def delta_chunk(delta: bytes) -> bytes:
    return b"data: " + PREFIX + b'"choices":[{"delta":' + delta + b',"index":0,"logprobs":null,"finish_reason":null}]}\n\n'


RECORDED_OUTPUT = b"".join([
    delta_chunk(b'{"content":"","role":"assistant"}'),
    delta_chunk(b"{}"),
    delta_chunk(b'{"content":"Hello"}'),
    delta_chunk(b'{"content":" world"}'),
    delta_chunk(b'{"tool_calls":[{"index":0,"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":""}}]}'),
    delta_chunk(b'{"tool_calls":[{"index":0,"function":{"arguments":""}}]}'),
    delta_chunk(b'{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\":"}}]}'),
    delta_chunk(b'{"tool_calls":[{"index":0,"function":{"arguments":" \\"Paris\\"}"}}]}'),
    b"data: " + PREFIX + b'"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],'
    b'"usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0}}}\n\n',
    b"data: [DONE]\n\n",
])

TEXT_STREAM = b"".join(anthropic_sse([
    START,
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    text_delta("Hi"),
    text_delta(" ünïcode ✓"),
    ("content_block_stop", {"index": 0}),
    finish("end_turn", 3),
    STOP,
]))


def run(chunks: list[bytes]) -> bytes:
    stream = AnthropicChatStream(now=NOW)
    out = [event for chunk in chunks for event in stream.feed(chunk)]
    return b"".join(out + stream.close())


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    return [e.json() for e in parse_sse(raw) if e.data != "[DONE]"]


def test_recorded_stream_gives_recorded_output() -> None:
    assert run([RECORDED]) == RECORDED_OUTPUT


@pytest.mark.parametrize("raw", [RECORDED, TEXT_STREAM], ids=["tools", "text"])
def test_every_split_point_gives_identical_output(raw: bytes) -> None:
    whole = run([raw])
    for i in range(len(raw) + 1):
        assert run([raw[:i], raw[i:]]) == whole, i


@pytest.mark.parametrize("raw", [RECORDED, TEXT_STREAM], ids=["tools", "text"])
def test_one_byte_chunks_give_identical_output(raw: bytes) -> None:
    assert run([raw[i : i + 1] for i in range(len(raw))]) == run([raw])


def test_crlf_stream_gives_identical_output() -> None:
    assert run([RECORDED.replace(b"\n", b"\r\n")]) == RECORDED_OUTPUT


def test_text_stream() -> None:
    out = run([TEXT_STREAM])
    chunks = chunks_of(out)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hi ünïcode ✓"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 3, "total_tokens": 28, "prompt_tokens_details": {"cached_tokens": 0}}
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {("anthropic-1795636590076", 1795636590, MODEL)}
    assert out.endswith(b"data: [DONE]\n\n")


def test_each_chunk_leaves_when_its_event_completes() -> None:
    stream = AnthropicChatStream(now=NOW)
    first, rest = RECORDED.split(b"\n\n", 1)
    assert stream.feed(first + b"\n") == []  # one incomplete event is all that is held
    assert stream.feed(b"\n") == [delta_chunk(b'{"content":"","role":"assistant"}')]
    event = b"".join(anthropic_sse([text_delta("x")]))
    assert stream.feed(event) == [delta_chunk(b'{"content":"x"}')]


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "stop")],
)
def test_finish_reason(stop_reason: str, finish_reason: str) -> None:
    out = run([b"".join(anthropic_sse([START, finish(stop_reason, 1), STOP]))])
    assert chunks_of(out)[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": finish_reason}]


def test_cache_usage_in_final_chunk() -> None:
    start = ("message_start", {"message": {**START[1]["message"], "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 4}}})
    out = run([b"".join(anthropic_sse([start, finish("end_turn", 7), STOP]))])
    usage = chunks_of(out)[-1]["usage"]
    assert list(usage.items()) == [
        ("prompt_tokens", 25), ("cache_read_input_tokens", 4), ("completion_tokens", 7),
        ("total_tokens", 36), ("prompt_tokens_details", {"cached_tokens": 4}),
    ]


def test_start_and_stop_only() -> None:
    assert run([b"".join(anthropic_sse([START, STOP]))]) == delta_chunk(b'{"content":"","role":"assistant"}') + b"data: [DONE]\n\n"


def test_tool_calls_are_numbered_by_tool_not_by_block() -> None:
    raw = b"".join(anthropic_sse([
        START,
        ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        tool_start(1, "t1", "a"), json_delta("{}", 1),
        tool_start(2, "t2", "b"), json_delta('{"x":1}', 2),
        finish("tool_use", 9), STOP,
    ]))
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in chunks_of(run([raw]))]
    assert [c for c in calls if c] == [
        [{"index": 0, "id": "t1", "type": "function", "function": {"name": "a", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": "{}"}}],
        [{"index": 1, "id": "t2", "type": "function", "function": {"name": "b", "arguments": ""}}],
        [{"index": 1, "function": {"arguments": '{"x":1}'}}],
    ]
    # Thinking carries no OpenAI content in strict mode: empty deltas, as the reference sends.
    assert [c["choices"][0]["delta"] for c in chunks_of(run([raw]))][1:3] == [{}, {}]


def test_error_event_ends_the_stream_with_an_error_and_no_done() -> None:
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    stream = AnthropicChatStream(now=NOW)
    head = b"".join(anthropic_sse([START, text_delta("partial")]))
    out = stream.feed(head + error + b"".join(anthropic_sse([text_delta("late"), STOP])))
    assert out[-1] == (
        b'data: {"error":{"message":"anthropic error: Overloaded","type":"overloaded_error","param":null,"code":null},"provider":"anthropic"}\n\n'
    )
    assert len(out) == 3  # role chunk, "partial", error: nothing after the error
    assert stream.feed(b"".join(anthropic_sse([text_delta("more")]))) == []
    assert stream.close() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"".join(anthropic_sse([START, text_delta("cut")])),
        b"".join(anthropic_sse([START, finish("end_turn", 1)])),
        b"".join(anthropic_sse([START]))[:-5],  # cut inside an event
    ],
    ids=["nothing", "mid-text", "before-message-stop", "mid-event"],
)
def test_cut_short_stream_ends_with_an_error_event(raw: bytes) -> None:
    out = run([raw])
    last = parse_sse(out)[-1].json()
    assert last == {"error": {"message": "anthropic stream ended before message_stop", "type": "api_error", "param": None, "code": "stream_interrupted"}}
    assert b"[DONE]" not in out


def test_final_event_without_blank_line_still_counts() -> None:
    raw = b"".join(anthropic_sse([START, STOP]))
    assert run([raw.rstrip(b"\n")]).endswith(b"data: [DONE]\n\n")


def test_unreadable_event_is_an_error() -> None:
    out = run([b"".join(anthropic_sse([START])) + b"event: content_block_delta\ndata: {not json\n\n"])
    assert parse_sse(out)[-1].json()["error"]["type"] == "api_error"
    assert b"[DONE]" not in out


def test_unknown_events_and_comments_are_ignored() -> None:
    noise = b": keepalive\n\nevent: future_thing\ndata: {\"type\":\"future_thing\"}\n\n"
    raw = b"".join(anthropic_sse([START])) + noise + b"".join(anthropic_sse([STOP]))
    assert run([raw]) == run([b"".join(anthropic_sse([START, STOP]))])


def test_factory_builds_a_stream_transformer() -> None:
    stream = PROVIDER.endpoints["chat"].stream(Target(provider="anthropic"), {"stream": True})  # type: ignore[misc]
    assert isinstance(stream, AnthropicChatStream)
    transformer: StreamTransformer = stream
    out = transformer.feed(b"".join(anthropic_sse([START, text_delta("a"), finish("end_turn", 1), STOP])))
    first = orjson.loads(out[0][len(b"data: "):])
    assert first["id"].startswith("anthropic-") and first["id"][len("anthropic-"):].isdigit()
    assert out[-1] == b"data: [DONE]\n\n" and transformer.close() == []
