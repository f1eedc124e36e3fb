"""Choosing among a strategy's targets: weighted random and conditional. Pure functions."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from aigw.config.model import Strategy, Target, config_param
from aigw.errors import NoMatchingTarget


def weighted_pick(targets: Sequence[Target], rng: random.Random) -> Target:
    """Pick a target with probability proportional to its weight (all zero: uniform)."""
    total = sum(t.weight for t in targets)
    if total <= 0:
        return targets[int(rng.random() * len(targets)) % len(targets)]
    point = rng.random() * total
    for target in targets:
        point -= target.weight
        if point < 0 and target.weight > 0:
            return target
    return next(t for t in reversed(targets) if t.weight > 0)


def conditional_pick(strategy: Strategy, targets: Sequence[Target], context: Mapping[str, Any], path: str) -> Target:
    """The first condition whose query holds names the target; else ``default``; else 400."""
    by_name = {t.name: t for t in targets if t.name}
    for condition in strategy.conditions:
        if condition.query(context):
            return by_name[condition.then]
    if strategy.default is not None:
        return by_name[strategy.default]
    raise NoMatchingTarget(
        "no condition of the conditional config matched the request and no default target is set",
        param=config_param(path, "strategy"),
    )
