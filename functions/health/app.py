"""Lambda handler for GET /v1/health and GET /: imports no provider and no HTTP client."""

from aigw.adapters.aws import http_handler
from aigw.health import health

handler = http_handler(health, upstream=False)
