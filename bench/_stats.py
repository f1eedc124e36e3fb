"""Small statistics helpers for the benchmarks (no numpy: the bench runs in the project venv)."""

from __future__ import annotations

import os
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already-sorted values, linear interpolation (numpy's default)."""
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99, min, max of latencies in milliseconds."""
    s = sorted(values_ms)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "mean_ms": sum(s) / len(s),
        "p50_ms": percentile(s, 50),
        "p90_ms": percentile(s, 90),
        "p99_ms": percentile(s, 99),
        "min_ms": s[0],
        "max_ms": s[-1],
    }


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of a process (all its threads) from /proc; None if unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK
