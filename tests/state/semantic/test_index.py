"""What the semantic cache compares, and the in-process vector index."""

from aigw.calls.spec import CallSpec
from aigw.config.parse import parse_config
from aigw.kinds import EndpointKind
from aigw.state.response_cache import target_scope
from aigw.state.semantic.index import semantic_namespace, semantic_text
from aigw.state.semantic.vectors import MemoryVectorStore


def test_the_text_is_the_system_prompt_and_the_last_user_message():
    body = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {}},
                                     {"type": "text", "text": "question"}]},
    ]}
    assert semantic_text(body) == "system: Be brief.\nuser: second\nquestion"
    assert semantic_text({"messages": [{"role": "assistant", "content": "x"}]}) is None
    assert semantic_text({"messages": "nope"}) is None
    assert semantic_text({"messages": [{"role": "user", "content": "  "}]}) is None


def spec(body, key="sk-a-0123456789"):
    return CallSpec(kind=EndpointKind.CHAT, body=body, raw_body=b"", stream=False, request_headers={},
                    request_api_key=key, max_response_bytes=1, timeout_ms=1, idle_timeout_ms=1)


def space(target, body, key="sk-a-0123456789", namespace=None):
    s = spec(body, key)
    return semantic_namespace(target_scope(target, s, namespace), target, s)


def test_model_target_scope_and_namespace_separate_vector_spaces():
    target = parse_config({"provider": "openai"}, frozenset())
    base = space(target, {"model": "a", "temperature": 0})
    assert base == space(target, {"model": "a", "temperature": 1})  # only the model counts of the body
    assert base != space(target, {"model": "b"})
    assert base != space(target, {"model": "a"}, key="sk-b-0123456789")
    assert base != space(target, {"model": "a"}, namespace="team")
    azure = parse_config({"provider": "azure-openai", "resource_name": "r", "deployment_id": "east"}, frozenset())
    other = parse_config({"provider": "azure-openai", "resource_name": "r", "deployment_id": "west"}, frozenset())
    assert space(azure, {"model": "a"}) != space(other, {"model": "a"})
    overridden = parse_config({"provider": "openai", "override_params": {"model": "b"}}, frozenset())
    assert space(overridden, {"model": "a"}) == space(target, {"model": "b"})


async def test_the_memory_index_finds_the_nearest_in_its_namespace_and_stays_bounded():
    index = MemoryVectorStore(max_vectors=3)
    await index.add("x", [1.0, 0.0], "ns")
    await index.add("y", [0.0, 2.0], "ns")
    await index.add("z", [1.0, 0.0], "other")
    found = await index.nearest([0.9, 0.1], "ns")
    assert found[0] == "x" and 0.99 < found[1] <= 1.0
    assert await index.nearest([1.0, 0.0], "empty") is None
    await index.add("w", [0.0, 1.0], "ns")  # a fourth: the oldest ("x") goes
    assert (await index.nearest([1.0, 0.0], "ns"))[0] != "x"
