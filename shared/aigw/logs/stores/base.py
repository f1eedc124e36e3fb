"""What a log store does, whatever it is: file records once each, and find one again by id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aigw.logs.record import LogRecord


class LogStore(Protocol):
    def put_many(self, records: Sequence[LogRecord]) -> int:
        """Store the records, skipping any whose id is stored already (a redelivery); how many
        were written now. Raises on failure (the batch is then retried)."""
        ...

    def get(self, log_id: str) -> bytes | None: ...
