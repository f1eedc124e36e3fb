"""The local shell: every route in one process on http://127.0.0.1:8787 (``make run``).

Also what the Lambda Web Adapter starts for the streaming Function URL
(``python -m aigw.adapters.local --shell lambda-stream``, ``PORT=8080``): the same server
with the Lambda defaults (no trusted custom hosts: there, loopback is the runtime's own API).
"""

from __future__ import annotations

import argparse
import os

from aigw.adapters.asgi import GatewayApp
from aigw.gateway import Gateway
from aigw.routes import ROUTES
from aigw.settings import AZURE, LAMBDA_STREAM, LOCAL, Settings, ShellDefaults

SHELLS: dict[str, ShellDefaults] = {s.name: s for s in (LOCAL, LAMBDA_STREAM, AZURE)}
_SHELL_ENV = "AIGW_LOCAL_SHELL"  # carries --shell into uvicorn's app factory


def create_app() -> GatewayApp:
    shell = SHELLS[os.environ.get(_SHELL_ENV, LOCAL.name)]
    return GatewayApp(ROUTES, Gateway.from_env(shell), adapter_deadline=shell is LAMBDA_STREAM)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from aigw.adapters.http_protocol import bounded_protocol

    parser = argparse.ArgumentParser(prog="python -m aigw.adapters.local")
    parser.add_argument("--shell", choices=sorted(SHELLS), default=LOCAL.name,
                        help="which platform's defaults to use (default: local)")
    args = parser.parse_args(argv)
    shell = SHELLS[args.shell]
    settings = Settings.from_env(os.environ, shell)  # a misconfiguration fails here, before listening
    os.environ[_SHELL_ENV] = shell.name
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8787"))
    print(f"aigw listening on http://{host}:{port}", flush=True)
    uvicorn.run(
        "aigw.adapters.local:create_app",
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http=bounded_protocol(settings.max_header_bytes, body_timeout_s=settings.request_body_timeout_ms / 1000,
                              write_timeout_s=settings.response_write_timeout_ms / 1000),
        log_level=os.environ.get("LOG_LEVEL", "warning").lower(),
        access_log=False,
        server_header=False,
        # The gateway never reads the client's address: uvicorn's X-Forwarded-* middleware
        # would only add a layer (and a scan of every header) to each request.
        proxy_headers=False,
        ws="none",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
