"""The local shell: every route in one process on http://127.0.0.1:8787 (``make run``).

Also what the Lambda Web Adapter starts for the streaming Function URL (``PORT=8080``).
"""

from __future__ import annotations

import os

from aigw.adapters.asgi import GatewayApp
from aigw.adapters.routes import ROUTES


def create_app() -> GatewayApp:
    return GatewayApp(ROUTES)


def main() -> None:
    import uvicorn

    from aigw.adapters.http_protocol import bounded_protocol
    from aigw.settings import Settings

    settings = Settings.from_env()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8787"))
    print(f"aigw listening on http://{host}:{port}", flush=True)
    uvicorn.run(
        "aigw.adapters.local:create_app",
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http=bounded_protocol(settings.max_header_bytes),
        log_level=os.environ.get("LOG_LEVEL", "warning").lower(),
        access_log=False,
        server_header=False,
        ws="none",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
