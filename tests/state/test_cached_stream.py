"""A cached answer replayed as SSE, and a stream assembled back into its answer."""

import orjson
import pytest

from aigw.calls.assembly import StreamAssembler
from aigw.state.cached_stream import PIECE, replay_events

CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-x", "system_fingerprint": "fp",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * (PIECE * 2 + 3)},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
TOOLS = {**CHAT, "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
    "role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}}]}
TEXT = {"id": "cmpl-1", "object": "text_completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "text": "hello there", "logprobs": None, "finish_reason": "length"}]}


def assemble(events, split_every=None):
    a = StreamAssembler()
    data = b"".join(events)
    step = split_every or len(data)
    for i in range(0, len(data), step):
        a.feed(data[i:i + step])
    return a.answer()


@pytest.mark.parametrize("answer", [CHAT, TOOLS, TEXT])
def test_replay_then_assembly_gives_the_answer_back(answer):
    events = replay_events(answer, include_usage=True)
    assert events[-1] == b"data: [DONE]\n\n"
    assert assemble(events) == answer
    assert assemble(events, split_every=7) == answer  # events cut anywhere


def test_replay_sends_the_content_in_pieces_and_usage_only_when_asked():
    chunks = [orjson.loads(e[6:]) for e in replay_events(CHAT, include_usage=False)[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert [len(p) for p in pieces] == [PIECE, PIECE, 3]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-1" for c in chunks)
    with_usage = [orjson.loads(e[6:]) for e in replay_events(CHAT, include_usage=True)[:-1]]
    assert with_usage[-1] == {**with_usage[-1], "choices": [], "usage": CHAT["usage"]}


@pytest.mark.parametrize("stream", [
    [b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'],  # no [DONE]: cut short
    [b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n',
     b'data: {"error":{"message":"boom"}}\n\n', b"data: [DONE]\n\n"],  # an error event
    [b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n', b"data: {not json\n\n",
     b"data: [DONE]\n\n"],
    [b"data: [DONE]\n\n"],  # nothing in it
    [b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n', b"data: [DONE]\n\n"],  # unfinished
])
def test_only_a_clean_complete_stream_assembles(stream):
    assert assemble(stream) is None


@pytest.mark.parametrize("chunk", [
    b'data: {"id":"a","choices":[null]}\n\n',
    b'data: {"id":"a","choices":[{"index":0,"delta":"text"}]}\n\n',
    b'data: {"id":"a","choices":[{"index":[0],"delta":{"content":"x"}}]}\n\n',
    b'data: {"id":"a","choices":{"0":{}}}\n\n',
    b'data: {"id":"a","choices":[{"index":0,"delta":{"content":[{"type":"text","text":"x"}]},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"a","choices":[{"index":0,"delta":{"tool_calls":[{"index":"0"}]}}]}\n\n',
])
def test_shapes_the_cache_does_not_rebuild_are_passed_over_not_raised(chunk):
    assert assemble([chunk, b"data: [DONE]\n\n"]) is None


def test_a_stream_too_large_to_store_is_not_kept_in_memory():
    a = StreamAssembler(max_bytes=1000)
    piece = b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"' + b"x" * 200 + b'"}}]}\n\n'
    for _ in range(10):
        a.feed(piece)
    a.feed(b"data: [DONE]\n\n")
    assert a.broken and a.answer() is None and a._choices == {}


async def test_recording_passes_every_event_and_survives_a_failing_store():
    from aigw.state.cached_stream import RecordingStream

    events = replay_events(CHAT, include_usage=False)

    class Source:
        async def events(self, on_error=None):
            for e in events:
                yield e

        def close(self):
            pass

    async def broken_store(answer):
        raise RuntimeError("store down")

    got = [e async for e in RecordingStream(Source(), broken_store).events()]
    assert got == events
