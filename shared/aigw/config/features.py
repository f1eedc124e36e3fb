"""Config features this deployment runs. A config asking for one that is not here is refused.

A guardrail that is parsed and silently not run is a security hole, and a cache or sticky
setting that does nothing misleads; so until the issue that builds each lands, a config that
turns one on gets a 400 naming the field. Each later issue adds its feature to ``ENABLED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aigw.errors import FeatureNotEnabled

STICKY = "sticky"
CACHE = "cache"
SEMANTIC_CACHE = "semantic_cache"
HOOKS = "hooks"

ENABLED: frozenset[str] = frozenset({STICKY, CACHE, SEMANTIC_CACHE})

HOOK_KEYS = ("before_request_hooks", "after_request_hooks", "input_guardrails", "output_guardrails")


def refuse_if_disabled(feature: str, param: str, what: str) -> None:
    if feature not in ENABLED:
        raise FeatureNotEnabled(f"{what} is not enabled on this gateway", param=param)


def check_hooks(node: Mapping[str, Any], param_of: Any) -> None:
    """Non-empty hook or guardrail lists need the hooks feature."""
    for key in HOOK_KEYS:
        value = node.get(key)
        if value:
            refuse_if_disabled(HOOKS, param_of(key), f"{key} (hooks and guardrails)")
