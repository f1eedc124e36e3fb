"""Provider registry: one line per provider, naming the module that defines it.

Modules are imported on first use, so a route function pays only for the providers it
actually calls (and ``health``/``models`` import none).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from aigw.errors import UnknownProvider

if TYPE_CHECKING:
    from aigw.providers.base import Provider

_MODULES: dict[str, str] = {
    "openai": "aigw.providers.openai",
    "azure-openai": "aigw.providers.azure_openai",
    "anthropic": "aigw.providers.anthropic",
}


def is_known_provider(name: str) -> bool:
    return name in _MODULES


@cache
def get_provider(name: str) -> Provider:
    module = _MODULES.get(name)
    if module is None:
        raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(_MODULES)}", param="x-portkey-provider")
    provider: Provider = import_module(module).PROVIDER
    return provider
