"""Lambda handler for the completions route: a thin shell over the shared core."""

from aigw.adapters.aws import http_handler
from aigw.routes import COMPLETIONS

handler = http_handler(COMPLETIONS)
