"""The response cache's key and stored format."""

from aigw.calls.spec import CallSpec
from aigw.config.parse import parse_config
from aigw.kinds import EndpointKind
from aigw.state.response_cache import _decode, _encode, cache_key, target_scope

BODY = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def spec(body=BODY, key="sk-client-0123456789", kind=EndpointKind.CHAT):
    return CallSpec(kind=kind, body=body, raw_body=b"", stream=bool(body.get("stream")), request_headers={},
                    request_api_key=key, max_response_bytes=1 << 20, timeout_ms=1000, idle_timeout_ms=1000)


def key(target, spec, namespace=None, principal=None):
    return cache_key(target, spec, target_scope(target, spec, namespace, principal))


def target(**fields):
    return parse_config({"provider": "openai", "cache": {"mode": "simple"}, **fields}, frozenset())


def test_the_key_ignores_streaming_and_key_order():
    reordered = dict(reversed(list(BODY.items())))
    assert key(target(), spec(), None) == key(target(), spec(reordered), None)
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    assert key(target(), spec(), None) == key(target(), spec(streamed), None)


def test_the_key_changes_with_what_changes_the_answer_or_its_owner():
    base = key(target(), spec(), None)
    assert base != key(target(), spec({**BODY, "temperature": 1}), None)
    assert base != key(target(override_params={"model": "gpt-y"}), spec(), None)
    assert base != key(target(provider="anthropic"), spec(), None)
    assert base != key(target(), spec(kind=EndpointKind.COMPLETIONS), None)
    assert base != key(target(), spec(key="sk-other-0123456789"), None)  # another key, another scope
    assert base != key(target(api_key="sk-target-0123456789"), spec(), None)
    assert base != key(target(), spec(), "team-a")
    east = target(provider="azure-openai", resource_name="r", deployment_id="east")
    west = target(provider="azure-openai", resource_name="r", deployment_id="west")
    assert key(east, spec(), None) != key(west, spec(), None)  # another deployment
    forwarding = target(forward_headers=["x-tenant"])
    tenant = lambda value: CallSpec(kind=EndpointKind.CHAT, body=BODY, raw_body=b"", stream=False,  # noqa: E731
                                    request_headers={"x-tenant": value}, request_api_key="sk-client-0123456789",
                                    max_response_bytes=1, timeout_ms=1, idle_timeout_ms=1)
    assert key(forwarding, tenant("a"), None) != key(forwarding, tenant("b"), None)
    assert key(target(), spec(), "team-a") != key(target(), spec(), "team-b")


def test_the_key_never_holds_the_provider_key():
    stored_as = key(target(api_key="sk-target-0123456789"), spec(), "ns")
    assert "sk-" not in stored_as and stored_as.startswith("aigw:cache:{")


def test_stored_answers_are_compressed_and_checked():
    answer = b'{"choices": [' + b'{"text": "same words again"},' * 200 + b"{}]}"
    stored = _encode(answer, 1234.5)
    assert len(stored) < len(answer) / 10 and _decode(stored) == (1234.5, answer)
    assert _decode(b"garbage") is None and _decode(b"z2" + b"\0" * 8 + b"not-zlib") is None
    assert _decode(b"z1" + stored[2:]) is None  # an older format: a miss, never misread


def test_an_answer_that_cannot_be_replayed_is_a_miss_for_a_stream():
    from aigw.state.response_cache import ResponseCache

    odd = b'{"object": "chat.completion", "choices": [{"index": 0, "message": {"tool_calls": [null]}}]}'
    streamed = spec({**BODY, "stream": True})
    assert ResponseCache._hit(target(), streamed, odd) is None
    assert ResponseCache._hit(target(), spec(), odd).body == odd  # a plain request still gets it
