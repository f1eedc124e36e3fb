"""Normalising inside the attempt: OpenAI-shaped successes, malformed 2xx as failures."""

import orjson
import pytest

from aigw.calls import normalise
from aigw.config.model import Target
from aigw.errors import InvalidProviderResponse
from aigw.kinds import EndpointKind
from aigw.providers.registry import get_provider
from aigw.redact import Scrubber

OPENAI = get_provider("openai")
ANTHROPIC = get_provider("anthropic")
T = Target(provider="openai")
CHAT = {"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


def test_an_openai_body_passes_through_byte_for_byte_with_its_usage():
    raw = orjson.dumps(CHAT) + b"\n"
    body, usage = normalise.success(OPENAI, OPENAI.endpoints[EndpointKind.CHAT], EndpointKind.CHAT, T, raw)
    assert body is raw and usage == CHAT["usage"]


@pytest.mark.parametrize("kind, raw", [
    (EndpointKind.CHAT, b"{}"), (EndpointKind.CHAT, b"not json"), (EndpointKind.CHAT, b"[1]"),
    (EndpointKind.CHAT, b'{"error": {"message": "overloaded"}}'), (EndpointKind.EMBEDDINGS, orjson.dumps(CHAT)),
    (EndpointKind.MODELS, b'{"data": null}'), (EndpointKind.CHAT, b'{"choices": [1]}'),
])
def test_malformed_2xx_is_an_invalid_provider_response(kind, raw):
    with pytest.raises(InvalidProviderResponse) as info:
        normalise.success(OPENAI, OPENAI.endpoints[kind], kind, T, raw)
    assert info.value.status == 502 and info.value.provider == "openai"


def test_a_transformed_answer_without_content_is_malformed():
    endpoint = ANTHROPIC.endpoints[EndpointKind.CHAT]
    with pytest.raises(InvalidProviderResponse, match="Invalid response received from anthropic"):
        normalise.success(ANTHROPIC, endpoint, EndpointKind.CHAT, T, b'{"type": "message"}')
    with pytest.raises(InvalidProviderResponse):
        normalise.success(ANTHROPIC, endpoint, EndpointKind.CHAT, T, b'{"content": [{"type": "text", "text": 5}]}')


def test_provider_errors_keep_status_and_fields_and_scrub_raw_text():
    err = normalise.failure(OPENAI, 429, b'{"error": {"message": "slow", "type": "rate_limit_error", "code": "rl"}}',
                            Scrubber(()))
    assert (err.status, err.message, err.type, err.code, err.provider) == (429, "openai error: slow", "rate_limit_error",
                                                                         "rl", "openai")
    key = "sk-live-0123456789abcdef"
    err = normalise.failure(OPENAI, 401, b"<html>" + b"E" * 505 + key.encode(), Scrubber((key,)))
    assert key[:8] not in err.message and err.status == 401


def test_provider_response_headers_are_bounded_in_total():
    from aigw.calls.provider_request import response_headers
    from aigw.response import MAX_PROVIDER_HEADER_BYTES

    raw = {f"x-h{i}": '"' * 60_000 for i in range(90)}
    out = response_headers({"x-request-id": "r-1", **raw})
    assert out["x-request-id"] == "r-1"
    assert sum(len(k) + len(v) for k, v in out.items()) <= MAX_PROVIDER_HEADER_BYTES
