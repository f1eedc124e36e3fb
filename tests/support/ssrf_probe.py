"""Run inside a fresh network namespace (only loopback up): sends requests whose custom host is
private or a metadata address through the real local server and prints each status as JSON.

Inside the namespace nothing but loopback is reachable, so a guard that wrongly let a host
through shows up as a 502 (connection failed), never as real traffic leaving the machine.
"""

import json
import sys

import httpx

from tests.support.local_gateway import LocalGateway, free_port

HOSTILE = [
    "http://169.254.169.254/latest/meta-data",
    "http://2852039166/latest",
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.1:8000/v1",
    "http://192.168.1.10/v1",
    "http://0177.0.0.2/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://ollama.internal:11434/v1",
]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def main() -> None:
    results: dict[str, int] = {}
    with LocalGateway() as gw, httpx.Client(base_url=gw.base_url, timeout=20) as client:
        for host in HOSTILE:
            headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": host, "authorization": "Bearer sk-probe-000000"}
            results[host] = client.post("/v1/chat/completions", json=BODY, headers=headers).status_code
            config = {"provider": "openai", "custom_host": host, "api_key": "sk-probe-000000"}
            results["config:" + host] = client.post(
                "/v1/chat/completions", json=BODY, headers={"x-portkey-config": json.dumps(config)}
            ).status_code
        # Control: a trusted loopback host that is allowed does try to connect (and fails: 502).
        dead = f"http://127.0.0.1:{free_port()}/v1"
        headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": dead, "authorization": "Bearer sk-probe-000000"}
        results["control"] = client.post("/v1/chat/completions", json=BODY, headers=headers).status_code
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
