"""The gateway's one exception tree, and how each ingress format renders it.

Every error a client can see is a ``GatewayError``. It becomes a wire body only at the
edge, through the renderer of the request's ingress format (``render_error``): OpenAI's
``{"error": {"message", "type", "param", "code"}}`` for the OpenAI-compatible routes,
Anthropic's ``{"type": "error", "error": {"type", "message"}}`` for ``/v1/messages``.

    GatewayError (500, api_error)
    ├── InvalidRequest (400, invalid_request_error)
    │   ├── InvalidJSON
    │   ├── InvalidEvent             a Lambda event the shell cannot read
    │   ├── MissingParam             a parameter the provider requires (Anthropic's model)
    │   ├── InvalidConfig            config header/body fails validation; names the field path
    │   ├── InvalidHeader
    │   ├── UnknownProvider
    │   ├── MissingProviderKey
    │   ├── UnsupportedEndpoint      the provider has no such endpoint
    │   ├── UnsafeCustomHost         custom_host refused by the SSRF guard
    │   ├── NoMatchingTarget         conditional config with no match and no default
    │   ├── FeatureNotEnabled        a config asks for something this deployment does not run
    │   └── VirtualKeyUnavailable    a virtual key that cannot be resolved (a failed target)
    ├── AuthenticationRequired (401, authentication_error)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)
    ├── RequestBodyTimeout (408)
    ├── PayloadTooLarge (413)
    ├── HeadersTooLarge (431)
    ├── ResponseTooLarge (502)      an answer over the shell's size limit (Lambda's 6 MB)
    └── UpstreamError               a provider call failed; carries the provider's name
        ├── ProviderError            the provider answered an error (its status, its fields)
        ├── UpstreamTimeout (408, timeout_error)    the target's request_timeout
        │   ├── GatewayDeadline (504)             the gateway's own limit, or the Lambda deadline
        │   └── StreamStalled                     no chunk within the idle timeout (an SSE event)
        ├── UpstreamConnectionFailed (502)
        │   └── StreamInterrupted                 the stream broke after its first byte (an SSE event)
        └── InvalidProviderResponse (502)   a 2xx the gateway cannot read as the expected shape
"""

from __future__ import annotations

from enum import StrEnum

import orjson


class GatewayError(Exception):
    status: int = 500
    type: str | None = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class InvalidEvent(InvalidRequest):
    code = "invalid_event"


class MissingParam(InvalidRequest):
    code = "missing_required_parameter"


class InvalidConfig(InvalidRequest):
    code = "invalid_config"


class InvalidHeader(InvalidRequest):
    code = "invalid_header"


class UnknownProvider(InvalidRequest):
    code = "unknown_provider"


class MissingProviderKey(InvalidRequest):
    code = "missing_api_key"


class UnsupportedEndpoint(InvalidRequest):
    code = "unsupported_endpoint"


class UnsafeCustomHost(InvalidRequest):
    code = "unsafe_custom_host"


class NoMatchingTarget(InvalidRequest):
    code = "no_matching_target"


class FeatureNotEnabled(InvalidRequest):
    code = "feature_not_enabled"


class VirtualKeyUnavailable(InvalidRequest):
    code = "virtual_key_unavailable"


class AuthenticationRequired(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestBodyTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_body_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class HeadersTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class UpstreamError(GatewayError):
    """A call to a provider failed. ``provider`` is named in the rendered body."""

    status = 502

    def __init__(self, message: str, *, provider: str, status: int | None = None, type: str | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.provider = provider
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type


class ProviderError(UpstreamError):
    """The provider's own error answer, reduced to OpenAI's fields, with the provider's status."""

    def __init__(self, message: str, *, provider: str, status: int, type: str | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, provider=provider, status=status, param=param, code=code)
        self.type = type  # the provider's type, null when it gave none (as the reference reports)


class UpstreamTimeout(UpstreamError):
    status = 408
    type = "timeout_error"
    code = "request_timeout"


class GatewayDeadline(UpstreamTimeout):
    status = 504
    type = "api_error"
    code = "gateway_timeout"


class StreamStalled(UpstreamTimeout):
    code = "stream_idle_timeout"


class UpstreamConnectionFailed(UpstreamError):
    code = "upstream_connection_failed"


class StreamInterrupted(UpstreamConnectionFailed):
    code = "stream_interrupted"


class InvalidProviderResponse(UpstreamError):
    code = "upstream_invalid_body"


class ResponseTooLarge(GatewayError):
    status = 502
    code = "response_too_large"


# --------------------------------------------------------------------------- renderers


class ErrorFormat(StrEnum):
    """How a route's clients expect errors: chosen by the ingress format of the route."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


def _openai_body(exc: GatewayError) -> dict[str, object]:
    body: dict[str, object] = {
        "error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    }
    if isinstance(exc, UpstreamError):
        body["provider"] = exc.provider
    return body


# Anthropic's error types by status (its documented set); anything else is api_error.
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    529: "overloaded_error"}


def _anthropic_body(exc: GatewayError) -> dict[str, object]:
    kind = _ANTHROPIC_TYPES.get(exc.status, "invalid_request_error" if 400 <= exc.status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


_RENDERERS = {ErrorFormat.OPENAI: _openai_body, ErrorFormat.ANTHROPIC: _anthropic_body}


def error_body(exc: GatewayError, fmt: ErrorFormat = ErrorFormat.OPENAI) -> dict[str, object]:
    return _RENDERERS[fmt](exc)


def render_error(exc: GatewayError, fmt: ErrorFormat = ErrorFormat.OPENAI) -> bytes:
    """The JSON body of ``exc`` in ``fmt`` (not yet scrubbed: the caller scrubs what leaves).
    Never raises: a message quoting input that is not valid Unicode is rendered with it replaced."""
    body = _RENDERERS[fmt](exc)
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson refuses lone surrogates
        return orjson.dumps(_printable(body))


def _printable(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    return value


def render_stream_error(exc: GatewayError, fmt: ErrorFormat = ErrorFormat.OPENAI) -> bytes:
    """The SSE event that ends a stream which failed after its first byte (never a silent end)."""
    data = render_error(exc, fmt)
    if fmt is ErrorFormat.ANTHROPIC:
        return b"event: error\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
