"""The exception tree rendered per ingress format."""

import orjson

from aigw.errors import (
    ErrorFormat,
    InvalidConfig,
    ProviderError,
    UpstreamTimeout,
    render_error,
    render_stream_error,
)


def test_openai_shape_and_the_provider_for_upstream_errors():
    assert orjson.loads(render_error(InvalidConfig("bad", param="targets[0].weight"))) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "targets[0].weight", "code": "invalid_config"}}
    body = orjson.loads(render_error(ProviderError("openai error: slow down", provider="openai", status=429,
                                                   type="rate_limit_error")))
    assert body == {"error": {"message": "openai error: slow down", "type": "rate_limit_error", "param": None,
                              "code": None}, "provider": "openai"}


def test_anthropic_shape():
    body = orjson.loads(render_error(ProviderError("x", provider="anthropic", status=429), ErrorFormat.ANTHROPIC))
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}
    body = orjson.loads(render_error(UpstreamTimeout("late", provider="openai"), ErrorFormat.ANTHROPIC))
    assert body["error"]["type"] == "invalid_request_error"  # 408 is a client-side class in Anthropic's set
    assert orjson.loads(render_error(InvalidConfig("c"), ErrorFormat.ANTHROPIC))["error"]["type"] == "invalid_request_error"


def test_stream_errors_are_one_event_in_the_format_of_the_route():
    openai = render_stream_error(InvalidConfig("c"))
    assert openai.startswith(b"data: {") and openai.endswith(b"\n\n")
    anthropic = render_stream_error(InvalidConfig("c"), ErrorFormat.ANTHROPIC)
    assert anthropic.startswith(b"event: error\ndata: {")
