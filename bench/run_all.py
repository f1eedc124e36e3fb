"""Run every benchmark: ``python -m bench.run_all`` (what ``make bench`` runs).

Each bench runs in its own process (so one's imports, event loops and servers cannot skew
another's numbers), one after the other: the latency bench, the cold-start bench, then the
cache-store bench (``bench/state.py``: sticky lookups and cache hits). Results land in
bench/results/*.json. Extra arguments after ``--latency`` / ``--cold-start`` / ``--state`` are
passed to that bench, e.g.
``python -m bench.run_all --latency --quick --cold-start --runs 3``. Nothing is asserted: the
exit code is non-zero only if a bench crashed.

``--baseline-ref REF`` (and ``--ours-tree DIR`` / ``--ours-ref REF``), anywhere on the command
line, go to the latency and cold-start benches: each also measures the commit REF beside ours, in the same rounds
(bench/README.md, "Comparing against a commit"). REF is resolved to a commit once, here, so
both benches measure the same commit even if the branch moves meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHES = ("latency", "cold_start", "state")
COMPARING = ("latency", "cold_start")  # the benches that take GLOBAL_OPTIONS
GLOBAL_OPTIONS = ("--baseline-ref", "--ours-tree", "--ours-ref")  # each takes a value; passed to every bench


def _resolve(option: str, value: str) -> str:
    if option == "--ours-tree":
        return str(Path(value).resolve())
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{value}^{{commit}}"], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{option} {value}: not a commit")
    return proc.stdout.strip()


def _split_args(argv: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name in BENCHES}
    shared: list[str] = []
    current: str | None = None
    args = iter(argv)
    for arg in args:
        option, eq, value = arg.partition("=")
        if option in GLOBAL_OPTIONS:
            if not eq:
                value = next(args, "")
            if not value:
                raise SystemExit(f"{option} needs a value")
            shared += [option, _resolve(option, value)]
        elif arg in ("--latency", "--cold-start", "--state"):
            current = arg[2:].replace("-", "_")
        elif current is None:
            raise SystemExit("usage: python -m bench.run_all [--latency ARGS...] [--cold-start ARGS...] "
                             f"[--state ARGS...]; got {arg!r}")
        else:
            out[current].append(arg)
    for name in COMPARING:
        out[name] += shared
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
