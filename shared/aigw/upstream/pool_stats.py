"""What a transport's ``pool_stats()`` reports. A module of its own so that building the
dataclass (~1 ms) is paid by the first health check, not by every cold start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolStats:
    in_use: int  # connections carrying a request now
    limit: int  # at most this many in use at once (UPSTREAM_POOL_SIZE)
    busiest_host_in_use: int  # in use to the host with the most
    per_host_limit: int  # at most this many in use to one host
    waiting: int  # requests waiting for a connection to become free
