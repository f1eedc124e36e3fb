"""The response cache's key and stored format."""

from aigw.calls.spec import CallSpec
from aigw.config.parse import parse_config
from aigw.kinds import EndpointKind
from aigw.state.response_cache import _decode, _encode, cache_key

BODY = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def spec(body=BODY, key="sk-client-0123456789", kind=EndpointKind.CHAT):
    return CallSpec(kind=kind, body=body, raw_body=b"", stream=bool(body.get("stream")), request_headers={},
                    request_api_key=key, max_response_bytes=1 << 20, timeout_ms=1000, idle_timeout_ms=1000)


def target(**fields):
    return parse_config({"provider": "openai", "cache": {"mode": "simple"}, **fields}, frozenset())


def test_the_key_ignores_streaming_and_key_order():
    reordered = dict(reversed(list(BODY.items())))
    assert cache_key(target(), spec(), None) == cache_key(target(), spec(reordered), None)
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    assert cache_key(target(), spec(), None) == cache_key(target(), spec(streamed), None)


def test_the_key_changes_with_what_changes_the_answer_or_its_owner():
    base = cache_key(target(), spec(), None)
    assert base != cache_key(target(), spec({**BODY, "temperature": 1}), None)
    assert base != cache_key(target(override_params={"model": "gpt-y"}), spec(), None)
    assert base != cache_key(target(provider="anthropic"), spec(), None)
    assert base != cache_key(target(), spec(kind=EndpointKind.COMPLETIONS), None)
    assert base != cache_key(target(), spec(key="sk-other-0123456789"), None)  # another key, another scope
    assert base != cache_key(target(api_key="sk-target-0123456789"), spec(), None)
    assert base != cache_key(target(), spec(), "team-a")
    east = target(provider="azure-openai", resource_name="r", deployment_id="east")
    west = target(provider="azure-openai", resource_name="r", deployment_id="west")
    assert cache_key(east, spec(), None) != cache_key(west, spec(), None)  # another deployment
    forwarding = target(forward_headers=["x-tenant"])
    tenant = lambda value: CallSpec(kind=EndpointKind.CHAT, body=BODY, raw_body=b"", stream=False,  # noqa: E731
                                    request_headers={"x-tenant": value}, request_api_key="sk-client-0123456789",
                                    max_response_bytes=1, timeout_ms=1, idle_timeout_ms=1)
    assert cache_key(forwarding, tenant("a"), None) != cache_key(forwarding, tenant("b"), None)
    assert cache_key(target(), spec(), "team-a") != cache_key(target(), spec(), "team-b")


def test_the_key_never_holds_the_provider_key():
    key = cache_key(target(api_key="sk-target-0123456789"), spec(), "ns")
    assert "sk-" not in key and key.startswith("aigw:cache:{")


def test_stored_answers_are_compressed_and_checked():
    answer = b'{"choices": [' + b'{"text": "same words again"},' * 200 + b"{}]}"
    stored = _encode(answer, 1234.5)
    assert len(stored) < len(answer) / 10 and _decode(stored) == (1234.5, answer)
    assert _decode(b"garbage") is None and _decode(b"z2" + b"\0" * 8 + b"not-zlib") is None
    assert _decode(b"z1" + stored[2:]) is None  # an older format: a miss, never misread
