"""What a log store does, whatever it is: file a record once, and find it again by id."""

from __future__ import annotations

from typing import Protocol

from aigw.logs.record import LogRecord


class LogStore(Protocol):
    def put(self, record: LogRecord) -> bool:
        """Store the record unless one with its id is stored already (a redelivery): whether it
        was written now. Raises on failure (the record is then retried)."""
        ...

    def get(self, log_id: str) -> bytes | None: ...
