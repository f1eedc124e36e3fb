"""What the semantic cache compares, and the in-process vector index."""

import pytest

from aigw.calls.spec import CallSpec
from aigw.config.parse import parse_config
from aigw.kinds import EndpointKind
from aigw.state.response_cache import target_scope
from aigw.state.semantic.index import MAX_TEXT_CHARS, semantic_namespace, semantic_text
from aigw.state.semantic.vectors import MemoryVectorStore


def test_the_text_is_the_system_prompt_and_the_last_user_message():
    body = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]}
    assert semantic_text(body) == "system: Be brief.\nuser: second\nquestion"


@pytest.mark.parametrize("messages", [
    [{"role": "assistant", "content": "x"}],  # no user turn
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": []},
     {"role": "tool", "content": "42", "tool_call_id": "c"}],  # continues with a tool result
    [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                  {"type": "image_url", "image_url": {"url": "data:..."}}]}],  # an image
    [{"role": "user", "content": "  "}],
    [{"role": "user", "content": "x" * 9000}],  # too long to embed whole
    "nope",
])
def test_requests_not_matched_by_meaning(messages):
    assert semantic_text({"messages": messages}) is None


def test_a_long_system_prompt_never_pushes_the_question_out():
    text = semantic_text({"messages": [{"role": "system", "content": "s" * 20_000},
                                       {"role": "user", "content": "How do I bake bread?"}]})
    assert text.endswith("user: How do I bake bread?") and len(text) <= MAX_TEXT_CHARS


def spec(body, key="sk-a-0123456789"):
    return CallSpec(kind=EndpointKind.CHAT, body=body, raw_body=b"", stream=False, request_headers={},
                    request_api_key=key, max_response_bytes=1, timeout_ms=1, idle_timeout_ms=1)


def space(target, body, key="sk-a-0123456789", namespace=None):
    s = spec(body, key)
    return semantic_namespace(target_scope(target, s, namespace), target, s)



def test_everything_but_the_last_question_is_matched_exactly():
    target = parse_config({"provider": "openai"}, frozenset())
    ask = [{"role": "user", "content": "q"}]
    base = space(target, {"model": "a", "messages": ask})
    assert base == space(target, {"model": "a", "messages": [{"role": "user", "content": "another q"}]})
    for changed in ({"model": "b"}, {"temperature": 1}, {"response_format": {"type": "json_object"}},
                    {"tools": [{"type": "function", "function": {"name": "f"}}]}, {"n": 2}):
        assert base != space(target, {"model": "a", "messages": ask, **changed}), changed
    earlier = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, *ask]
    assert base != space(target, {"model": "a", "messages": earlier})  # another conversation
    assert base != space(target, {"model": "a", "messages": ask}, key="sk-b-0123456789")
    assert base != space(target, {"model": "a", "messages": ask}, namespace="team")
    assert base == space(target, {"model": "a", "messages": ask, "stream": True})
    azure = parse_config({"provider": "azure-openai", "resource_name": "r", "deployment_id": "east"}, frozenset())
    other = parse_config({"provider": "azure-openai", "resource_name": "r", "deployment_id": "west"}, frozenset())
    assert space(azure, {"model": "a", "messages": ask}) != space(other, {"model": "a", "messages": ask})
    overridden = parse_config({"provider": "openai", "override_params": {"model": "b"}}, frozenset())
    assert space(overridden, {"model": "a", "messages": ask}) == space(target, {"model": "b", "messages": ask})


async def test_the_memory_index_finds_the_nearest_in_its_namespace_and_stays_bounded():
    index = MemoryVectorStore(max_vectors=3)
    await index.add("x", [1.0, 0.0], "ns")
    await index.add("y", [0.0, 2.0], "ns")
    await index.add("z", [1.0, 0.0], "other")
    found = await index.nearest([0.9, 0.1], "ns", 5)
    assert [i for i, _ in found] == ["x", "y"] and 0.99 < found[0][1] <= 1.0
    assert await index.nearest([1.0, 0.0], "empty", 5) == []
    await index.add("w", [0.0, 1.0], "ns")  # a fourth: the oldest ("x") goes
    assert "x" not in [i for i, _ in await index.nearest([1.0, 0.0], "ns", 5)]


async def test_a_text_the_embedder_refuses_is_a_miss_not_an_outage():
    from aigw.state.semantic.embedder import EmbeddingFailed, EmbeddingRefused
    from aigw.state.semantic.index import SemanticIndex

    class Embedder:
        def __init__(self, error):
            self.error = error

        async def embed(self, text):
            raise self.error

    refused = SemanticIndex(Embedder(EmbeddingRefused("400")), MemoryVectorStore(), 0.9, lambda: 0.0)
    assert await refused.lookup("q", "ns") == ([], None) and refused.availability.up
    broken = SemanticIndex(Embedder(ValueError("bad header")), MemoryVectorStore(), 0.9, lambda: 0.0)
    assert await broken.lookup("q", "ns") == ([], None) and not broken.availability.up
    failing = SemanticIndex(Embedder(EmbeddingFailed("503")), MemoryVectorStore(), 0.9, lambda: 0.0)
    assert await failing.lookup("q", "ns") == ([], None) and not failing.availability.up


async def test_a_transport_error_of_any_kind_is_a_transport_error():
    from aigw.upstream.json_call import post_json
    from aigw.upstream.transport import TransportError

    class Refusing:
        async def request(self, method, url, headers, body):
            raise ValueError("Invalid header value b'Bearer sk-x\\n'")

    with pytest.raises(TransportError) as info:
        await post_json(Refusing(), "http://127.0.0.1:9/x", {}, {}, 1.0)
    assert "sk-x" not in str(info.value)
