"""Where saved configs and virtual keys are resolved: small interfaces, one per entity.

The control-plane issue implements them over HTTP and over a file. Until a control plane is
configured, ``NoControlPlane`` answers for both: a saved config id is a 400, and a virtual
key is a failed target with a clear reason (so a fallback moves on to the next target).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aigw.auth import Principal
from aigw.config.model import Target
from aigw.errors import InvalidConfig, VirtualKeyUnavailable


class ConfigSource(Protocol):
    async def saved_config(self, config_id: str, principal: Principal) -> Mapping[str, Any]:
        """The config object saved under ``config_id`` for the principal's organisation."""
        ...


class VirtualKeySource(Protocol):
    async def resolve(self, target: Target, principal: Principal) -> Target:
        """``target`` with its virtual key replaced by the provider, key and options it stands for."""
        ...


class NoControlPlane:
    async def saved_config(self, config_id: str, principal: Principal) -> Mapping[str, Any]:
        raise InvalidConfig(
            "x-portkey-config names a saved config, but no control plane is configured: "
            "send the config inline as a JSON object",
            param="x-portkey-config",
        )

    async def resolve(self, target: Target, principal: Principal) -> Target:
        raise VirtualKeyUnavailable(
            "virtual keys are resolved by the control plane, which is not configured",
            param=target.param("virtual_key"),
        )
