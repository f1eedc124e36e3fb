"""What a request asks a provider to do: one kind per provider-facing operation.

Routes map to a kind (``/v1/chat/completions`` -> ``CHAT``); providers declare an endpoint
per kind they support. New ingress routes (``/v1/messages``, ``/v1/responses``, images,
audio) add kinds here.
"""

from __future__ import annotations

from enum import StrEnum


class EndpointKind(StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MODELS = "models"

    @property
    def streams(self) -> bool:
        """Whether ``"stream": true`` in the body asks for Server-Sent Events."""
        return self in (EndpointKind.CHAT, EndpointKind.COMPLETIONS)

    @property
    def label(self) -> str:
        """How errors name it ("does not support the embeddings endpoint")."""
        return self.value
