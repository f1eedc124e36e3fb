"""Data types, routing and realistic default responses of the fake provider.

Pure functions only (no server state): ``default_reply(req, ids)`` turns a recorded
request into the ``Reply`` a real provider would send. Bodies follow the public
OpenAI / Azure OpenAI / Anthropic API documentation; content is deterministic.
Embeddings are sha256 pseudo-vectors (8 dims by default), except for the model
``fake-semantic-embedding``: ``embeddings.embed`` bag-of-words vectors (64 dims by default).
See ``provider_server`` for the route list and the scripting order.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.embeddings import SEMANTIC_EMBEDDING_DIMS, SEMANTIC_EMBEDDING_MODEL, embed
from tests.fakes.sse import anthropic_sse, openai_sse

ROUTES: tuple[str, ...] = (
    "openai.chat",  # POST .../chat/completions
    "openai.completions",  # POST .../completions
    "openai.embeddings",  # POST .../embeddings
    "openai.models",  # GET  .../models
    "azure.chat",  # POST /openai/deployments/{deployment}/chat/completions?api-version=
    "azure.completions",  # POST /openai/deployments/{deployment}/completions?api-version=
    "azure.embeddings",  # POST /openai/deployments/{deployment}/embeddings?api-version=
    "anthropic.messages",  # POST .../messages
    "unknown",  # anything else (default: OpenAI-style 404)
)

DEFAULT_TEXT = "Hello from the fake provider"
TEXT_PIECES = ("Hello", " from", " the", " fake", " provider")  # stream deltas, joined == DEFAULT_TEXT
TOOL_ARGUMENTS = '{"x": 1}'
TOOL_ARG_PIECES = ('{"x"', ": 1}")
CREATED = 1_700_000_000  # fixed "created" timestamp for determinism
MODELS = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
EMBEDDING_DIMS = 8
REJECTED_KEYS = frozenset({"undefined", "null", "sk-invalid"})  # treated as wrong keys
API_KEY_PLACEHOLDER = "<<API_KEY>>"  # replaced by the received key when Reply.echo_key
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


@dataclass
class Reply:
    """A scripted response. A reply without json/body/sse sends the route default
    (status < 400) or a provider-shaped error body (status >= 400)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None  # exact JSON body
    body: bytes | None = None  # raw body (e.g. malformed JSON)
    delay_s: float = 0.0  # sleep before sending headers
    sse: list[bytes] | None = None  # raw chunks, written + flushed one by one
    chunk_delay_s: float = 0.0  # sleep between chunks
    drop_after_chunks: int | None = None  # abort the connection after N chunks (no chunked EOF)
    drop_before_headers: bool = False  # close the connection without any response
    echo_key: bool = False  # put the received API key into the body (see server docstring)

    def has_body(self) -> bool:
        return self.json is not None or self.body is not None or self.sse is not None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # parsed body, None if empty / not JSON
    received_at: float  # time.monotonic() on arrival
    route: str = "unknown"
    params: dict[str, str] = field(default_factory=dict)  # e.g. {"deployment": ...}

    @property
    def api_key(self) -> str | None:
        """Key from ``api-key`` / ``x-api-key`` / ``Authorization: Bearer``."""
        for name in ("api-key", "x-api-key"):
            if self.headers.get(name):
                return self.headers[name]
        return self.bearer

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class Ids:
    """Deterministic ids: ``chatcmpl-fake000001``, ``msg_fake000002`` ... (reset per test)."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def reset(self) -> None:
        self._n = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}fake{next(self._n):06d}"


_AZURE_RE = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|completions|embeddings)/?$")
_SUFFIXES = (  # checked in order; Azure first (its paths end like OpenAI's)
    ("POST", "/chat/completions", "openai.chat"),
    ("POST", "/completions", "openai.completions"),
    ("POST", "/embeddings", "openai.embeddings"),
    ("GET", "/models", "openai.models"),
    ("POST", "/messages", "anthropic.messages"),
)


def match_route(method: str, path: str) -> tuple[str, dict[str, str]]:
    if method == "POST" and (m := _AZURE_RE.search(path)):
        op = {"chat/completions": "chat"}.get(m["op"], m["op"])
        return f"azure.{op}", {"deployment": m["deployment"]}
    for meth, suffix, route in _SUFFIXES:
        if method == meth and path.rstrip("/").endswith(suffix):
            return route, {}
    return "unknown", {}


# --------------------------------------------------------------------------- errors

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {  # status -> (type, code, message)
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_AZURE_MESSAGES = {
    401: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    404: "Resource not found",
    429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded "
    "call rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second.",
}


def family(route: str) -> str:
    return route.split(".")[0] if route.startswith(("azure.", "anthropic.")) else "openai"


def error_body(route: str, status: int, message: str | None = None, code: str | None = None) -> dict[str, Any]:
    """Provider-shaped error body for ``route``'s family."""
    fam = family(route)
    if fam == "anthropic":
        etype, default = _ANTHROPIC_ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", "Error"))
        return {"type": "error", "error": {"type": etype, "message": message or default}}
    if fam == "azure":
        msg = message or _AZURE_MESSAGES.get(status, "The server had an error while processing your request.")
        return {"error": {"code": code or str(status), "message": msg}}
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None, "Error")
    etype, ecode, default = _OPENAI_ERRORS.get(status, fallback)
    return {"error": {"message": message or default, "type": etype, "param": None, "code": code or ecode}}


def request_id_headers(route: str, ids: Ids) -> dict[str, str]:
    fam = family(route)
    if fam == "anthropic":
        return {"request-id": ids("req_")}
    if fam == "azure":
        rid = ids("")
        return {"apim-request-id": rid, "x-request-id": rid}
    return {"x-request-id": ids("req_")}


def error_reply(req: RecordedRequest, ids: Ids, status: int, message: str | None = None, code: str | None = None) -> Reply:
    headers = request_id_headers(req.route, ids)
    return Reply(status=status, json=error_body(req.route, status, message, code), headers=headers)


# --------------------------------------------------------------------------- helpers


def _words(*objs: Any) -> int:
    """Deterministic token estimate: whitespace-separated words in all strings inside objs."""
    n = 0
    stack = list(objs)
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            n += len(o.split())
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return max(n, 1)


def _limit(pieces: tuple[str, ...], max_tokens: Any) -> tuple[tuple[str, ...], bool]:
    """Truncate to max_tokens pieces; returns (pieces, truncated)."""
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 < max_tokens < len(pieces):
        return pieces[:max_tokens], True
    return pieces, False


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


_SAFE = {k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual", "violence")}
_PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": _SAFE}]


def _openai_tool_name(body: dict[str, Any]) -> str | None:
    """Name of the tool to call: tools present, tool_choice != none, last message from the user."""
    tools = body.get("tools") or []
    msgs = body.get("messages") or []
    if not tools or body.get("tool_choice") == "none" or not msgs or msgs[-1].get("role") != "user":
        return None
    return (tools[0].get("function") or {}).get("name", "tool")


# --------------------------------------------------------------------------- OpenAI / Azure


def _chat(req: RecordedRequest, ids: Ids, model: str) -> Reply:
    body: dict[str, Any] = req.json
    azure = req.route.startswith("azure.")
    cid, tool = ids("chatcmpl-"), _openai_tool_name(body)
    pieces, truncated = _limit(TEXT_PIECES, body.get("max_completion_tokens", body.get("max_tokens")))
    finish = "tool_calls" if tool else ("length" if truncated else "stop")
    prompt, completion = _words(body.get("messages")), (len(TOOL_ARG_PIECES) + 5 if tool else len(pieces))
    base = {"id": cid, "created": CREATED, "model": model, "system_fingerprint": "fp_fake"}
    call = {"id": ids("call_"), "type": "function", "function": {"name": tool, "arguments": TOOL_ARGUMENTS}}
    headers = request_id_headers(req.route, ids)

    if body.get("stream"):
        usage_on = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            c = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
            return {**c, "usage": None} if usage_on else c

        chunks: list[dict[str, Any]] = []
        if azure:  # Azure sends a prompt-filter prelude with empty choices first
            prelude = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
            chunks.append({**prelude, "prompt_filter_results": _PROMPT_FILTER})
        if tool:
            first = {**call, "index": 0, "function": {"name": tool, "arguments": ""}}
            chunks.append(chunk({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None}))
            chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in TOOL_ARG_PIECES]
        else:
            chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            chunks += [chunk({"content": p}) for p in pieces]
        chunks.append(chunk({}, finish))
        if usage_on:
            chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": _usage(prompt, completion)})
        return Reply(headers={**SSE_HEADERS, **headers}, sse=openai_sse(chunks))

    content = None if tool else "".join(pieces)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool:
        message["tool_calls"] = [call]
    n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)]
    usage = _usage(prompt, completion * n)
    resp = {**base, "object": "chat.completion", "choices": choices, "usage": usage, "service_tier": "default"}
    if azure:
        resp["prompt_filter_results"] = _PROMPT_FILTER
        for c in choices:
            c["content_filter_results"] = _SAFE
    return Reply(json=resp, headers=headers)


def _completions(req: RecordedRequest, ids: Ids, model: str) -> Reply:
    body: dict[str, Any] = req.json
    pieces, truncated = _limit(TEXT_PIECES, body.get("max_tokens"))
    finish, prompt = ("length" if truncated else "stop"), _words(body.get("prompt"))
    base = {"id": ids("cmpl-"), "object": "text_completion", "created": CREATED, "model": model, "system_fingerprint": "fp_fake"}
    headers = request_id_headers(req.route, ids)

    def choice(text: str, reason: str | None) -> list[dict[str, Any]]:
        return [{"text": text, "index": 0, "logprobs": None, "finish_reason": reason}]

    if body.get("stream"):
        chunks = [{**base, "choices": choice(p, None)} for p in pieces] + [{**base, "choices": choice("", finish)}]
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": _usage(prompt, len(pieces))})
        return Reply(headers={**SSE_HEADERS, **headers}, sse=openai_sse(chunks))
    return Reply(json={**base, "choices": choice("".join(pieces), finish), "usage": _usage(prompt, len(pieces))}, headers=headers)


def embedding_vector(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic pseudo-embedding in [-1, 1] derived from sha256(text)."""
    out: list[float] = []
    for i in itertools.count():
        out += [round(b / 127.5 - 1.0, 6) for b in hashlib.sha256(f"{i}:{text}".encode()).digest()]
        if len(out) >= dims:
            return out[:dims]
    raise AssertionError("unreachable")


def _embeddings(req: RecordedRequest, ids: Ids, model: str) -> Reply:
    body: dict[str, Any] = req.json
    inp = body.get("input")
    if isinstance(inp, str) or (isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp)):
        inputs = [inp]  # one string or one token array
    else:
        inputs = list(inp)
    # The semantic model gets embeddings.embed (same words -> same vector); others the sha256 pseudo-vector.
    semantic = model == SEMANTIC_EMBEDDING_MODEL
    vector_of = embed if semantic else embedding_vector
    default_dims = SEMANTIC_EMBEDDING_DIMS if semantic else EMBEDDING_DIMS
    dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) and body["dimensions"] > 0 else default_dims
    data = []
    for i, item in enumerate(inputs):
        vec = vector_of(item if isinstance(item, str) else json.dumps(item), dims)
        emb: Any = vec
        if body.get("encoding_format") == "base64":  # little-endian float32, as the OpenAI SDK expects
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = _words(inputs)
    resp = {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return Reply(json=resp, headers=request_id_headers(req.route, ids))


def _models(req: RecordedRequest, ids: Ids) -> Reply:
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "system" if "embedding" in m else "openai"}
            for m in MODELS]
    return Reply(json={"object": "list", "data": data}, headers=request_id_headers(req.route, ids))


def _openai_like(req: RecordedRequest, ids: Ids) -> Reply:
    azure = req.route.startswith("azure.")
    key = req.api_key if azure else req.bearer
    if not key or key in REJECTED_KEYS:
        if azure:
            return error_reply(req, ids, 401)
        shown = f"{key[:3]}***{key[-4:]}" if key and len(key) > 8 else "***"
        msg = (f"Incorrect API key provided: {shown}. You can find your API key at "
               "https://platform.openai.com/account/api-keys.")
        return error_reply(req, ids, 401, msg)
    if azure and "api-version" not in req.query:
        return error_reply(req, ids, 404)
    if req.route == "openai.models":
        return _models(req, ids)
    if not isinstance(req.json, dict):
        msg = "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
        return error_reply(req, ids, 400, msg)
    model = req.json.get("model") or req.params.get("deployment")
    if not model:
        return error_reply(req, ids, 400, "you must provide a model parameter")
    op = req.route.split(".")[1]
    required = {"chat": "messages", "completions": "prompt", "embeddings": "input"}[op]
    if req.json.get(required) in (None, "", []):
        return error_reply(req, ids, 400, f"Missing required parameter: '{required}'.", "missing_required_parameter")
    return {"chat": _chat, "completions": _completions, "embeddings": _embeddings}[op](req, ids, model)


# --------------------------------------------------------------------------- Anthropic


def _anthropic_tool(body: dict[str, Any]) -> str | None:
    """First tool's name unless the last user message carries tool results (avoids tool loops)."""
    tools, msgs = body.get("tools") or [], body.get("messages") or []
    if not tools or (body.get("tool_choice") or {}).get("type") == "none" or not msgs:
        return None
    last = msgs[-1]
    content = last.get("content")
    blocks = content if isinstance(content, list) else []
    if last.get("role") != "user" or any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks):
        return None
    return tools[0].get("name", "tool")


def _anthropic(req: RecordedRequest, ids: Ids) -> Reply:
    if not req.headers.get("x-api-key") or req.headers["x-api-key"] in REJECTED_KEYS:
        msg = "x-api-key header is required" if not req.headers.get("x-api-key") else "invalid x-api-key"
        return error_reply(req, ids, 401, msg)
    if not req.headers.get("anthropic-version"):
        return error_reply(req, ids, 400, "anthropic-version: header is required")
    body = req.json
    if not isinstance(body, dict):
        return error_reply(req, ids, 400, "There was an error parsing the body of your request as JSON.")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return error_reply(req, ids, 400, f"{name}: Field required")

    tool = _anthropic_tool(body)
    pieces, truncated = _limit(TEXT_PIECES, body["max_tokens"])
    stop = "tool_use" if tool else ("max_tokens" if truncated else "end_turn")
    prompt = _words(body.get("system"), body.get("messages"))
    output = len(pieces) + (len(TOOL_ARG_PIECES) + 5 if tool else 0)
    msg_id, tool_id = ids("msg_"), ids("toolu_")
    headers = request_id_headers(req.route, ids)
    usage = {"input_tokens": prompt, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    if body.get("stream"):
        start = {"id": msg_id, "type": "message", "role": "assistant", "model": body["model"], "content": [],
                 "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"message": start}),
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ("ping", {}),
            *[("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}}) for p in pieces],
            ("content_block_stop", {"index": 0}),
        ]
        if tool:
            events += [
                ("content_block_start",
                 {"index": 1, "content_block": {"type": "tool_use", "id": tool_id, "name": tool, "input": {}}}),
                *[("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})
                  for p in ("", *TOOL_ARG_PIECES)],
                ("content_block_stop", {"index": 1}),
            ]
        events += [
            ("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": output}}),
            ("message_stop", {}),
        ]
        return Reply(headers={**SSE_HEADERS, **headers}, sse=anthropic_sse(events))

    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(pieces)}]
    if tool:
        content.append({"type": "tool_use", "id": tool_id, "name": tool, "input": {"x": 1}})
    resp = {"id": msg_id, "type": "message", "role": "assistant", "model": body["model"], "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": {**usage, "output_tokens": output}}
    return Reply(json=resp, headers=headers)


def default_reply(req: RecordedRequest, ids: Ids) -> Reply:
    """What the real provider would answer to ``req`` (incl. auth/validation errors)."""
    if req.route == "anthropic.messages":
        return _anthropic(req, ids)
    if req.route == "unknown":  # OpenAI's answer to an unknown path
        err = {"message": f"Invalid URL ({req.method} {req.path})", "type": "invalid_request_error", "param": None, "code": None}
        return Reply(status=404, json={"error": err}, headers=request_id_headers(req.route, ids))
    return _openai_like(req, ids)
