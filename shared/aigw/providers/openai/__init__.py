"""OpenAI: the gateway's own wire format, so every endpoint passes bytes through."""

from aigw.providers.openai.api import PROVIDER

__all__ = ["PROVIDER"]
