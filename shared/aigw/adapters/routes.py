"""The full route table, for shells that serve every route from one process."""

from __future__ import annotations

from aigw.adapters.asgi import Endpoint
from aigw.endpoints import chat_completions, completions, embeddings, models
from aigw.health import health

ROUTES: dict[str, dict[str, Endpoint]] = {
    "/": {"GET": health},
    "/v1/health": {"GET": health},
    "/v1/chat/completions": {"POST": chat_completions},
    "/v1/completions": {"POST": completions},
    "/v1/embeddings": {"POST": embeddings},
    "/v1/models": {"GET": models},
}
