"""The connect-time SSRF check, with a stub inner resolver: no real DNS, nothing connects."""

import socket

import pytest

from aigw.upstream.resolver import GuardedResolver


class StubResolver:
    def __init__(self, answers):
        self.answers = answers

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
                for a in self.answers[host]]

    async def close(self):
        pass


ANSWERS = {
    "api.example.com": ["93.184.215.14"],
    "rebind.example.com": ["169.254.169.254"],
    "mixed.example.com": ["10.0.0.7", "93.184.215.14"],
    "v6.example.com": ["::ffff:10.0.0.1", "fd00::1"],
    "loop.example.com": ["127.0.0.1"],
    "ollama.corp": ["10.1.2.3"],
    "gpu.example.com": ["10.9.9.9"],
}


def guarded(trusted=frozenset({"127.0.0.1", "::1", "localhost"})):
    return GuardedResolver(trusted, StubResolver(ANSWERS))


async def test_public_answers_pass():
    assert [r["host"] for r in await guarded().resolve("api.example.com", 443)] == ["93.184.215.14"]


@pytest.mark.parametrize("host", ["rebind.example.com", "v6.example.com"])
async def test_names_resolving_only_to_private_addresses_are_refused(host):
    with pytest.raises(OSError) as info:
        await guarded().resolve(host, 443)
    assert "non-public" in str(info.value)


async def test_private_answers_are_dropped_from_mixed_results():
    assert [r["host"] for r in await guarded().resolve("mixed.example.com", 443)] == ["93.184.215.14"]


async def test_trusted_names_and_networks_are_allowed():
    assert await guarded(frozenset({"ollama.corp"})).resolve("ollama.corp", 11434)
    assert await guarded(frozenset({"10.0.0.0/8"})).resolve("gpu.example.com", 8000)


async def test_loopback_follows_the_trusted_setting():
    # trusted by default (local development), refused when nothing is trusted (deployed default)
    assert await guarded().resolve("loop.example.com", 80)
    with pytest.raises(OSError):
        await guarded(frozenset()).resolve("loop.example.com", 80)
