"""Anthropic: OpenAI chat requests become Messages API calls, and answers come back OpenAI-shaped."""

from aigw.providers.anthropic.api import PROVIDER

__all__ = ["PROVIDER"]
