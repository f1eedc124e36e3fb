"""The log record: one document per request, built from its context once the response is over.

Versioned (``schema_version``); the analytics row is derived from it. Plain dicts and orjson:
the route functions must not import pydantic for it (the writer may validate).

No secret leaves here: only an allow-list of request headers is kept (never ``Authorization``,
``x-portkey-api-key``, cookies, ``x-portkey-config`` or a forwarded header; a custom host without
its user:password@ and query), and the whole serialised document is then scrubbed of every key the request carried or
used (provider keys in the config, the client's key, the gateway key), in their JSON-escaped
forms too.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from aigw.context import AttemptSource, RequestContext
from aigw.redact import MAX_SECRET_LENGTH, scrubber_for

SCHEMA_VERSION = 1
# Request headers the record keeps: an allow-list, since any other header may carry a
# credential (a forwarded x-custom-auth, a cookie). Everything else is left out.
_LOGGED_HEADERS = frozenset({
    "content-type", "content-length", "user-agent", "accept", "x-portkey-provider", "x-portkey-trace-id",
    "x-portkey-metadata", "x-portkey-cache-force-refresh", "x-portkey-cache-namespace", "x-portkey-request-timeout",
    "x-portkey-forward-headers", "x-portkey-azure-resource-name", "x-portkey-azure-deployment-id",
    "x-portkey-azure-api-version",
})
_HOST_HEADER = "x-portkey-custom-host"


class LogRecord:
    """A serialised record and what a store files it under."""

    __slots__ = ("log_id", "organisation", "day", "document")

    def __init__(self, log_id: str, organisation: str, day: str, document: bytes) -> None:
        self.log_id, self.organisation, self.day, self.document = log_id, organisation, day, document


def _secrets(ctx: RequestContext) -> tuple[str, ...]:
    """``ctx.secrets``, and for a request refused before they were read (a bad config, a key too
    long), the credential headers as they came (those a scrubber can take)."""
    headers = ctx.request.headers
    raw = [headers.get(name, "").strip() for name in ("x-portkey-api-key", "x-api-key", "api-key")]
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        raw.append(token.strip())
    usable = [s for s in raw if s and len(s) <= MAX_SECRET_LENGTH and "\r" not in s and "\n" not in s]
    return tuple(dict.fromkeys((*ctx.secrets, *usable)))


def _logged_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k in _LOGGED_HEADERS}
    host = headers.get(_HOST_HEADER)
    if host:
        kept[_HOST_HEADER] = _without_credentials(host)
    return kept


def _without_credentials(url: str) -> str:
    """A custom host's scheme, host, port and path: never its user:password@ or its query."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _json_or_text(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def build_record(ctx: RequestContext, service: str, ended_mono: float) -> LogRecord:
    log_id = uuid.uuid4().hex
    started = datetime.datetime.fromtimestamp(ctx.started_at, datetime.UTC)
    attempts = ctx.attempts
    upstream_ms = sum(a.duration_ms for a in attempts if a.source is AttemptSource.PROVIDER)
    total_ms = (ended_mono - ctx.started_mono) * 1000
    spec = ctx.spec
    request_body: Any = spec.body if spec is not None else _json_or_text(ctx.request.body)
    response_body = _json_or_text(ctx.response_body)
    model = (response_body.get("model") if isinstance(response_body, Mapping) else None) or (
        request_body.get("model") if isinstance(request_body, Mapping) else None)
    last = attempts[-1] if attempts else None
    error = ctx.error
    organisation = "default"  # one organisation until the control plane names them
    document = {
        "schema_version": SCHEMA_VERSION,
        "id": log_id,
        "trace_id": ctx.trace_id,
        "service": service,
        "organisation": organisation,
        "caller": ctx.principal.key_id if ctx.principal is not None else None,
        "created_at": started.isoformat(),
        "latency_ms": {"total": round(total_ms, 3), "upstream": round(upstream_ms, 3),
                       "gateway": round(max(total_ms - upstream_ms, 0.0), 3)},
        "method": ctx.request.method,
        "route": ctx.request.path,
        "endpoint": spec.kind.value if spec is not None else None,
        "stream": bool(spec and spec.stream),
        "provider": last.provider if last is not None else None,
        "model": model,
        "status": ctx.status,
        "completion": ctx.completion.value if ctx.completion is not None else None,
        "last_used_option_index": ctx.last_used_path,
        "retry_count": ctx.retries,
        "attempts": [{"path": a.path, "provider": a.provider, "source": a.source.value, "status": a.status,
                      "started_ms": round(a.started_ms, 3), "duration_ms": round(a.duration_ms, 3),
                      "retry_index": a.retry_index, "retried": a.retried, "error_code": a.error_code}
                     for a in attempts],
        "cache_status": ctx.cache_status,
        "sticky": [{"path": path, "decision": decision} for path, decision in ctx.sticky],
        "usage": ctx.usage,
        "metadata": dict(ctx.metadata),
        "request": {"headers": _logged_headers(ctx.request.headers), "body": request_body},
        "response": {"body": response_body,
                     "error": {"message": error.message, "type": error.type, "code": error.code}
                     if error is not None else None},
        "hook_results": ctx.hook_results,
    }
    raw = orjson.dumps(document, default=str)
    scrubber = scrubber_for(_secrets(ctx))
    if scrubber.active:
        raw = scrubber.bytes(raw)
    return LogRecord(log_id, organisation, started.strftime("%Y/%m/%d"), raw)
