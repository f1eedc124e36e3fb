"""RequestContext: trace ids, attempt records, deadlines and completion callbacks."""

import logging
import time
import uuid

import pytest

from aigw.context import AttemptSource, Completion, RequestContext, new_trace_id, trace_id_from
from aigw.errors import InvalidHeader
from aigw.request import GatewayRequest


def ctx(**kw):
    return RequestContext(GatewayRequest("POST", "/v1/chat/completions", {}), "t-1", **kw)


def record(c, path, status=500):
    c.record(path, "openai", AttemptSource.PROVIDER, status, c.started_mono, c.started_mono + 0.001, None)


def test_trace_id_is_the_clients_or_a_new_uuid4():
    assert trace_id_from({"x-portkey-trace-id": "abc-1"}) == "abc-1"
    assert uuid.UUID(trace_id_from({})).version == 4
    assert new_trace_id() != new_trace_id()


@pytest.mark.parametrize("bad", ["", "x" * 257, "a\nb", "tab\there"])
def test_an_invalid_trace_id_is_a_400_naming_the_header(bad):
    with pytest.raises(InvalidHeader) as info:
        trace_id_from({"x-portkey-trace-id": bad})
    assert info.value.param == "x-portkey-trace-id" and info.value.status == 400


def test_records_number_retries_per_target_and_mark_the_retried_ones():
    c = ctx()
    for path in ("config.targets[0]", "config.targets[0]", "config.targets[1]", "config.targets[0]"):
        record(c, path)
    assert [(r.path, r.retry_index, r.retried) for r in c.attempts] == [
        ("config.targets[0]", 0, True), ("config.targets[0]", 1, True),
        ("config.targets[1]", 0, False), ("config.targets[0]", 2, False),
    ]


def test_completion_runs_each_callback_once_and_survives_a_failing_one(caplog):
    c = ctx()
    seen = []

    def broken(_):
        raise RuntimeError("sk-secret-in-message")

    c.on_complete(lambda x: seen.append(("first", x.completion)))
    c.on_complete(broken)
    c.on_complete(lambda x: seen.append(("last", x.completion)))
    with caplog.at_level(logging.ERROR, logger="aigw"):
        c.complete(Completion.CLIENT_GONE)
        c.complete(Completion.SENT)  # later calls do nothing
    assert seen == [("first", Completion.CLIENT_GONE), ("last", Completion.CLIENT_GONE)]
    assert "RuntimeError" in caplog.text and "sk-secret" not in caplog.text


def test_time_left_before_the_deadline_never_goes_negative():
    assert ctx().remaining_s() is None
    assert 0.5 < ctx(deadline=time.monotonic() + 1.0).remaining_s() <= 1.0
    assert ctx(deadline=time.monotonic() - 1).remaining_s() == 0.0
