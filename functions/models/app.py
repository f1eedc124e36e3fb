"""Lambda handler for the models route: a thin shell over the shared core."""

from aigw.adapters.aws import http_handler
from aigw.routes import MODELS

handler = http_handler(MODELS)
