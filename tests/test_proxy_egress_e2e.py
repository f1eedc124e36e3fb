"""The SSRF guard through an egress proxy, end to end, inside a network and mount namespace:
only loopback exists, and a private /etc/hosts points evil.test at 127.0.0.2 (not trusted) and
good.test at 127.0.0.3. See tests/support/proxy_probe.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ["stdlib", "aiohttp"]
HOSTS = "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 evil.test\n127.0.0.3 good.test\n"
OK = "200 {}"

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is installed by make test")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    hosts = tmp_path_factory.mktemp("netns") / "hosts"
    hosts.write_text(HOSTS)
    script = f"ip link set lo up && mount --bind {hosts} /etc/hosts && exec {sys.executable} -m tests.support.proxy_probe"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run(["unshare", "-n", "-m", "sh", "-c", script], cwd=ROOT, capture_output=True, timeout=120,
                          env={**env, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_name_resolving_to_a_private_address_is_refused_before_the_proxy_is_asked(probe, client, scheme):
    result = probe[f"{client}:refused_{scheme}"]
    assert result["outcome"] == "TransportError"
    assert result["evil_connections"] == 0
    assert result["proxy"] == []  # checked before the proxy was even contacted


@pytest.mark.parametrize("client", CLIENTS)
def test_plain_http_through_the_proxy_names_the_checked_ip_and_keeps_the_host(probe, client):
    result = probe[f"{client}:allowed_http"]
    assert result["outcome"] == OK
    assert result["proxy"] == ["GET http://127.0.0.3:GOOD/v1/models HTTP/1.1 | Host: good.test:GOOD"]
    assert result["good_hosts"] == ["good.test:GOOD"]


@pytest.mark.parametrize("client", CLIENTS)
def test_https_tunnels_to_the_checked_ip_and_verifies_the_name(probe, client):
    if not probe["tls"]:
        pytest.skip("the cryptography package makes the test certificate")
    result = probe[f"{client}:allowed_https"]
    assert result["outcome"] == OK  # the certificate for good.test verified, over a tunnel to its IP
    assert [line.split(" | ")[0] for line in result["proxy"]] == ["CONNECT 127.0.0.3:GOOD_TLS HTTP/1.1"]
    assert result["good_hosts"] == ["good.test:GOOD_TLS"]


@pytest.mark.parametrize("client", CLIENTS)
def test_no_proxy_is_respected(probe, client):
    result = probe[f"{client}:no_proxy"]
    assert (result["outcome"], result["proxy"], result["good_hosts"]) == (OK, [], ["good.test:GOOD"])


@pytest.mark.parametrize("client", CLIENTS)
def test_only_the_unguarded_infrastructure_transport_reaches_a_private_address(probe, client):
    guarded, unguarded = probe[f"{client}:guarded_direct"], probe[f"{client}:unguarded_direct"]
    assert (guarded["outcome"], guarded["evil_connections"]) == ("TransportError", 0)
    assert (unguarded["outcome"], unguarded["evil_connections"]) == (OK, 1)
    # Unguarded, the proxy is still used, and asked for the name (it resolves it itself).
    proxied = probe[f"{client}:unguarded_proxied"]
    assert (proxied["outcome"], proxied["evil_connections"]) == (OK, 1)
    assert proxied["proxy"] == ["GET http://evil.test:EVIL/v1/models HTTP/1.1 | Host: evil.test:EVIL"]
