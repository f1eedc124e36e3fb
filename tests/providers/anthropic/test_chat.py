"""Anthropic chat: request mapping, response mapping, URLs/headers/errors.

Exact-byte expectations come from docs/reference-behaviour.md §10 (the reference gateway).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from aigw.config.model import Target
from aigw.providers.anthropic import PROVIDER
from aigw.providers.anthropic.chat import DEFAULT_MAX_TOKENS, from_anthropic, to_anthropic
from aigw.providers.base import MalformedResponse, ProviderError
from aigw.providers.params import MissingParam
from aigw.providers.registry import get_provider

T = Target(provider="anthropic")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER = {"role": "user", "content": "hi"}


def req(**params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-3-5-sonnet-20241022", "messages": [USER], **params}
    return to_anthropic(body, T)


# --------------------------------------------------------------------------- request: recorded


def test_recorded_tools_request_is_byte_identical() -> None:
    body = {
        "model": "claude-3-5-sonnet-20241022",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "stop": ["END"],
        "temperature": 0.2,
    }
    assert orjson.dumps(to_anthropic(body, T)) == (
        b'{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"user","content":"Weather in Paris?"}],'
        b'"system":[{"text":"You are terse.","type":"text"}],"tools":[{"name":"get_weather","description":"Get weather",'
        b'"input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"$defs":{}}}],'
        b'"tool_choice":{"type":"auto"},"max_tokens":4096,"temperature":0.2,"stop_sequences":["END"]}'
    )  # identical to the reference's bytes but for max_tokens, which the reference omits


def test_recorded_multi_turn_request_is_byte_identical() -> None:
    body = {
        "model": "claude-3-5-sonnet-20241022",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
        "max_tokens": 100,
        "top_p": 0.9,
        "user": "u1",
        "n": 1,
        "presence_penalty": 0.1,
    }
    assert orjson.dumps(to_anthropic(body, T)) == (
        b'{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"user","content":[{"type":"text","text":"look"},'
        b'{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},'
        b'{"role":"assistant","content":[{"type":"tool_use","name":"get_weather","id":"call_1","input":{"city":"Paris"}}]},'
        b'{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"sunny"}]},'
        b'{"role":"user","content":"thanks"}],"system":[],"max_tokens":100,"top_p":0.9,"metadata":{"user_id":"u1"}}'
    )


# --------------------------------------------------------------------------- request: system


@pytest.mark.parametrize(
    ("messages", "system"),
    [
        ([USER], []),  # the reference always sends `system`, empty when there is none
        ([{"role": "system", "content": "S"}, USER], [{"text": "S", "type": "text"}]),
        ([{"role": "developer", "content": "D"}, USER], [{"text": "D", "type": "text"}]),
        (
            [{"role": "system", "content": "S1"}, USER, {"role": "developer", "content": [{"type": "text", "text": "S2"}]}],
            [{"text": "S1", "type": "text"}, {"text": "S2", "type": "text"}],
        ),
        (
            [{"role": "system", "content": [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral", "ttl": "1h"}}, {"type": "text", "text": "B"}]}, USER],
            [{"text": "A", "type": "text", "cache_control": {"type": "ephemeral"}}, {"text": "B", "type": "text"}],
        ),
        ([{"role": "system", "content": "S", "cache_control": {"type": "ephemeral"}}, USER], [{"text": "S", "type": "text", "cache_control": {"type": "ephemeral"}}]),
    ],
)
def test_system_and_developer_become_system_blocks(messages: list[Any], system: list[Any]) -> None:
    out = to_anthropic({"model": "m", "messages": messages}, T)
    assert out["system"] == system
    assert all(m["role"] not in ("system", "developer") for m in out["messages"])


# --------------------------------------------------------------------------- request: content


@pytest.mark.parametrize(
    ("part", "block"),
    [
        ({"type": "text", "text": "t"}, {"type": "text", "text": "t"}),
        ({"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}}),
        (
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AA=="}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/AA=="}},
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBERi0="}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        ),
        ({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}, None),  # malformed data URL dropped
        ({"type": "image_url", "image_url": {}}, None),
        (
            {"type": "file", "file": {"file_url": "https://example.com/a.pdf"}},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        ),
        (
            {"type": "file", "file": {"file_data": "JVBERi0="}},
            {"type": "document", "source": {"type": "base64", "data": "JVBERi0=", "media_type": "application/pdf"}},
        ),
        (
            {"type": "file", "file": {"file_data": "plain words", "mime_type": "text/plain"}},
            {"type": "document", "source": {"type": "text", "data": "plain words", "media_type": "text/plain"}},
        ),
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, None),  # no Anthropic equivalent
    ],
)
def test_user_content_parts(part: dict[str, Any], block: dict[str, Any] | None) -> None:
    out = req(messages=[{"role": "user", "content": [{"type": "text", "text": "q"}, part]}])
    expected = [{"type": "text", "text": "q"}] + ([block] if block else [])
    assert out["messages"] == [{"role": "user", "content": expected}]


def test_user_string_content_passes_through() -> None:
    assert req()["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("assistant", "content"),
    [
        ({"role": "assistant", "content": "yo"}, [{"type": "text", "text": "yo"}]),
        ({"role": "assistant", "content": ""}, []),
        ({"role": "assistant", "content": [{"type": "text", "text": "a"}]}, [{"type": "text", "text": "a"}]),
        (
            {"role": "assistant", "content": "x", "content_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "x"}]},
            [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "x"}],
        ),  # the reference's content_blocks (thinking) are sent back verbatim
        (
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, 2]}'}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
                {"id": "c3", "type": "function", "function": {"name": "h", "arguments": ""}},
                {"id": "c4", "type": "function", "function": {"name": "k", "arguments": "[1]"}},
            ]},
            [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "name": "f", "id": "c1", "input": {"a": [1, 2]}},
                {"type": "tool_use", "name": "g", "id": "c2", "input": {}},  # invalid JSON -> {}
                {"type": "tool_use", "name": "h", "id": "c3", "input": {}},
                {"type": "tool_use", "name": "k", "id": "c4", "input": {}},  # not an object -> {}
            ],
        ),
    ],
)
def test_assistant_messages(assistant: dict[str, Any], content: list[Any]) -> None:
    out = req(messages=[USER, assistant])
    assert out["messages"][1] == {"role": "assistant", "content": content}


def test_consecutive_tool_results_share_one_user_message() -> None:
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)]
    out = req(messages=[
        USER,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "next"},
        {"role": "tool", "content": "orphan"},
    ])
    assert out["messages"][2:] == [
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "two"}]},
        ]},
        {"role": "user", "content": "next"},  # a user message after tool results is not merged
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "", "content": "orphan"}]},
    ]


# --------------------------------------------------------------------------- request: tools


def test_tool_definition_defaults_and_cache_control() -> None:
    tools = [
        {"type": "function", "function": {"name": "bare"}},
        {"type": "function", "function": {"name": "rich", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "$defs": {"D": {}}}}, "cache_control": {"type": "ephemeral"}},
    ]
    assert req(tools=tools)["tools"] == [
        {"name": "bare", "description": "", "input_schema": {"type": "object", "properties": {}, "required": [], "$defs": {}}},
        {
            "name": "rich",
            "description": "d",
            "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": [], "$defs": {"D": {}}},
            "cache_control": {"type": "ephemeral"},
        },
    ]


NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(
    ("params", "tool_choice"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": NAMED}, {"type": "tool", "name": "get_weather"}),
        ({"tool_choice": "auto", "parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"tool_choice": "required", "parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
        ({"tool_choice": NAMED, "parallel_tool_calls": False}, {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),  # Anthropic rejects the flag with none
        ({"tool_choice": "auto", "parallel_tool_calls": True}, {"type": "auto"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"parallel_tool_calls": True}, None),
        ({}, None),
        ({"tool_choice": "bogus"}, None),
        ({"tool_choice": None}, None),
    ],
)
def test_tool_choice(params: dict[str, Any], tool_choice: dict[str, Any] | None) -> None:
    out = req(tools=[WEATHER_TOOL], **params)
    assert out.get("tool_choice") == tool_choice
    assert "parallel_tool_calls" not in out


def test_parallel_tool_calls_without_tools_adds_nothing() -> None:
    assert "tool_choice" not in req(parallel_tool_calls=False)


# --------------------------------------------------------------------------- request: scalars


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"stop": "END"}, {"stop_sequences": ["END"]}),  # Anthropic takes a list only
        ({"stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
        ({"stop": None}, {}),
        ({"max_tokens": 5}, {"max_tokens": 5}),
        ({"max_completion_tokens": 7}, {"max_tokens": 7}),
        ({"max_tokens": 5, "max_completion_tokens": 7}, {"max_tokens": 7}),
        ({}, {}),  # max_tokens defaults (Anthropic requires it; the reference sends none and gets a 400)
        ({"temperature": 1.7}, {"temperature": 1}),  # OpenAI allows up to 2, Anthropic 1
        ({"temperature": -0.5}, {"temperature": 0}),
        ({"temperature": 0.3}, {"temperature": 0.3}),
        ({"top_p": 0.9, "top_k": 40}, {"top_p": 0.9, "top_k": 40}),
        ({"stream": True}, {"stream": True}),
        ({"user": "u-1"}, {"metadata": {"user_id": "u-1"}}),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        (
            {"n": 2, "presence_penalty": 1, "frequency_penalty": 1, "logprobs": True, "seed": 3, "stream_options": {"include_usage": True}, "response_format": {"type": "json_object"}},
            {},
        ),  # no Anthropic equivalent: dropped
    ],
)
def test_scalar_params(params: dict[str, Any], expected: dict[str, Any]) -> None:
    out = req(**params)
    rest = {k: v for k, v in out.items() if k not in ("model", "messages", "system")}
    expected = {"max_tokens": DEFAULT_MAX_TOKENS, **expected}
    assert rest == expected


def test_model_passes_through_and_is_required() -> None:
    assert req()["model"] == "claude-3-5-sonnet-20241022"
    # No silent default (the reference sends the retired claude-2.1): a clear 400 naming the param.
    with pytest.raises(MissingParam) as info:
        to_anthropic({"messages": [USER]}, T)
    assert info.value.status == 400 and info.value.param == "model"


def test_request_body_is_not_mutated() -> None:
    body = {"model": "m", "messages": [{"role": "tool", "tool_call_id": "a", "content": "x"}, {"role": "tool", "tool_call_id": "b", "content": "y"}], "stop": "s"}
    snapshot = orjson.dumps(body)
    to_anthropic(body, T)
    assert orjson.dumps(body) == snapshot


# --------------------------------------------------------------------------- response


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "Sunny."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    return {**base, **fields}


def respond(body: dict[str, Any]) -> dict[str, Any]:
    out = from_anthropic(body, T)
    if "created" in out:
        assert isinstance(out["created"], int) and abs(out["created"] - time.time()) < 5
        out["created"] = 0
    return out


def test_recorded_text_response() -> None:
    assert orjson.dumps(respond(message())) == (
        b'{"id":"msg_01","object":"chat.completion","created":0,"model":"claude-3-5-sonnet-20241022","provider":"anthropic",'
        b'"choices":[{"message":{"role":"assistant","content":"Sunny."},"index":0,"logprobs":null,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0}}}'
    )


def test_recorded_tool_use_response() -> None:
    body = message(
        content=[{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}],
        stop_reason="tool_use",
    )
    assert orjson.dumps(respond(body)) == (
        b'{"id":"msg_01","object":"chat.completion","created":0,"model":"claude-3-5-sonnet-20241022","provider":"anthropic",'
        b'"choices":[{"message":{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"toolu_01","type":"function",'
        b'"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},"index":0,"logprobs":null,"finish_reason":"tool_calls"}],'
        b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0}}}'
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "stop"),
        ("refusal", "stop"),  # unmapped reasons read as stop in strict mode
        (None, "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, finish_reason: str) -> None:
    assert respond(message(stop_reason=stop_reason))["choices"][0]["finish_reason"] == finish_reason


def test_text_blocks_join_and_other_blocks_drop() -> None:
    body = message(content=[{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    assert respond(body)["choices"][0]["message"] == {"role": "assistant", "content": "AB"}


def test_tools_only_answer_has_empty_content_and_several_calls() -> None:
    body = message(
        content=[
            {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
            {"type": "tool_use", "id": "t2", "name": "b", "input": {"q": "é", "n": [1, None]}},
        ],
        stop_reason="tool_use",
    )
    msg = respond(body)["choices"][0]["message"]
    assert msg["content"] == ""  # the reference sends "" (not null) when there is no text
    assert [c["function"] for c in msg["tool_calls"]] == [
        {"name": "a", "arguments": "{}"},
        {"name": "b", "arguments": '{"q":"é","n":[1,null]}'},
    ]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7},
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 25, "prompt_tokens_details": {"cached_tokens": 7}, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3},
        ),
        (
            {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 0}},
        ),
        (
            {"input_tokens": 4, "output_tokens": 1, "cache_creation_input_tokens": 2},
            {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}, "cache_creation_input_tokens": 2},
        ),
        ({}, {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "prompt_tokens_details": {"cached_tokens": 0}}),
    ],
)
def test_usage(usage: dict[str, Any], expected: dict[str, Any]) -> None:
    assert respond(message(usage=usage))["usage"] == expected


def test_body_that_is_not_a_message_is_malformed() -> None:
    # The reference answers 200 with an error body; here the attempt fails (a fallback moves on).
    with pytest.raises(MalformedResponse, match="Invalid response received from anthropic"):
        from_anthropic({"weird": True}, T)


# --------------------------------------------------------------------------- provider: URLs, headers, errors


def test_registry_finds_the_provider() -> None:
    assert get_provider("anthropic") is PROVIDER
    assert set(PROVIDER.endpoints) == {"chat"}


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (Target(provider="anthropic"), "https://api.anthropic.com/v1/messages"),
        (Target(provider="anthropic", custom_host="http://127.0.0.1:19001/v1"), "http://127.0.0.1:19001/v1/messages"),
    ],
)
def test_url(target: Target, url: str) -> None:
    assert PROVIDER.endpoint_url(target, PROVIDER.endpoints["chat"], {}) == url


@pytest.mark.parametrize(
    ("options", "headers"),
    [
        ({}, {"anthropic-version": "2023-06-01"}),
        (
            {"anthropic_version": "2024-01-01", "anthropic_beta": "prompt-caching-2024-07-31"},
            {"anthropic-version": "2024-01-01", "anthropic-beta": "prompt-caching-2024-07-31"},
        ),
    ],
)
def test_headers(options: dict[str, str], headers: dict[str, str]) -> None:
    target = Target(provider="anthropic", options=options)
    assert PROVIDER.extra_headers(target) == headers
    assert PROVIDER.auth_headers("sk-ant", target) == {"x-api-key": "sk-ant"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, ProviderError("Overloaded", "overloaded_error")),
        (
            {"error": {"message": "oai-shaped", "type": "invalid_request_error", "param": "x", "code": "c"}},
            ProviderError("oai-shaped", "invalid_request_error"),
        ),  # the reference keeps only message and type
        ({"error": "plain"}, ProviderError("plain")),
        ({"weird": True}, None),
    ],
)
def test_parse_error(body: dict[str, Any], error: ProviderError | None) -> None:
    assert PROVIDER.parse_error(body) == error
