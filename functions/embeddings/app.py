"""Lambda handler for the embeddings route: a thin shell over the shared core."""

from aigw.adapters.aws import http_handler
from aigw.routes import EMBEDDINGS

handler = http_handler(EMBEDDINGS)
