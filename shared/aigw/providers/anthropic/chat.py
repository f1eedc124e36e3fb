"""Chat completions over Anthropic's Messages API: the request and response transforms.

The request mapping is a ``ParamSpec`` table, as the reference gateway describes it; only
messages/system, tools and tool_choice need code. Field facts follow Anthropic's Messages
API docs and the reference gateway's Anthropic provider (OpenAI strict-compliance mode);
docs/reference-behaviour.md §10 records its bytes. Where the reference would send something
Anthropic rejects or loses a setting, this differs on purpose: consecutive tool results share
one user turn, ``parallel_tool_calls: false`` becomes ``disable_parallel_tool_use``, a string
``stop`` becomes a list, unparseable tool-call arguments become ``{}``, and an unknown or null
``tool_choice`` / null ``stop`` is left out instead of sent as null.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from aigw.config.model import Target
from aigw.errors import MissingParam
from aigw.providers.base import Json, MalformedResponse
from aigw.providers.params import OMIT, ParamSpec, ParamTable, map_params

PROVIDER_NAME = "anthropic"
SYSTEM_ROLES = frozenset({"system", "developer"})
PDF = "application/pdf"
TEXT_PLAIN = "text/plain"

# Anthropic stop_reason -> OpenAI finish_reason; anything else (refusal, ...) reads as "stop".
FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


_EMPTY: Mapping[str, Any] = {}


def obj(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: bodies come from clients and upstreams."""
    return value if isinstance(value, Mapping) else _EMPTY


def _ephemeral(source: Mapping[str, Any]) -> Json:
    # The reference normalises any cache_control to Anthropic's only kind.
    return {"cache_control": {"type": "ephemeral"}} if source.get("cache_control") else {}


# --------------------------------------------------------------------------- messages


def _system(body: Mapping[str, Any]) -> list[Json]:
    """System and developer messages, in order, as text blocks (Anthropic's top-level ``system``)."""
    blocks: list[Json] = []
    for msg in _dicts(body.get("messages")):
        if msg.get("role") not in SYSTEM_ROLES:
            continue
        content = msg.get("content")
        if isinstance(content, str):
            blocks.append({"text": content, "type": "text", **_ephemeral(msg)})
        elif isinstance(content, list) and content and isinstance(content[0], Mapping) and content[0].get("text"):
            blocks.extend({"text": p.get("text"), "type": "text", **_ephemeral(p)} for p in _dicts(content))
    return blocks


def _messages(body: Mapping[str, Any]) -> list[Json]:
    out: list[Json] = []
    # Consecutive tool results share one user turn (the reference sends one turn each; Anthropic
    # joins consecutive user turns anyway, so the meaning is the same and the body is canonical).
    after_tool = False
    for msg in _dicts(body.get("messages")):
        role = msg.get("role")
        if role in SYSTEM_ROLES:
            continue
        if role == "tool":
            result: Json = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or ""}
            if "content" in msg:
                result["content"] = msg["content"]
            if after_tool:
                out[-1]["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
            after_tool = True
            continue
        after_tool = False
        content = msg.get("content")
        if role == "assistant":
            out.append(_assistant(msg))
        elif isinstance(content, list) and content:
            out.append({"role": role, "content": [b for b in map(_user_part, _dicts(content)) if b is not None]})
        else:
            out.append({"role": role, "content": content})
    return out


def _assistant(msg: Mapping[str, Any]) -> Json:
    # `content_blocks` is the reference's extension carrying thinking blocks back verbatim.
    source = msg.get("content_blocks") if msg.get("content_blocks") is not None else msg.get("content")
    blocks: list[Any] = []
    if isinstance(source, str) and source:
        blocks.append({"type": "text", "text": source})
    elif isinstance(source, list):
        blocks.extend(b for b in source if not (isinstance(b, Mapping) and b.get("type") == "tool_use"))
    for call in _dicts(msg.get("tool_calls")):
        fn = obj(call.get("function"))
        block: Json = {"type": "tool_use", "name": fn.get("name"), "id": call.get("id"), "input": _arguments(fn.get("arguments"))}
        if call.get("cache_control"):
            block["cache_control"] = call["cache_control"]
        blocks.append(block)
    return {"role": "assistant", "content": blocks}


def _arguments(raw: Any) -> Json:
    """OpenAI sends arguments as a JSON string; Anthropic wants the object. Unparseable -> {}."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _user_part(part: Mapping[str, Any]) -> Json | None:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text"), **_ephemeral(part)}
    if kind == "image_url":
        return _image(part)
    if kind == "file":
        return _file(part)
    return None  # audio and other parts have no Anthropic equivalent: dropped, as the reference does


def _image(part: Mapping[str, Any]) -> Json | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str) or not url:
        return None
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    # data:<media type>;base64,<data> -- anything else is dropped, as the reference does.
    head_tail = url.split(";")
    if len(head_tail) != 2:
        return None
    scheme_media = head_tail[0].split(":")
    data = head_tail[1].split(",")
    if len(scheme_media) != 2 or len(data) < 2 or not data[1]:
        return None
    media_type = scheme_media[1]
    return {
        "type": "document" if media_type == PDF else "image",
        "source": {"type": "base64", "media_type": media_type, "data": data[1]},
        **_ephemeral(part),
    }


def _file(part: Mapping[str, Any]) -> Json | None:
    file = part.get("file")
    if not isinstance(file, Mapping):
        return None
    media_type = file.get("mime_type") or PDF
    if file.get("file_url"):
        return {"type": "document", "source": {"type": "url", "url": file["file_url"]}}
    if file.get("file_data"):
        kind = "text" if media_type == TEXT_PLAIN else "base64"
        return {"type": "document", "source": {"type": kind, "data": file["file_data"], "media_type": media_type}}
    return None


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


# --------------------------------------------------------------------------- tools


def _tools(body: Mapping[str, Any]) -> list[Json]:
    tools: list[Json] = []
    for tool in _dicts(body.get("tools")):
        fn = tool.get("function")
        if isinstance(fn, Mapping) and fn:
            schema = obj(fn.get("parameters"))
            entry: Json = {
                "name": fn.get("name"),
                "description": fn.get("description") or "",
                # The reference rebuilds the schema from these four keys only.
                "input_schema": {
                    "type": schema.get("type") or "object",
                    "properties": schema.get("properties") or {},
                    "required": schema.get("required") or [],
                    "$defs": schema.get("$defs") or {},
                },
                **_ephemeral(tool),
            }
            if fn.get("defer_loading") is not None:
                entry["defer_loading"] = fn["defer_loading"]
            for key in ("allowed_callers", "input_examples"):
                if fn.get(key):
                    entry[key] = fn[key]
            tools.append(entry)
        elif isinstance(tool.get("type"), str):
            # Anthropic server tools: {"type": "computer", "computer": {"name": "computer_2024...", ...}}.
            extra = tool.get(tool["type"])
            entry = {**extra} if isinstance(extra, Mapping) else {}
            entry["name"] = tool["type"]
            if isinstance(extra, Mapping) and "name" in extra:
                entry["type"] = extra["name"]
            tools.append({**entry, **_ephemeral(tool)})
    return tools


def _tool_choice(body: Mapping[str, Any]) -> Any:
    choice = body.get("tool_choice")
    result: Json | None = None
    if isinstance(choice, str):
        result = {"required": {"type": "any"}, "auto": {"type": "auto"}, "none": {"type": "none"}}.get(choice)
    elif isinstance(choice, Mapping) and choice:
        fn = obj(choice.get("function"))
        result = {"type": "tool", "name": fn.get("name")}
    if result is None:
        return OMIT
    if body.get("parallel_tool_calls") is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def _parallel_tool_calls(body: Mapping[str, Any]) -> Any:
    # Anthropic carries this flag on tool_choice; with no tool_choice given, "auto" carries it.
    if body.get("parallel_tool_calls") is False and "tool_choice" not in body and body.get("tools"):
        return {"type": "auto", "disable_parallel_tool_use": True}
    return OMIT


def _stop(body: Mapping[str, Any]) -> Any:
    stop = body.get("stop")
    if stop is None:
        return OMIT
    return [stop] if isinstance(stop, str) else stop


def _model(model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise MissingParam("'model' must name an Anthropic model", param="model")
    return model


# OpenAI param -> Anthropic field(s), in the order the reference emits them. The reference's
# defaults for optional params (temperature 1, top_p -1, top_k -1, stream false) are never
# sent by it, so they are left out here; only `model` gets its default.
DEFAULT_MAX_TOKENS = 4096

CHAT_PARAMS: ParamTable = {
    # No default model: Anthropic retires models, and a silent default would answer with one the
    # client never chose (the reference defaults to the retired claude-2.1).
    "model": ParamSpec("model", required=True, transform=lambda body: _model(body.get("model"))),
    "messages": (ParamSpec("messages", transform=_messages), ParamSpec("system", transform=_system)),
    "tools": ParamSpec("tools", transform=_tools),
    "tool_choice": ParamSpec("tool_choice", transform=_tool_choice),
    "parallel_tool_calls": ParamSpec("tool_choice", transform=_parallel_tool_calls),
    # Anthropic requires max_tokens; the reference sends none, so an OpenAI-style request
    # (and a fallback from OpenAI) fails there with 400. We send a default instead.
    "max_tokens": ParamSpec("max_tokens", default=DEFAULT_MAX_TOKENS),
    "max_completion_tokens": ParamSpec("max_tokens"),  # the newer name wins when both are given
    "temperature": ParamSpec("temperature", min=0, max=1),  # Anthropic's range is 0..1, OpenAI's 0..2
    "top_p": ParamSpec("top_p", min=-1),
    "top_k": ParamSpec("top_k"),
    "stop": ParamSpec("stop_sequences", transform=_stop),
    "stream": ParamSpec("stream"),
    "user": ParamSpec("metadata.user_id"),
    "thinking": ParamSpec("thinking"),
}


def to_anthropic(body: Json, target: Target) -> Json:
    return map_params(body, CHAT_PARAMS)


# --------------------------------------------------------------------------- response


def usage(raw: Any) -> Json:
    """Anthropic usage -> OpenAI usage. prompt_tokens is the uncached input only; the total adds the cache."""
    u = obj(raw)
    prompt, completion = u.get("input_tokens") or 0, u.get("output_tokens") or 0
    created, read = u.get("cache_creation_input_tokens"), u.get("cache_read_input_tokens")
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion + (created or 0) + (read or 0),
        "prompt_tokens_details": {"cached_tokens": read or 0},
    }
    if created or read:
        out.update(_cache_fields(read, created))
    return out


def _cache_fields(read: Any, created: Any) -> Json:
    fields: Json = {}
    if read is not None:
        fields["cache_read_input_tokens"] = read
    if created is not None:
        fields["cache_creation_input_tokens"] = created
    return fields


def from_anthropic(body: Json, target: Target) -> Json:
    content = body.get("content")
    if not isinstance(content, list):
        raise MalformedResponse(f"Invalid response received from {PROVIDER_NAME}: no content blocks")
    blocks = [b for b in content if isinstance(b, Mapping)]
    text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    tool_calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input")).decode()},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: Json = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": body.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "provider": PROVIDER_NAME,
        "choices": [{"message": message, "index": 0, "logprobs": None, "finish_reason": finish_reason(body.get("stop_reason"))}],
        "usage": usage(body.get("usage")),
    }
