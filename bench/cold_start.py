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

``--baseline-ref REF``: the commit REF is exported to a temporary directory (``bench._trees``),
built with the same ``sam build`` recipe (its own template.yaml; the build is kept in
``--baseline-build-dir`` and reused while that commit's sources are the same) and deployed the
same way; each of its functions is measured right after (or, every other run, right before) the
same function of ours, with the same runtime client and Runtime API, and with the environment of
its own template. Reported: init and first-response medians of both, and ours/base ratios.
``--ours-tree DIR`` / ``--ours-ref REF`` measure another tree as "ours" (two commits, or a clean
export while the working tree is mid-edit).
"""

from __future__ import annotations

import argparse
import functools
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import _trees
from bench._trees import Tree
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
    template_environment,
    tool_env,
)

TARGET_MS = 300.0
RESULTS = REPO / "bench" / "results" / "cold_start.json"
DEFAULT_BUILD_DIR = REPO / ".aws-sam" / "bench-build"
DEFAULT_BASE_BUILD_DIR = REPO / ".aws-sam" / "bench-build-base"
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


def source_fingerprint(repo: Path = REPO) -> str:
    h = hashlib.sha256()
    for root in ("template.yaml", "shared", "functions"):
        paths = [repo / root] if (repo / root).is_file() else sorted((repo / root).rglob("*"))
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p):
                h.update(str(p.relative_to(repo)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def sam_build_tree(root: Path, build_dir: Path, timeout: float = 900) -> Path:
    """``runtime_api.sam_build`` for any tree: the same command on ``root``'s template.yaml.

    (``sam_build`` is hard-wired to the working tree's template; the working tree still uses it.)
    """
    if root.resolve() == REPO:
        return sam_build(build_dir)
    cmd = [sys.executable, "-m", "samcli", "build", "--template-file", str(root / "template.yaml"),
           "--build-dir", str(build_dir), "--parallel", "--no-cached"]
    proc = subprocess.run(cmd, cwd=root, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"sam build of {root} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                           f"{proc.stderr[-4000:]}")
    return build_dir


def ensure_build(build_dir: Path, rebuild: bool, tree: Tree | None = None) -> Path:
    root = tree.root if tree else REPO
    label = f" ({tree.label})" if tree else ""
    stamp = build_dir / ".aigw-source-fingerprint"
    fingerprint = source_fingerprint(root)
    if not rebuild and stamp.is_file() and stamp.read_text() == fingerprint:
        print(f"reusing {build_dir}{label} (sources unchanged)", flush=True)
        return build_dir
    shutil.rmtree(build_dir, ignore_errors=True)
    t0 = time.perf_counter()
    print(f"sam build{label} -> {build_dir} ...", flush=True)
    sam_build_tree(root, build_dir)
    stamp.write_text(fingerprint)
    print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    return build_dir


@functools.cache
def _template_env(template: Path) -> dict[str, str]:
    return template_environment(template)


def tree_lambda_environment(tree: Tree | None, task: Path, opt: Path, runtime: Path,
                            extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``lambda_environment`` with the Globals environment of ``tree``'s template.yaml instead of
    the working tree's (unchanged for the working tree)."""
    env = lambda_environment(task, opt, runtime, extra)
    if tree is None or tree.is_working_tree:
        return env
    repo_tpl, tree_tpl = _template_env(REPO / "template.yaml"), _template_env(tree.template)
    for name in repo_tpl.keys() - tree_tpl.keys():
        env.pop(name, None)
    env.update(tree_tpl)
    env.update(extra or {})
    return env


class TreeLambdaProcess(LambdaProcess):
    """``LambdaProcess`` for a build of ``tree``: the same process, with that tree's template environment."""

    def __init__(self, tree: Tree | None, task: Path, opt: Path, runtime: Path,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(task, opt, runtime, env=env)
        self.tree = tree

    def environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        if self.tree is None or self.tree.is_working_tree:
            return super().environment(extra)
        return tree_lambda_environment(self.tree, self.task, self.opt, self.runtime, extra)


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


def measure_once(task: Path, opt: Path, runtime: Path, event: dict[str, Any],
                 tree: Tree | None = None, extra_env: Mapping[str, str] | None = None) -> tuple[float, float]:
    env = {"TRUSTED_CUSTOM_HOSTS": "127.0.0.1", **(extra_env or {})}
    with TreeLambdaProcess(tree, task, opt, runtime, env=env) as fn:
        init = fn.wait_ready(60)
        inv = fn.invoke(event, 60)
        if inv.outcome != "response" or parse_result(inv.json()).status != 200:
            raise RuntimeError(f"{task.name}: bad answer {inv.outcome} {inv.body[:300]!r}")
        assert inv.done_at is not None
        return init * 1000, (inv.done_at - fn.started_at) * 1000


def import_profile(task: Path, opt: Path, runtime: Path, top: int = 12, tree: Tree | None = None) -> dict[str, Any]:
    env = tree_lambda_environment(tree, task, opt, runtime)
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


def _row(name: str, mode: str, init: dict[str, float], first: dict[str, float]) -> str:
    ok = "ok" if init["median_ms"] < TARGET_MS else "OVER"
    return (f"{name:26} {mode:7} {init['min_ms']:6.0f} {init['median_ms']:6.0f} {init['max_ms']:6.0f}"
            f"        {first['min_ms']:6.0f} {first['median_ms']:6.0f} {first['max_ms']:6.0f}      {ok}")


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    ap.add_argument("--baseline-build-dir", type=Path, default=DEFAULT_BASE_BUILD_DIR,
                    help="where the --baseline-ref build is kept (reused while its sources are the same)")
    ap.add_argument("--rebuild", action="store_true", help="build even if the sources are unchanged")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", type=_env_pair,
                    help="a setting for ours only (repeatable): with --baseline-ref HEAD, what a setting costs, "
                         "e.g. --env CACHE_STORE=redis --env REDIS_URL=redis://127.0.0.1:6399")
    _trees.add_arguments(ap)
    args = ap.parse_args(argv)

    with _trees.open_trees(args) as (ours, base):
        trees = {"ours": ours} | ({"base": base} if base else {})
        builds = {"ours": ensure_build(args.build_dir.resolve(), args.rebuild, ours)}
        if base:
            builds["base"] = ensure_build(args.baseline_build_dir.resolve(), args.rebuild, base)
        work = Path(tempfile.mkdtemp(prefix="aigw-cold-"))
        try:
            runtime = runtime_client_dir(work / "var-runtime")
            layouts: dict[str, dict[str, Path]] = {side: {} for side in trees}
            for side, build_dir in builds.items():
                for mode in ("pyc", "no-pyc"):
                    root = deploy_locally(build_dir, work / side / mode, ROUTE_FUNCTIONS)
                    baseline = root / "task" / BASELINE
                    baseline.mkdir(parents=True)
                    (baseline / "app.py").write_text(
                        "def handler(event, context):\n"
                        "    return {'statusCode': 200, 'headers': {}, 'body': '{}', 'isBase64Encoded': False}\n")
                    if mode == "no-pyc":
                        strip_pyc(root)
                    layouts[side][mode] = root
            functions = (BASELINE, *ROUTE_FUNCTIONS)
            modes = tuple(layouts["ours"])
            samples: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {
                side: {m: {f: {"init": [], "first_response": []} for f in functions} for m in modes}
                for side in trees}
            sides = list(trees)
            side_env = {side: dict(args.env) if side == "ours" else {} for side in sides}
            with FakeProvider() as fake:
                for side in sides:  # warm the page cache once, unmeasured
                    for root in layouts[side].values():
                        for name in functions:
                            measure_once(root / "task" / name, root / "opt", runtime, event_for(name, fake),
                                         trees[side], side_env[side])
                for run in range(args.runs):
                    order = sides if run % 2 == 0 else sides[::-1]  # ours first, then base first, ...
                    for mode in modes:
                        for name in functions:
                            for side in order:
                                root = layouts[side][mode]
                                init, first = measure_once(root / "task" / name, root / "opt", runtime,
                                                           event_for(name, fake), trees[side], side_env[side])
                                samples[side][mode][name]["init"].append(init)
                                samples[side][mode][name]["first_response"].append(first)
                    print(f"run {run + 1}/{args.runs} done", flush=True)
            profiles = {name: import_profile(layouts["ours"]["pyc"] / "task" / name, layouts["ours"]["pyc"] / "opt",
                                             runtime, tree=ours)
                        for name in ROUTE_FUNCTIONS}
            base_imports = {name: import_profile(layouts["base"]["pyc"] / "task" / name,
                                                 layouts["base"]["pyc"] / "opt", runtime, tree=base)["import_app_ms"]
                            for name in ROUTE_FUNCTIONS} if base else {}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        tree_meta = {side: tree.describe() for side, tree in trees.items()}

    results: dict[str, Any] = {
        "target_init_ms": TARGET_MS,
        "runs": args.runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "trees": tree_meta,
        "functions": {},
        "import_profiles": profiles,
    }
    per_side: dict[str, dict[str, Any]] = {side: {} for side in trees}
    for side in trees:
        for name in functions:
            per_side[side][name] = {}
            for mode in modes:
                per_side[side][name][mode] = {"init": summary(samples[side][mode][name]["init"]),
                                              "first_response": summary(samples[side][mode][name]["first_response"]),
                                              "samples": samples[side][mode][name]}
    results["functions"] = per_side["ours"]
    head = f"{'function':26} {'mode':7} {'init min/med/max':>22} {'first response min/med/max':>28}  target"
    print(f"\ncold start, ms (spawn -> first GET /next = init; -> first answer), {args.runs} runs; "
          f"target init < {TARGET_MS:.0f}" + (f"; {ours.label}" if base or not ours.is_working_tree else ""))
    print(head)
    for name in functions:
        for mode in modes:
            cell = per_side["ours"][name][mode]
            print(_row(name, mode, cell["init"], cell["first_response"]))
    if base:
        print(f"\n{base.label} ({base.sha}), interleaved with ours in the same runs:")
        print(head)
        for name in functions:
            for mode in modes:
                cell = per_side["base"][name][mode]
                print(_row(name, mode, cell["init"], cell["first_response"]))
        ratios: dict[str, dict[str, dict[str, float | None]]] = {}
        print(f"\n{ours.label} vs {base.label}: medians, ms, and ours/base (< 1 = ours faster; the '{BASELINE}' "
              "row imports nothing: its ratio shows the run's noise)")
        print(f"{'function':26} {'mode':7} {'init ours':>10} {'base':>6} {'ratio':>6}   "
              f"{'first resp ours':>15} {'base':>6} {'ratio':>6}")
        for name in functions:
            ratios[name] = {}
            for mode in modes:
                o, b = per_side["ours"][name][mode], per_side["base"][name][mode]
                ri = _ratio(o["init"]["median_ms"], b["init"]["median_ms"])
                rf = _ratio(o["first_response"]["median_ms"], b["first_response"]["median_ms"])
                ratios[name][mode] = {"init_median": ri, "first_response_median": rf}
                print(f"{name:26} {mode:7} {o['init']['median_ms']:10.0f} {b['init']['median_ms']:6.0f} "
                      f"{ri if ri is not None else float('nan'):6.2f}   {o['first_response']['median_ms']:15.0f} "
                      f"{b['first_response']['median_ms']:6.0f} {rf if rf is not None else float('nan'):6.2f}")
        results["baseline"] = {"ref": base.ref, "sha": base.sha, "label": base.label,
                               "build_dir": str(builds["base"]), "functions": per_side["base"],
                               "ratios": ratios, "import_app_ms": base_imports}
    print("\nimport app (pyc, -X importtime), heaviest by cumulative time:")
    for name, prof in profiles.items():
        tops = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in prof["top_cumulative"][:6])
        print(f"  {name}: {_ms(prof['import_app_ms'])} ms total; {tops}")
    if base:
        print(f"  {base.label}: " + ", ".join(f"{name} {_ms(ms)}" for name, ms in base_imports.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return results


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


if __name__ == "__main__":
    main()
