"""Lambda handler for the chat_completions route: a thin shell over the shared core."""

from aigw.adapters.aws import http_handler
from aigw.routes import CHAT_COMPLETIONS

handler = http_handler(CHAT_COMPLETIONS)
