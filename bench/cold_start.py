"""Cold starts of the route functions, as `sam build` makes them and Lambda's python3.12 runs them.

Run: ``python -m bench.cold_start [--runs 7] [--build-dir DIR] [--rebuild]`` (from the repo root,
with the project venv: python3.12, aws-sam-cli, awslambdaric). Nothing is asserted; results are
printed and written to bench/results/cold_start.json.

What is measured, per function (tests/support/runtime_api.py does the work):
  * the artefacts: ``sam build`` output (reused from --build-dir while template.yaml, shared/ and
    functions/ are unchanged), zipped as `sam deploy` zips them and extracted as Lambda does;
  * each run is a fresh process, ``python -S -m awslambdaric app.handler`` with Lambda's sys.path
    and environment, against a local Runtime API;
  * init = process spawn -> its first ``GET /next`` (what Lambda reports as Init Duration: the
    runtime client starting, then the handler module's imports);
  * first response = spawn -> the answer to the first invocation (health for HealthFunction, the
    route's request against the fake provider on loopback for the others);
  * modes: ``pyc`` (the build as shipped: .pyc compiled at build time, unchecked-hash) and
    ``no-pyc`` (every __pycache__ removed: what shipping sources only costs, as /opt and /var/task
    are read-only and nothing compiled is kept);
  * ``baseline``: a handler importing nothing - the floor (interpreter + runtime client);
  * import profile: ``-X importtime`` of each handler module, top entries by cumulative time.
Runs are interleaved (run -> mode -> function) so machine drift hits every cell alike.
Target: init < 300 ms per function.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.provider_server import FakeProvider
from tests.support.lambda_events import http_api_event, parse_result
from tests.support.runtime_api import (
    REPO,
    ROUTE_FUNCTIONS,
    LambdaProcess,
    deploy_locally,
    lambda_environment,
    runtime_client_dir,
    sam_build,
)

TARGET_MS = 300.0
RESULTS = REPO / "bench" / "results" / "cold_start.json"
DEFAULT_BUILD_DIR = REPO / ".aws-sam" / "bench-build"
BASELINE = "baseline"
KEY = "sk-bench-0123456789abcdef"
REQUESTS: dict[str, tuple[str, str, Any]] = {
    "ChatCompletionsFunction": ("POST", "/v1/chat/completions",
                                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    "CompletionsFunction": ("POST", "/v1/completions", {"model": "m", "prompt": "hi"}),
    "EmbeddingsFunction": ("POST", "/v1/embeddings", {"model": "m", "input": ["a"]}),
    "ModelsFunction": ("GET", "/v1/models", None),
    "HealthFunction": ("GET", "/v1/health", None),
    # The $default-route function routes by itself; a known path gives a 200 to time.
    "NotFoundFunction": ("GET", "/v1/health", None),
    BASELINE: ("GET", "/v1/health", None),
}


def source_fingerprint() -> str:
    h = hashlib.sha256()
    for root in ("template.yaml", "shared", "functions"):
        paths = [REPO / root] if (REPO / root).is_file() else sorted((REPO / root).rglob("*"))
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p):
                h.update(str(p.relative_to(REPO)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def ensure_build(build_dir: Path, rebuild: bool) -> Path:
    stamp = build_dir / ".aigw-source-fingerprint"
    fingerprint = source_fingerprint()
    if not rebuild and stamp.is_file() and stamp.read_text() == fingerprint:
        print(f"reusing {build_dir} (sources unchanged)", flush=True)
        return build_dir
    shutil.rmtree(build_dir, ignore_errors=True)
    t0 = time.perf_counter()
    print(f"sam build -> {build_dir} ...", flush=True)
    sam_build(build_dir)
    stamp.write_text(fingerprint)
    print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    return build_dir


def strip_pyc(root: Path) -> None:
    for cache in list(root.rglob("__pycache__")):
        shutil.rmtree(cache)


def event_for(name: str, fake: FakeProvider) -> dict[str, Any]:
    method, path, body = REQUESTS[name]
    changes: dict[str, Any] = {}
    if name not in ("HealthFunction", "NotFoundFunction", BASELINE):
        changes["headers"] = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url + "/v1",
                              "authorization": f"Bearer {KEY}"}
    if body is not None:
        changes["body"] = body
    return http_api_event(method, path, **changes)


def measure_once(task: Path, opt: Path, runtime: Path, event: dict[str, Any]) -> tuple[float, float]:
    with LambdaProcess(task, opt, runtime, env={"TRUSTED_CUSTOM_HOSTS": "127.0.0.1"}) as fn:
        init = fn.wait_ready(60)
        inv = fn.invoke(event, 60)
        if inv.outcome != "response" or parse_result(inv.json()).status != 200:
            raise RuntimeError(f"{task.name}: bad answer {inv.outcome} {inv.body[:300]!r}")
        assert inv.done_at is not None
        return init * 1000, (inv.done_at - fn.started_at) * 1000


def import_profile(task: Path, opt: Path, runtime: Path, top: int = 12) -> dict[str, Any]:
    env = lambda_environment(task, opt, runtime)
    proc = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", "import app"], cwd=task, env=env,
                          capture_output=True, text=True, timeout=60)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
        rows.append({"module": name.strip(), "self_ms": int(self_us) / 1000, "cumulative_ms": int(cumulative_us) / 1000,
                     "depth": (len(name) - len(name.lstrip())) // 2})
    total = next((r["cumulative_ms"] for r in rows if r["module"] == "app"), None)
    by_cumulative = sorted((r for r in rows if r["module"] != "app"), key=lambda r: -r["cumulative_ms"])[:top]
    by_self = sorted(rows, key=lambda r: -r["self_ms"])[:top]
    return {"import_app_ms": total, "top_cumulative": by_cumulative, "top_self": by_self}


def summary(values: list[float]) -> dict[str, float]:
    return {"min_ms": round(min(values), 1), "median_ms": round(statistics.median(values), 1),
            "max_ms": round(max(values), 1), "n": len(values)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    ap.add_argument("--rebuild", action="store_true", help="build even if the sources are unchanged")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    build_dir = ensure_build(args.build_dir.resolve(), args.rebuild)
    work = Path(tempfile.mkdtemp(prefix="aigw-cold-"))
    try:
        runtime = runtime_client_dir(work / "var-runtime")
        layouts = {}
        for mode in ("pyc", "no-pyc"):
            root = deploy_locally(build_dir, work / mode, ROUTE_FUNCTIONS)
            baseline = root / "task" / BASELINE
            baseline.mkdir(parents=True)
            (baseline / "app.py").write_text(
                "def handler(event, context):\n"
                "    return {'statusCode': 200, 'headers': {}, 'body': '{}', 'isBase64Encoded': False}\n")
            if mode == "no-pyc":
                strip_pyc(root)
            layouts[mode] = root
        functions = (BASELINE, *ROUTE_FUNCTIONS)
        samples: dict[str, dict[str, dict[str, list[float]]]] = {
            m: {f: {"init": [], "first_response": []} for f in functions} for m in layouts}
        with FakeProvider() as fake:
            for root in layouts.values():  # warm the page cache once, unmeasured
                for name in functions:
                    measure_once(root / "task" / name, root / "opt", runtime, event_for(name, fake))
            for run in range(args.runs):
                for mode, root in layouts.items():
                    for name in functions:
                        init, first = measure_once(root / "task" / name, root / "opt", runtime, event_for(name, fake))
                        samples[mode][name]["init"].append(init)
                        samples[mode][name]["first_response"].append(first)
                print(f"run {run + 1}/{args.runs} done", flush=True)
        profiles = {name: import_profile(layouts["pyc"] / "task" / name, layouts["pyc"] / "opt", runtime)
                    for name in ROUTE_FUNCTIONS}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results: dict[str, Any] = {
        "target_init_ms": TARGET_MS,
        "runs": args.runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "functions": {},
        "import_profiles": profiles,
    }
    print(f"\ncold start, ms (spawn -> first GET /next = init; -> first answer), {args.runs} runs; "
          f"target init < {TARGET_MS:.0f}")
    print(f"{'function':26} {'mode':7} {'init min/med/max':>22} {'first response min/med/max':>28}  target")
    for name in functions:
        results["functions"][name] = {}
        for mode in layouts:
            init = summary(samples[mode][name]["init"])
            first = summary(samples[mode][name]["first_response"])
            results["functions"][name][mode] = {"init": init, "first_response": first,
                                                "samples": samples[mode][name]}
            ok = "ok" if init["median_ms"] < TARGET_MS else "OVER"
            print(f"{name:26} {mode:7} {init['min_ms']:6.0f} {init['median_ms']:6.0f} {init['max_ms']:6.0f}"
                  f"        {first['min_ms']:6.0f} {first['median_ms']:6.0f} {first['max_ms']:6.0f}      {ok}")
    print("\nimport app (pyc, -X importtime), heaviest by cumulative time:")
    for name, prof in profiles.items():
        tops = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in prof["top_cumulative"][:6])
        print(f"  {name}: {prof['import_app_ms']:.0f} ms total; {tops}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return results


if __name__ == "__main__":
    main()
