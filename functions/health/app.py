"""Lambda handler for GET /v1/health and GET /: imports no provider and no HTTP client."""

from aigw.adapters.aws import http_handler
from aigw.routes import HEALTH

handler = http_handler(HEALTH, upstream=False)
