"""One JSON request to the gateway's own infrastructure (embedder, vector store, later the
control plane), bounded in time and size. Returns the status and the decoded body; raises
``TransportError`` for anything that is not an answer (unreachable, too slow, too large, not
JSON). Never carries the URL or headers in what it raises: they may hold keys."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from aigw.upstream.transport import Transport, TransportError, UpstreamResponse

MAX_ANSWER_BYTES = 8 * 1024 * 1024


async def post_json(transport: Transport, url: str, headers: Mapping[str, str], payload: Any,
                    timeout_s: float) -> tuple[int, Any]:
    response: UpstreamResponse | None = None
    parts: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            response = await transport.request("POST", url, {"content-type": "application/json", **headers},
                                               orjson.dumps(payload))
            status = response.status
            size = 0
            while chunk := await response.next_chunk():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise TransportError("answer too large")
                parts.append(chunk)
            response = None  # read to its end: the connection went back to the pool
    except TimeoutError:
        raise TransportError("timed out") from None
    except TransportError:
        raise
    except Exception as exc:  # a header value the HTTP client refuses, say: never past this call
        raise TransportError(type(exc).__name__) from None
    finally:
        if response is not None:
            response.close()
    try:
        return status, orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError:
        raise TransportError("answer is not JSON") from None
