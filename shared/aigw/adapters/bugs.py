"""What a shell does with a bug: log it without request data, and end a stream visibly."""

from __future__ import annotations

import logging

from aigw.errors import ErrorFormat, GatewayError, render_stream_error

log = logging.getLogger("aigw")


def log_bug(where: str, exc: BaseException) -> None:
    """Log an unexpected error by type and code location only: its message may carry request data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
    log.error("unhandled %s in %s at %s", type(exc).__name__, where, place)


def stream_bug_event(fmt: ErrorFormat) -> bytes:
    """The event that ends a stream a bug broke (never a silent end, never the bug's message)."""
    return render_stream_error(GatewayError("internal gateway error while streaming", code="stream_interrupted"), fmt)
