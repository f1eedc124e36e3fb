import pytest

from aigw.errors import InvalidConfig
from aigw.routing.conditions import compile_query

CTX = {
    "metadata": {"plan": "paid", "tier": 3, "region": "eu-west-1"},
    "params": {"model": "gpt-4o", "temperature": 0.2, "nested": {"a": {"b": 1}}},
    "url": {"pathname": "/v1/chat/completions"},
}


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"metadata.plan": "paid"}, True),
        ({"metadata.plan": {"$eq": "free"}}, False),
        ({"metadata.plan": {"$ne": "free"}}, True),
        ({"metadata.missing": {"$ne": "x"}}, True),  # $ne holds when absent
        ({"metadata.missing": {"$nin": ["x"]}}, True),  # $nin holds when absent
        ({"metadata.missing": {"$eq": "x"}}, False),
        ({"metadata.missing": {"$in": ["x"]}}, False),
        ({"metadata.missing": {"$gt": 1}}, False),
        ({"metadata.plan": {"$in": ["paid", "pro"]}}, True),
        ({"metadata.plan": {"$nin": ["paid"]}}, False),
        ({"metadata.tier": {"$gt": 2}}, True),
        ({"metadata.tier": {"$gte": 3, "$lt": 4}}, True),
        ({"metadata.tier": {"$lte": 2}}, False),
        ({"metadata.plan": {"$gt": 2}}, False),  # string vs number: no match, no error
        ({"params.temperature": {"$lt": 0.5}}, True),
        ({"params.nested.a.b": 1}, True),
        ({"params.model": {"$regex": "^gpt-4"}}, True),
        ({"params.model": {"$regex": "claude"}}, False),
        ({"metadata.tier": {"$regex": "3"}}, False),  # regex only matches strings
        ({"url.pathname": {"$regex": "/chat/"}}, True),
        ({"$or": [{"metadata.plan": "free"}, {"metadata.tier": 3}]}, True),
        ({"$and": [{"metadata.plan": "paid"}, {"params.model": "gpt-3.5"}]}, False),
        ({"$and": [{"$or": [{"metadata.region": {"$regex": "^eu-"}}]}, {"metadata.tier": {"$in": [1, 3]}}]}, True),
        ({"metadata.plan": "paid", "metadata.tier": 4}, False),  # top-level keys are ANDed
    ],
)
def test_query_semantics(query, expected):
    assert compile_query(query, "q")(CTX) is expected


@pytest.mark.parametrize("query", [{"$nor": []}, {"a": {"$in": "x"}}, {"a": {"$gt": [1]}}, {"$and": []}, "x"])
def test_invalid_queries_are_config_errors(query):
    with pytest.raises(InvalidConfig):
        compile_query(query, "q")


@pytest.mark.timeout(20)
def test_hostile_regex_cannot_stall_a_worker():
    # Catastrophic for a backtracking engine (it would not return before the timeout);
    # RE2 is linear in the input.
    predicate = compile_query({"params.model": {"$regex": "^(a+)+$"}}, "q")
    assert predicate({"params": {"model": "a" * 100_000 + "!"}}) is False


def test_deeply_nested_queries_are_refused_not_a_recursion_error():
    query = {"metadata.a": "1"}
    for _ in range(300):
        query = {"$and": [query]}
    with pytest.raises(InvalidConfig) as info:
        compile_query(query, "q")
    assert "deeper" in info.value.message
    shallow = {"metadata.a": "1"}
    for _ in range(10):
        shallow = {"$or": [shallow]}
    assert compile_query(shallow, "q")({"metadata": {"a": "1"}}) is True


# Metadata values arrive as strings; the reference compares parseFloat of both sides
# (docs/reference-behaviour.md §15).
@pytest.mark.parametrize("op, value, arg, expected", [
    ("$gt", "10", 9, True), ("$gt", "10", "9", True), ("$lt", 5, "10", True),
    ("$gte", "7", 7, True), ("$lte", "7.5", 7, False), ("$gt", "10abc", 9, True),
    ("$gt", "abc", 1, False), ("$lt", "abc", 1, False), ("$gt", "", -1, False),
    ("$gt", "b", "a", False), ("$gt", True, 0, False), ("$gt", " 2e3", 1999, True),
])
def test_relational_operators_compare_numbers_as_the_reference_does(op, value, arg, expected):
    query = compile_query({"metadata.v": {op: arg}}, "q")
    assert query({"metadata": {"v": value}}) is expected


@pytest.mark.parametrize("query, value, expected", [
    ({"$eq": 5}, "5", False), ({"$eq": 5}, 5, True), ({"$eq": 1}, True, False), ({"$ne": 1}, True, True),
    ({"$in": [1, 2]}, True, False), ({"$in": ["5"]}, 5, False), ({"$nin": [0]}, False, True),
])
def test_equality_is_strict(query, value, expected):
    assert compile_query({"metadata.v": query}, "q")({"metadata": {"v": value}}) is expected
