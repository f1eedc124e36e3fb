"""Run the real Portkey gateway (npm ``@portkey-ai/gateway``) locally, on loopback only.

Used by benchmarks and behaviour comparisons. Needs ``node`` and ``npm`` on PATH.
The install lives in ``bench/.reference/`` (gitignored). The upstream start script
binds every interface, so a ``--require`` preload forces ``net.Server.listen``
onto 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GATEWAY_VERSION = "1.15.2"
NODE_SERVER_VERSION = "1.13.5"  # newer @hono/node-server releases break streaming
DEFAULT_DIR = Path(__file__).resolve().parent / ".reference"
ENTRY = Path("node_modules/@portkey-ai/gateway/build/start-server.js")
PRELOAD_NAME = "bind-loopback.cjs"

_PRELOAD = """\
// Preload: force every listening socket of this process onto 127.0.0.1.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  if (typeof a0 === "number" || (typeof a0 === "string" && /^\\d+$/.test(a0))) {
    if (typeof args[1] === "string") args[1] = "127.0.0.1";
    else args.splice(1, 0, "127.0.0.1");
  } else if (a0 && typeof a0 === "object" && !Array.isArray(a0)) {
    args[0] = { ...a0, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
"""


def _package_json() -> str:
    pinned = {"@portkey-ai/gateway": GATEWAY_VERSION, "@hono/node-server": NODE_SERVER_VERSION}
    spec = {
        "name": "portkey-reference",
        "private": True,
        "dependencies": pinned,
        "overrides": {"@hono/node-server": NODE_SERVER_VERSION},
    }
    return json.dumps(spec, indent=2) + "\n"


def ensure_installed(dir: Path = DEFAULT_DIR) -> Path:
    """Install the pinned reference gateway under ``dir`` if needed; return its entry script."""
    dir.mkdir(parents=True, exist_ok=True)
    manifest = dir / "package.json"
    wanted = _package_json()
    entry = dir / ENTRY
    stale = not manifest.exists() or manifest.read_text() != wanted
    if stale:
        manifest.write_text(wanted)
    if stale or not entry.exists():
        subprocess.run(
            ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=dir,
            check=True,
        )
    preload = dir / PRELOAD_NAME
    if not preload.exists() or preload.read_text() != _PRELOAD:
        preload.write_text(_PRELOAD)
    return entry


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reference gateway exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"reference gateway did not answer on {url} within {timeout}s")


@contextmanager
def run_reference_gateway(
    port: int | None = None, dir: Path = DEFAULT_DIR, startup_timeout: float = 30.0
) -> Iterator[str]:
    """Start the reference gateway on 127.0.0.1, yield its base URL, stop it on exit."""
    entry = ensure_installed(dir)
    port = port or _free_port()
    env = dict(os.environ)
    env.pop("HTTP_PROXY", None)
    env.pop("HTTPS_PROXY", None)
    cmd = ["node", "--require", str(dir / PRELOAD_NAME), str(entry), f"--port={port}", "--headless"]
    proc = subprocess.Popen(
        cmd, cwd=dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, startup_timeout)
        yield base
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child, killing it if it has not gone within 5 s."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
