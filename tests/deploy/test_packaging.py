"""The artefacts `sam build` makes, run the way Lambda runs them.

Once per module: the real ``sam build`` (no container; this python3.12 and its pip first on
PATH; only PyPI is reached), then each artefact zipped with SAM's own zip function (as `sam
deploy` uploads it: every entry dated 1980-01-01) and extracted as Lambda extracts it - the
layer under one ``opt/``, each function in its own ``task/<Function>/``.

Each route function then runs under the real runtime interface client (``python -S -m
awslambdaric app.handler``) against a local Runtime API (tests/support/runtime_api.py), with
Lambda's sys.path - the function, the layer's python/, the runtime client - and nothing else:
``-S`` keeps the virtualenv's site-packages out, and awslambdaric (with its two requirements) is
copied from this environment into a runtime dir of its own (no network, the pinned version)
instead of exposing site-packages. So an import the layer cannot satisfy fails here as it
would in Lambda, as a Runtime.ImportModuleError.

The streaming function's run.sh is started as the Lambda Web Adapter starts it, and the
gateway behind it must stream chunk by chunk. (The adapter itself is a binary from AWS's layer,
not available here.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import aigw
from tests.fakes.provider_server import Reply
from tests.support.lambda_events import http_api_event, parse_result
from tests.support.runtime_api import (
    LAYER,
    REPO,
    ROUTE_FUNCTIONS,
    LambdaProcess,
    deploy_locally,
    lambda_environment,
    runtime_client_dir,
    sam_build,
)

pytestmark = pytest.mark.timeout(600)

KEY = "sk-test-0123456789abcdef"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
# The fake provider listens on loopback, which the template's default (trust nothing) refuses.
TRUST_LOOPBACK = {"TRUSTED_CUSTOM_HOSTS": "127.0.0.1"}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sys.version_info[:2] != (3, 12):
        pytest.skip("sam build for the python3.12 runtime needs this suite to run on Python 3.12")
    return sam_build(tmp_path_factory.mktemp("sam") / "build")


@pytest.fixture(scope="module")
def deployed(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_locally(build_dir, tmp_path_factory.mktemp("lambda"))


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runtime_client_dir(tmp_path_factory.mktemp("var-runtime"))


@pytest.fixture
def run_function(deployed: Path, runtime_dir: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[tuple[LambdaProcess, Path]] = []

    def start(name: str, opt: Path | None = None, env: dict[str, str] | None = None) -> LambdaProcess:
        log = tmp_path / f"{name}.log"
        fn = LambdaProcess(deployed / "task" / name, opt or deployed / "opt", runtime_dir,
                           env={**TRUST_LOOPBACK, **(env or {})}, log=log.open("wb"))
        started.append((fn, log))
        return fn.start()

    yield start
    for fn, log in started:
        fn.stop()
        if fn.log is not None:
            fn.log.close()
        print(f"--- {fn.task.name} output:\n{log.read_text(errors='replace')[-3000:]}")


def provider_headers(fake: Any) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url + "/v1",
            "authorization": f"Bearer {KEY}"}


# ------------------------------------------------------------------------------ the artefacts


def test_layer_holds_aigw_and_its_dependencies_under_python(build_dir):
    python = build_dir / LAYER / "python"
    assert (python / "aigw" / "__init__.py").is_file()
    assert (python / "aigw" / "adapters" / "aws.py").is_file()
    assert sorted(p.name for p in (build_dir / LAYER).iterdir()) == ["python"]
    installed = {p.name.split("-")[0].lower().replace("_", "-") for p in python.glob("*.dist-info")}
    for line in (REPO / "shared" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = line.split(">")[0].split("=")[0].split("<")[0].strip().lower().replace("_", "-")
            assert name in installed, f"{name} missing from the layer"
    assert not list(python.glob("*.egg-info")) and not (python / "requirements.txt").exists()
    # Linux wheels for the function's architecture, the one this machine runs.
    assert list(python.glob("orjson/orjson.cpython-312-x86_64-linux-gnu*.so"))


def _pyc_problems(root: Path) -> list[str]:
    magic = importlib.util.MAGIC_NUMBER
    problems = []
    for py in root.rglob("*.py"):
        pyc = py.parent / "__pycache__" / f"{py.stem}.{sys.implementation.cache_tag}.pyc"
        if not pyc.is_file():
            problems.append(f"no .pyc: {py.relative_to(root)}")
            continue
        header = pyc.read_bytes()[:8]
        # PEP 552 flags: 0b01 = hash-based, source not checked (valid whatever the file dates are).
        if header[:4] != magic or int.from_bytes(header[4:8], "little") != 0b01:
            problems.append(f"not an unchecked-hash .pyc for 3.12: {pyc.relative_to(root)}")
    return problems


def test_layer_and_stream_function_ship_unchecked_hash_pyc(build_dir):
    """/opt and /var/task are read-only: what is not compiled at build time is compiled at every cold start."""
    assert _pyc_problems(build_dir / LAYER / "python") == []
    assert _pyc_problems(build_dir / "StreamFunction") == []


_IMPORT_CHECK = r"""
import json, sys
compiled = []
def hook(event, args):
    if event == "compile" and isinstance(args[1], str):
        compiled.append(args[1])
sys.addaudithook(hook)
import app
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
print(json.dumps({"compiled": compiled, "files": files}))
"""


@pytest.mark.parametrize("name", ROUTE_FUNCTIONS)
def test_deployed_function_imports_only_its_artefacts_and_compiles_nothing(deployed, runtime_dir, name):
    """Imports resolve to the function, the layer or the standard library only, and no module of
    the layer is compiled at import although every file is dated 1980 (as `sam deploy` zips)."""
    task, opt = deployed / "task" / name, deployed / "opt"
    env = lambda_environment(task, opt, runtime_dir)
    proc = subprocess.run([sys.executable, "-S", "-c", _IMPORT_CHECK], cwd=task, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    allowed = [str(task), str(opt), str(runtime_dir), sysconfig.get_paths()["stdlib"],
               sysconfig.get_paths()["platstdlib"]]
    strays = [f for f in report["files"] if not any(f.startswith(a + os.sep) for a in allowed)]
    assert strays == [], "imported from outside the deployment"
    assert any(f.startswith(str(opt / "python" / "aigw")) for f in report["files"])
    # app.py itself comes from SAM's plain Python build (no .pyc): 5 lines, compiled in microseconds.
    compiled = [f for f in report["compiled"] if f.startswith(str(deployed)) and f != str(task / "app.py")]
    assert compiled == [], "compiled at cold start"


# ------------------------------------------------------------------ under the runtime interface client


def _invoke(fn: LambdaProcess, event: dict[str, Any]) -> Any:
    inv = fn.invoke(event, timeout=30)
    assert inv.outcome == "response", f"{inv.error_type}: {inv.body[:2000]!r}"
    return parse_result(inv.json())


def test_health_function(run_function):
    fn = run_function("HealthFunction")
    init = fn.wait_ready()
    for path in ("/v1/health", "/"):
        r = _invoke(fn, http_api_event("GET", path))
        assert r.status == 200, r.text
        assert r.json() == {"status": "success", "message": "Server is healthy", "version": aigw.__version__}
    # An event that is no HTTP request is answered 400 in the OpenAI shape (never a bare function
    # error, which API Gateway turns into its generic 500), and the runtime lives on.
    bad = fn.invoke({"not": "an http event"})
    assert bad.outcome == "response", bad.body
    answer = bad.json()
    assert answer["statusCode"] == 400 and json.loads(answer["body"])["error"]["code"] == "invalid_event"
    assert _invoke(fn, http_api_event("GET", "/v1/health")).status == 200
    print(f"HealthFunction init {init * 1000:.0f} ms")


def test_chat_completions_function(run_function, fake_provider):
    fn = run_function("ChatCompletionsFunction")
    init = fn.wait_ready()
    r = _invoke(fn, http_api_event("POST", "/v1/chat/completions", body=CHAT, headers=provider_headers(fake_provider)))
    assert r.status == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake provider"
    assert r.headers["x-portkey-provider"] == "openai" and r.headers["x-portkey-retry-attempt-count"] == "0"

    r = _invoke(fn, http_api_event("POST", "/v1/chat/completions", body={**CHAT, "stream": True},
                                   headers=provider_headers(fake_provider)))
    assert r.status == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.rstrip("\n").endswith("data: [DONE]")

    r = _invoke(fn, http_api_event("POST", "/v1/chat/completions", body=b"{not json", base64_body=True,
                                   headers=provider_headers(fake_provider)))
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_json"
    assert len(fake_provider.requests_for("openai.chat")) == 2
    print(f"ChatCompletionsFunction init {init * 1000:.0f} ms")


@pytest.mark.parametrize("name, method, path, body, check", [
    ("CompletionsFunction", "POST", "/v1/completions", {"model": "m", "prompt": "hi"},
     lambda b: b["object"] == "text_completion"),
    ("EmbeddingsFunction", "POST", "/v1/embeddings", {"model": "m", "input": ["a", "b"]},
     lambda b: len(b["data"]) == 2),
    ("ModelsFunction", "GET", "/v1/models", None, lambda b: b["object"] == "list"),
])
def test_other_route_functions(run_function, fake_provider, name, method, path, body, check):
    fn = run_function(name)
    fn.wait_ready()
    changes: dict[str, Any] = {"headers": provider_headers(fake_provider)}
    if body is not None:
        changes["body"] = body
    r = _invoke(fn, http_api_event(method, path, **changes))
    assert r.status == 200, r.text
    assert check(r.json())
    assert r.headers["x-portkey-provider"] == "openai"


def test_a_function_without_the_layer_fails_its_init_visibly(run_function, tmp_path):
    """The harness catches what it is for: without the layer, aigw is not importable."""
    fn = run_function("HealthFunction", opt=tmp_path / "empty-opt")
    with pytest.raises(RuntimeError, match="init failed"):
        fn.wait_ready()
    assert fn.api.init_error_type == "Runtime.ImportModuleError"
    assert "aigw" in json.dumps(fn.api.init_error)


# ------------------------------------------------------------------ the streaming function


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stream_function_run_sh_serves_a_real_stream(deployed, fake_provider, tmp_path):
    """run.sh as the Lambda Web Adapter starts it; the adapter's readiness check, then a stream
    whose chunks must arrive as the provider sends them (not all at the end)."""
    task, opt = deployed / "task" / "StreamFunction", deployed / "opt"
    assert os.access(task / "run.sh", os.X_OK)
    # Lambda's `python3` is its python3.12; here the same interpreter, without site-packages.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    port = _free_port()
    env = lambda_environment(task, opt, tmp_path / "no-runtime", {
        **TRUST_LOOPBACK, "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": "",
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap", "AWS_LWA_INVOKE_MODE": "response_stream",
        "AWS_LWA_READINESS_CHECK_PATH": "/v1/health", "PORT": str(port), "_HANDLER": "run.sh",
        "AIGW_LAYER_PYTHON": str(opt / "python"),
    })
    log = (tmp_path / "stream.log").open("wb")
    proc = subprocess.Popen([str(task / "run.sh")], cwd=task, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=base, timeout=10) as client:
            while True:  # the adapter's readiness check: GET AWS_LWA_READINESS_CHECK_PATH until it answers
                assert proc.poll() is None, (tmp_path / "stream.log").read_text()
                try:
                    health = client.get("/v1/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "run.sh never became ready"
                    time.sleep(0.02)
            assert health.status_code == 200 and health.json()["status"] == "success"

            fake_provider.script("openai.chat", Reply(chunk_delay_s=0.15))
            arrivals: list[tuple[float, bytes]] = []
            with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                               headers=provider_headers(fake_provider)) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                assert r.headers["x-portkey-provider"] == "openai"
                for chunk in r.iter_raw():
                    arrivals.append((time.monotonic(), chunk))
        text = b"".join(c for _, c in arrivals).decode()
        assert text.rstrip("\n").endswith("data: [DONE]")
        data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
        assert "".join(d["choices"][0]["delta"].get("content") or "" for d in data if d["choices"]) \
            == "Hello from the fake provider"
        first_content = next(t for t, c in arrivals if b'"content"' in c)
        assert arrivals[-1][0] - first_content > 0.3, "chunks were buffered, not streamed"
        # Every route is served (the Function URL is the whole API).
        r2 = httpx.post(f"{base}/v1/embeddings", json={"model": "m", "input": "x"},
                        headers=provider_headers(fake_provider), timeout=10)
        assert r2.status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
