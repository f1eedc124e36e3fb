"""The gateway's one exception tree.

Every error a client can see is a ``GatewayError``; it becomes the OpenAI error body
(``{"error": {"message", "type", "param", "code"}}``) only at the edge, in
``aigw.response.error_response``.

    GatewayError (500, api_error)
    ├── InvalidRequest (400, invalid_request_error)
    │   ├── InvalidJSON
    │   ├── InvalidConfig            config header/body fails validation; names the field path
    │   ├── InvalidHeader
    │   ├── UnknownProvider
    │   ├── MissingProviderKey
    │   ├── UnsafeCustomHost         custom_host refused by the SSRF guard
    │   └── NoMatchingTarget         conditional config with no match and no default
    ├── AuthenticationRequired (401, authentication_error)
    ├── NotFound (404, invalid_request_error)
    ├── MethodNotAllowed (405, invalid_request_error)
    ├── PayloadTooLarge (413, invalid_request_error)
    ├── HeadersTooLarge (431, invalid_request_error)
    └── UpstreamUnavailable (502, api_error)   connection to the provider failed
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class InvalidConfig(InvalidRequest):
    code = "invalid_config"


class InvalidHeader(InvalidRequest):
    code = "invalid_header"


class UnknownProvider(InvalidRequest):
    code = "unknown_provider"


class MissingProviderKey(InvalidRequest):
    code = "missing_api_key"


class UnsafeCustomHost(InvalidRequest):
    code = "unsafe_custom_host"


class NoMatchingTarget(InvalidRequest):
    code = "no_matching_target"


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


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class HeadersTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class UpstreamUnavailable(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_unavailable"
