"""Gateway keys (AUTH_MODE=api_key): hashes only, constant-time checks, fail closed."""

import hashlib
import subprocess
import sys

import pytest

from aigw.auth import KeyListAuth, NoAuth, authenticator_for, parse_key_hashes
from aigw.errors import AuthenticationRequired

KEY = "pk-live-0123456789abcdef"
HASH = hashlib.sha256(KEY.encode()).hexdigest()


async def test_a_listed_key_passes_and_yields_a_key_id_not_the_key():
    auth = KeyListAuth(frozenset({HASH, "00" * 32}))
    principal = await auth.authenticate({"x-portkey-api-key": KEY})
    assert principal.key_id == HASH[:12] and KEY not in repr(principal)


@pytest.mark.parametrize("headers", [{}, {"x-portkey-api-key": ""}, {"x-portkey-api-key": "pk-other"},
                                     {"x-portkey-api-key": KEY + "x"}, {"x-portkey-api-key": "k" * 10_000},
                                     {"authorization": f"Bearer {KEY}"}])
async def test_anything_else_is_a_401(headers):
    with pytest.raises(AuthenticationRequired) as info:
        await KeyListAuth(frozenset({HASH})).authenticate(headers)
    assert info.value.status == 401 and KEY not in info.value.message


def test_fails_closed_without_keys():
    with pytest.raises(ValueError):
        KeyListAuth(frozenset())
    with pytest.raises(ValueError):
        authenticator_for("api_key")
    assert isinstance(authenticator_for("none"), NoAuth)


def test_hash_entries_are_validated():
    assert parse_key_hashes([f"sha256:{HASH.upper()}", " ", HASH]) == frozenset({HASH})
    with pytest.raises(ValueError):
        parse_key_hashes(["md5:abc"])


def test_the_cli_prints_the_hash_to_configure():
    out = subprocess.run([sys.executable, "-m", "aigw.auth", "hash"], input=KEY + "\n", capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"sha256:{HASH}" and KEY not in out.stdout
