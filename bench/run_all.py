"""Run every benchmark: ``python -m bench.run_all`` (what ``make bench`` runs).

Each bench runs in its own process (so one's imports, event loops and servers cannot skew
another's numbers), one after the other: the latency bench, then the cold-start bench if
``bench/cold_start.py`` exists. Results land in bench/results/*.json. Extra arguments after
``--latency`` / ``--cold-start`` are passed to that bench, e.g.
``python -m bench.run_all --latency --quick --cold-start --runs 3``. Nothing is asserted: the
exit code is non-zero only if a bench crashed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHES = ("latency", "cold_start")


def _split_args(argv: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name in BENCHES}
    current: str | None = None
    for arg in argv:
        if arg in ("--latency", "--cold-start"):
            current = arg[2:].replace("-", "_")
        elif current is None:
            raise SystemExit(f"usage: python -m bench.run_all [--latency ARGS...] [--cold-start ARGS...]; got {arg!r}")
        else:
            out[current].append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = _split_args(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "shared"), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    failed: list[str] = []
    for name in BENCHES:
        if not (REPO / "bench" / f"{name}.py").exists():
            print(f"== bench.{name}: not present, skipped", flush=True)
            continue
        print(f"== bench.{name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", f"bench.{name}", *args[name]], cwd=REPO, env=env).returncode
        print(f"== bench.{name}: exit {rc} after {time.perf_counter() - t0:.0f}s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"benches that crashed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
