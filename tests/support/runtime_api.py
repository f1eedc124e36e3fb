"""A local Lambda Runtime API, and helpers to run `sam build` output the way Lambda runs it.

Written by hand: the official Runtime Interface Emulator (aws-lambda-rie) is a Go binary
downloaded from GitHub releases, and this machine reaches package registries only. What it
implements, from the Runtime API reference (version 2018-06-01):

  GET  /2018-06-01/runtime/invocation/next            long-polls for the next queued event;
       answers it with Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn
       (and -Trace-Id) headers
  POST /2018-06-01/runtime/invocation/{id}/response   the handler's result
  POST /2018-06-01/runtime/invocation/{id}/error      the handler raised (Lambda-Runtime-Function-Error-Type)
  POST /2018-06-01/runtime/init/error                 the handler could not be loaded

Timestamps are ``time.perf_counter()`` values, so a caller that notes ``perf_counter()`` just
before starting the runtime process gets the init duration as ``first_next_at - start``: Lambda
counts init as ending when the runtime first asks for work.

A ``ThreadingHTTPServer`` in a background thread (stdlib only: no event loop, usable from sync
tests and the bench script alike). One instance serves one runtime process.

Below it, the rest of a local "Lambda" for tests/deploy and bench/cold_start.py:
``sam_build`` (the real build), ``deploy_locally`` (zip each artefact exactly as `sam package`
does - every entry dated 1980-01-01 - and extract it as Lambda does: layers under one /opt,
functions in their own /var/task), ``runtime_client_dir`` (awslambdaric and its requirements
only, as in Lambda's /var/runtime) and ``LambdaProcess`` (``python -S -m awslambdaric app.handler``
with Lambda's sys.path and environment and nothing else: no virtualenv site-packages).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

PREFIX = "/2018-06-01/runtime"
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")
DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:aigw-test"


@dataclass
class Invocation:
    """One queued event and what the runtime did with it."""

    request_id: str
    event: bytes
    queued_at: float
    delivered_at: float | None = None
    done_at: float | None = None
    # "response" or "error" once the runtime has answered.
    outcome: str | None = None
    body: bytes = b""
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def duration_s(self) -> float | None:
        """From the runtime receiving the event to its answer."""
        if self.delivered_at is None or self.done_at is None:
            return None
        return self.done_at - self.delivered_at


class RuntimeAPI:
    def __init__(self, function_arn: str = DEFAULT_ARN, deadline_s: float = 60.0) -> None:
        self.function_arn = function_arn
        self.deadline_s = deadline_s
        self.invocations: dict[str, Invocation] = {}
        self.next_calls: list[float] = []
        self.first_next: threading.Event = threading.Event()
        self.init_error: dict[str, Any] | None = None
        self.init_error_type: str | None = None
        self.init_error_at: float | None = None
        self.unknown_requests: list[tuple[str, str]] = []
        self._queue: queue.Queue[Invocation] = queue.Queue()
        self._counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    # ------------------------------------------------------------------ public API

    @property
    def address(self) -> str:
        """The value for AWS_LAMBDA_RUNTIME_API."""
        if self._server is None:
            raise RuntimeError("RuntimeAPI is not started")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def first_next_at(self) -> float | None:
        return self.next_calls[0] if self.next_calls else None

    def queue(self, event: Any) -> Invocation:
        """Queue an event (a dict/list is JSON-encoded, bytes are sent as they are)."""
        raw = event if isinstance(event, bytes) else json.dumps(event).encode()
        inv = Invocation(f"{next(self._counter):04d}-{uuid.uuid4()}", raw, time.perf_counter())
        self.invocations[inv.request_id] = inv
        self._queue.put(inv)
        return inv

    def wait_ready(self, timeout: float, alive: Any = None) -> float:
        """Wait for the first /next call (init done); ``alive()`` False aborts early. Returns its time."""
        deadline = time.monotonic() + timeout
        while not self.first_next.wait(0.005):
            if self.init_error is not None:
                raise RuntimeError(f"init failed: {self.init_error_type}: {self.init_error}")
            if alive is not None and not alive():
                raise RuntimeError("runtime process exited before asking for an invocation")
            if time.monotonic() > deadline:
                raise TimeoutError("runtime did not ask for an invocation")
        assert self.first_next_at is not None
        return self.first_next_at

    def invoke(self, event: Any, timeout: float = 30.0, alive: Any = None) -> Invocation:
        """Queue ``event`` and wait for the runtime's response or error."""
        inv = self.queue(event)
        deadline = time.monotonic() + timeout
        while not inv.done.wait(0.01):
            if self.init_error is not None:
                raise RuntimeError(f"init failed: {self.init_error_type}: {self.init_error}")
            if alive is not None and not alive():
                raise RuntimeError("runtime process exited during the invocation")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to invocation {inv.request_id}")
        return inv

    def start(self) -> RuntimeAPI:
        api = self

        class Handler(_Handler):
            runtime = api

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="lambda-runtime-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> RuntimeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ server side

    def _next(self) -> Invocation | None:
        self.next_calls.append(time.perf_counter())
        self.first_next.set()
        while not self._closing.is_set():
            try:
                inv = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            inv.delivered_at = time.perf_counter()
            return inv
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime process that is stopped drops its keep-alive connection: not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    runtime: RuntimeAPI
    protocol_version = "HTTP/1.1"  # keep-alive, as the real Runtime API

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def do_GET(self) -> None:  # noqa: N802
        if self.path != f"{PREFIX}/invocation/next":
            self.runtime.unknown_requests.append(("GET", self.path))
            self._reply(404, b'{"errorMessage":"not found"}')
            return
        inv = self.runtime._next()
        if inv is None:  # shutting down
            self._reply(500, b'{"errorMessage":"runtime API stopped"}')
            return
        deadline_ms = int((time.time() + self.runtime.deadline_s) * 1000)
        self._reply(200, inv.event, {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.runtime.function_arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        })

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        rt = self.runtime
        if self.path == f"{PREFIX}/init/error":
            rt.init_error_at = time.perf_counter()
            rt.init_error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
            try:
                rt.init_error = json.loads(body) if body else {}
            except ValueError:
                rt.init_error = {"raw": body.decode("utf-8", "replace")}
            self._reply(202, b'{"status":"OK"}')
            return
        match = _INVOCATION.match(self.path)
        inv = rt.invocations.get(match.group(1)) if match else None
        if inv is None or match is None:
            rt.unknown_requests.append(("POST", self.path))
            self._reply(404, b'{"errorMessage":"unknown request id"}')
            return
        if inv.outcome is not None:
            self._reply(400, b'{"errorMessage":"invocation already answered"}')
            return
        inv.done_at = time.perf_counter()
        inv.outcome = match.group(2)
        inv.body = body
        inv.error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        self._reply(202, b'{"status":"OK"}')
        inv.done.set()


# ---------------------------------------------------------------------------- running built functions

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
ROUTE_FUNCTIONS = ("ChatCompletionsFunction", "CompletionsFunction", "EmbeddingsFunction", "ModelsFunction",
                   "HealthFunction", "NotFoundFunction")
LAYER = "SharedLayer"


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for the SAM CLI / cfn-lint: this interpreter's bin first on PATH (so `sam build`
    finds this python3.12 and its pip), no telemetry, a region (no account is needed)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the build must see only what it installs
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION=env.get("AWS_DEFAULT_REGION") or "us-east-1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def sam_build(build_dir: Path, timeout: float = 900) -> Path:
    """``sam build`` (no container) of template.yaml into ``build_dir``; returns it."""
    cmd = [sys.executable, "-m", "samcli", "build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir),
           "--parallel", "--no-cached"]
    proc = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"sam build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return build_dir


def runtime_client_dir(dest: Path) -> Path:
    """awslambdaric and its requirements' installed files, copied into ``dest`` (Lambda's /var/runtime).

    Copied from this interpreter's installation (the version pyproject's test extra pins, no
    network) rather than putting the virtualenv's site-packages on the path, which would hide
    every packaging mistake behind the test environment's own aiohttp, orjson, mangum, ...
    """
    todo, seen = ["awslambdaric"], set()
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        for f in dist.files or ():
            src = Path(str(dist.locate_file(f)))
            if "__pycache__" in f.parts or ".." in f.parts or not src.is_file():
                continue
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
        for req in dist.requires or ():
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return dest


def package_like_sam(src: Path, zip_base: Path) -> Path:
    """Zip a build artefact with SAM's own function (what `sam package`/`sam deploy` upload)."""
    from samcli.lib.package.utils import make_zip_with_lambda_permissions

    return Path(make_zip_with_lambda_permissions(str(zip_base), str(src)))


def extract_like_lambda(archive: Path, dest: Path) -> None:
    """Extract keeping each entry's mode and date (zipfile alone drops both)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o7777
            if mode:
                path.chmod(mode)
            stamp = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(path, (stamp, stamp))


def deploy_locally(build_dir: Path, dest: Path,
                   functions: tuple[str, ...] = (*ROUTE_FUNCTIONS, "StreamFunction")) -> Path:
    """Lay out ``build_dir`` as Lambda would run it: ``dest/opt`` (the layer) and ``dest/task/<Function>``."""
    zips = dest / "zips"
    zips.mkdir(parents=True, exist_ok=True)
    extract_like_lambda(package_like_sam(build_dir / LAYER, zips / LAYER), dest / "opt")
    for fn in functions:
        extract_like_lambda(package_like_sam(build_dir / fn, zips / fn), dest / "task" / fn)
    return dest


def template_environment(template: Path = TEMPLATE) -> dict[str, str]:
    """The Globals environment of template.yaml with every parameter at its default."""
    from cfnlint.decode import decode

    tpl, errors = decode(str(template))
    if errors or tpl is None:
        raise RuntimeError(f"cannot parse {template}: {errors}")
    params = tpl.get("Parameters", {})
    env = {}
    for name, value in tpl["Globals"]["Function"]["Environment"]["Variables"].items():
        if isinstance(value, Mapping) and "Ref" in value:
            value = params[value["Ref"]]["Default"]
        env[name] = str(value)
    return env


def lambda_environment(task: Path, opt: Path, runtime: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment shaped like Lambda's python3.12 runtime (nothing inherited from ours)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        # Lambda's sys.path: /var/task, /opt/python/lib/python3.12/site-packages, /opt/python, /var/runtime.
        "PYTHONPATH": os.pathsep.join([str(task), str(opt / "python/lib/python3.12/site-packages"),
                                       str(opt / "python"), str(runtime)]),
        # /var/task and /opt are read-only in Lambda: nothing may be written next to the sources.
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(runtime),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": task.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "_HANDLER": "app.handler",
    }
    env.update(template_environment())
    env.update(extra or {})
    return env


class LambdaProcess:
    """``python -S -m awslambdaric app.handler`` in ``task``, talking to its own RuntimeAPI.

    ``-S``: no site module, so no virtualenv (or user) site-packages - only PYTHONPATH and the
    standard library, as in Lambda. ``started_at`` is perf_counter() just before the spawn.
    """

    def __init__(self, task: Path, opt: Path, runtime: Path, env: Mapping[str, str] | None = None,
                 handler: str = "app.handler", log: IO[bytes] | None = None) -> None:
        self.api = RuntimeAPI(function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{task.name}")
        self.task, self.opt, self.runtime, self.handler = task, opt, runtime, handler
        self.extra_env = dict(env or {})
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The process environment Lambda would give the function (a subclass may build another)."""
        return lambda_environment(self.task, self.opt, self.runtime, extra)

    def start(self) -> LambdaProcess:
        self.api.start()
        env = self.environment({"AWS_LAMBDA_RUNTIME_API": self.api.address, **self.extra_env})
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-S", "-m", "awslambdaric", self.handler], cwd=self.task,
                                     env=env, stdin=subprocess.DEVNULL, stdout=self.log or subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Init duration in seconds: spawn -> first GET /next."""
        return self.api.wait_ready(timeout, alive=self.alive) - self.started_at

    def invoke(self, event: Any, timeout: float = 30.0) -> Invocation:
        return self.api.invoke(event, timeout, alive=self.alive)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.api.stop()

    def __enter__(self) -> LambdaProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
