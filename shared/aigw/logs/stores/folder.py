"""The folder log store: one JSON file per record under ``<root>/<organisation>/<yyyy>/<mm>/<dd>/``
(``make run``'s default, ``LOG_FOLDER``). Written to a temporary name and renamed, so a reader
never sees half a record; a record already there is not written again."""

from __future__ import annotations

import os
from pathlib import Path

from aigw.logs.record import LogRecord


class FolderStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, record: LogRecord) -> Path:
        return self.root / _safe(record.organisation) / record.day / f"{record.log_id}.json"

    def put(self, record: LogRecord) -> bool:
        path = self._path(record)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(record.document)
        os.replace(temporary, path)
        return True

    def get(self, log_id: str) -> bytes | None:
        if not log_id.isalnum():
            return None  # ids are hex: nothing else may become part of a path
        for path in self.root.glob(f"*/*/*/*/{log_id}.json"):
            return path.read_bytes()
        return None


def _safe(part: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in part) or "_"
