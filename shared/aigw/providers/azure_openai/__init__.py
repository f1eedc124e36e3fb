"""Azure OpenAI: OpenAI's bodies on per-deployment URLs with an ``api-key`` header."""

from aigw.providers.azure_openai.api import PROVIDER

__all__ = ["PROVIDER"]
