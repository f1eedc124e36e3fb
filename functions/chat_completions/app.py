"""Lambda handler for the chat_completions route: a thin shell over the shared core."""

from aigw.adapters.aws import http_handler
from aigw.endpoints import chat_completions

handler = http_handler(chat_completions)
