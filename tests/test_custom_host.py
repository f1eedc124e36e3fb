"""The custom_host SSRF guard: a pure function, so nothing here touches DNS or the network."""

from __future__ import annotations

import pytest

from aigw.custom_host import DEFAULT_TRUSTED_HOSTS, check_custom_host, ip_refusal, parse_trusted_hosts
from aigw.errors import InvalidRequest, UnsafeCustomHost, error_body

NOTHING: frozenset[str] = frozenset()

REFUSED_SYNTAX = [
    "", "127.0.0.1:11434", "//api.example.com/v1", "ftp://api.example.com", "file:///etc/passwd",
    "gopher://api.example.com", "http:api.example.com", "http://", "http:///v1", "http://:8080/v1",
    "http://api.example.com:0/", "http://api.example.com:65536/", "http://api.example.com:80a/",
    "http://api.example.com/v1?x=1", "http://api.example.com/v1#frag", "http://api example.com/",
    " http://api.example.com", "http://api.example.com/v1\n", "http://api.example.com\t/",
    "http://api.example.com\\@10.0.0.1/", "http://api.exam\x00ple.com/", "http://api.exämple.com/",
    "http://" + "a" * 2048 + ".com/", "http://api..example.com/", "http://-api.example.com/",
    "http://api.example.com%2f@10.0.0.1/", "http://127.0.0.1%2e/", "http://[::1/", "http://[]/",
    "http://[127.0.0.1]/", "http://[v1.fe80::a]/", "http://[::1]]/",
]

# Every spelling of 127.0.0.1 / ::1 / localhost that libc or browsers accept: refused when nothing
# is trusted, allowed by the default trust (they denote the same address) and normalised.
LOOPBACK_SPELLINGS = [
    ("http://127.0.0.1", "http://127.0.0.1"), ("http://2130706433/", "http://127.0.0.1"),
    ("http://0x7f000001/", "http://127.0.0.1"), ("http://0X7F000001/", "http://127.0.0.1"),
    ("http://0177.0.0.1/", "http://127.0.0.1"), ("http://00000177.0.0.01/", "http://127.0.0.1"),
    ("http://0x7f.0.0.1/", "http://127.0.0.1"), ("http://127.1/", "http://127.0.0.1"),
    ("http://127.0.1/", "http://127.0.0.1"), ("http://0x7f.1/", "http://127.0.0.1"),
    ("http://0177.1/", "http://127.0.0.1"), ("http://0x7f.0.0x0.1/", "http://127.0.0.1"),
    ("http://017700000001/", "http://127.0.0.1"), ("http://127.0.0.1./", "http://127.0.0.1"),
    ("http://[::1]/", "http://[::1]"), ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]"),
    ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]"), ("http://[::ffff:7f00:1]/", "http://[::ffff:7f00:1]"),
    ("http://127.0.0.1:11434/v1/", "http://127.0.0.1:11434/v1"),
    ("http://localhost:11434/v1", "http://localhost:11434/v1"),
    ("http://LOCALHOST.:11434", "http://localhost:11434"), ("http://[::1]:11434/v1", "http://[::1]:11434/v1"),
]

REFUSED_HOSTS = [
    "http://127.0.0.2:11434/v1", "http://127.255.255.254/", "http://0x7f000002/", "http://api.localhost/",
    # cloud metadata 169.254.169.254 and its spellings
    "http://169.254.169.254/latest/meta-data", "http://2852039166/", "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/", "http://0xa9.0xfe.0xa9.0xfe/", "http://169.254.43518/",
    "http://169.16689662/", "http://0251.0xfe.43518/", "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::169.254.169.254]/", "http://[2002:a9fe:a9fe::1]/",
    "http://[fd00:ec2::254]/", "http://metadata.google.internal/computeMetadata/v1",
    "http://metadata/", "http://metadata.goog/", "http://instance-data/", "http://metadata.azure.com/",
    "http://169.254.169.254.nip.io/", "http://10.0.0.1.sslip.io/", "http://127-0-0-1.sslip.io/",
    # private, CGNAT, unspecified, multicast, broadcast, reserved, benchmark, documentation
    "http://10.0.0.1/", "http://172.16.5.4/", "http://172.31.255.255/", "http://192.168.1.1/",
    "http://167772161/", "http://100.64.0.1/", "http://100.100.100.200/", "http://0.0.0.0/",
    "http://0/", "http://0.1.2.3/", "http://224.0.0.1/", "http://239.255.255.250/",
    "http://255.255.255.255/", "http://240.0.0.1/", "http://198.18.0.1/", "http://192.0.2.1/",
    "http://198.51.100.7/", "http://203.0.113.9/", "http://192.0.0.8/",
    # IPv6: unspecified, link-local, zone ids, ULA, site-local, multicast, documentation, embeddings
    "http://[::]/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/", "http://[fe80::1%eth0]/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fec0::1]/", "http://[ff02::1]/",
    "http://[2001:db8::1]/", "http://[::127.0.0.1]/", "http://[::10.0.0.1]/", "http://[::ffff:0:0]/",
    "http://[::ffff:10.0.0.1]/", "http://[64:ff9b::10.0.0.1]/", "http://[64:ff9b:1::1]/",
    "http://[2002:c0a8:0101::1]/", "http://[2002:7f00:1::]/", "http://[2001:0:4136:e378::1]/",
    "http://[100::1]/",
    # internal names and suffixes, with and without trailing dot, any case
    "http://printer.local/",
    "http://db.internal/", "http://host.localdomain/", "http://nas.home.arpa/", "http://wiki.intranet/",
    "http://ollama.corp/", "http://box.lan/", "http://svc.private/", "http://ollama/", "http://ollama./",
    "http://kubernetes:443/",
    # malformed numeric hosts are refused rather than handed to a resolver
    "http://1.2.3.4.5/", "http://08.0.0.1/", "http://4294967296/", "http://256.0.0.1/",
    "http://1.2.3.256/", "http://1.2.65536/", "http://example.123/", "http://1..2.3/",
]

ALLOWED = [
    ("https://api.example.com", "https://api.example.com"),
    ("https://api.example.com/v1/", "https://api.example.com/v1"),
    ("HTTPS://API.Example.COM:8443/openai/v1//", "https://api.example.com:8443/openai/v1"),
    ("https://api.example.com./v1", "https://api.example.com/v1"),
    ("https://my-resource.openai.azure.com/", "https://my-resource.openai.azure.com"),
    ("http://8.8.8.8/v1", "http://8.8.8.8/v1"),
    ("http://134744072/v1", "http://8.8.8.8/v1"),
    ("http://0x08080808", "http://8.8.8.8"),
    ("http://1.1.1.1:8080", "http://1.1.1.1:8080"),
    ("http://[2606:4700:4700::1111]/v1", "http://[2606:4700:4700::1111]/v1"),
    ("http://[2606:4700:4700:0:0:0:0:1111]", "http://[2606:4700:4700::1111]"),
    ("http://[::ffff:8.8.8.8]/", "http://[::ffff:808:808]"),
    ("http://[64:ff9b::8.8.8.8]/", "http://[64:ff9b::808:808]"),
    ("http://172.32.0.1/", "http://172.32.0.1"),
    ("http://100.128.0.1/", "http://100.128.0.1"),
    ("http://8.8.8.8.nip.io/", "http://8.8.8.8.nip.io"),
    ("https://api.example.com/v1/@models", "https://api.example.com/v1/@models"),
]


@pytest.mark.parametrize("url", REFUSED_SYNTAX)
def test_malformed_urls_are_refused_even_when_everything_is_trusted(url: str) -> None:
    trusted = frozenset({"0.0.0.0/0", "::/0", "api.example.com"})
    with pytest.raises(UnsafeCustomHost):
        check_custom_host(url, trusted)


@pytest.mark.parametrize("url", REFUSED_HOSTS)
def test_internal_destinations_are_refused(url: str) -> None:
    with pytest.raises(UnsafeCustomHost):
        check_custom_host(url, NOTHING)


@pytest.mark.parametrize("url", REFUSED_HOSTS)
def test_default_trust_only_opens_loopback(url: str) -> None:
    with pytest.raises(UnsafeCustomHost):
        check_custom_host(url)


@pytest.mark.parametrize(("url", "expected"), ALLOWED)
def test_public_destinations_are_allowed_and_normalised(url: str, expected: str) -> None:
    assert check_custom_host(url, NOTHING) == expected


@pytest.mark.parametrize(("url", "expected"), LOOPBACK_SPELLINGS)
def test_loopback_is_allowed_by_default_for_local_ollama(url: str, expected: str) -> None:
    assert check_custom_host(url) == expected
    with pytest.raises(UnsafeCustomHost):
        check_custom_host(url, NOTHING)


def test_trusted_cidr_and_hostnames_override_the_refusal() -> None:
    # GIVEN an operator who trusts a private range and two internal names
    trusted = parse_trusted_hosts(" 10.0.0.0/8, ollama.corp ,gpu-box., [fd00::1], 192.168.1.0/24")
    # WHEN custom hosts inside those are checked THEN they pass (normalised), neighbours do not
    assert check_custom_host("http://10.1.2.3:11434/v1/", trusted) == "http://10.1.2.3:11434/v1"
    assert check_custom_host("http://0x0a010203/", trusted) == "http://10.1.2.3"
    assert check_custom_host("http://OLLAMA.corp./api", trusted) == "http://ollama.corp/api"
    assert check_custom_host("http://gpu-box:8000", trusted) == "http://gpu-box:8000"
    assert check_custom_host("http://[fd00::1]/", trusted) == "http://[fd00::1]"
    assert check_custom_host("http://192.168.1.77/", trusted) == "http://192.168.1.77"
    for url in ("http://172.16.0.1/", "http://other.corp/", "http://[fd00::2]/", "http://127.0.0.1/",
                "http://192.168.2.1/", "http://metadata.google.internal/"):
        with pytest.raises(UnsafeCustomHost):
            check_custom_host(url, trusted)


def test_trust_does_not_relax_url_syntax() -> None:
    with pytest.raises(UnsafeCustomHost):
        check_custom_host("http://admin:pw@10.0.0.1/", frozenset({"10.0.0.0/8"}))


def test_parse_trusted_hosts() -> None:
    assert parse_trusted_hosts(None) == DEFAULT_TRUSTED_HOSTS == frozenset({"127.0.0.1", "::1", "localhost"})
    assert parse_trusted_hosts("") == frozenset()
    assert parse_trusted_hosts(" , ") == frozenset()
    assert parse_trusted_hosts("Ollama.Corp, 10.0.0.0/8") == frozenset({"ollama.corp", "10.0.0.0/8"})
    for bad in ("10.0.0.0/33", "not a host", "1.2.3.4.5", "[::zz]"):
        with pytest.raises(ValueError):
            parse_trusted_hosts(bad)


@pytest.mark.parametrize("url", [
    "http://admin:s3cr3tP4ss@10.0.0.1/",
    "https://admin:s3cr3tP4ss@api.example.com/v1",
    "http://s3cr3tP4ss@127.0.0.1:11434",
    "http://admin:s3cr3tP4ss@[::1]/",
    "admin:s3cr3tP4ss@api.example.com",
    "http://admin:s3cr3tP4ss/@evil.example.com",
    "http://admin:s3cr3tP4ss@@localhost/",
    "http://admin:s3cr3tP4ss@api.example.com/ with space",
])
def test_error_is_a_400_without_the_credentials(url: str) -> None:
    with pytest.raises(UnsafeCustomHost) as caught:
        check_custom_host(url, param="config.targets[0].custom_host")
    err = caught.value
    assert isinstance(err, InvalidRequest) and err.status == 400
    assert err.code == "unsafe_custom_host"
    assert err.param == "config.targets[0].custom_host"
    body = error_body(err)["error"]
    assert body["code"] == "unsafe_custom_host"  # type: ignore[index]
    for text in (str(err), err.message, repr(body)):
        assert "s3cr3tP4ss" not in text and "admin" not in text


def test_error_message_explains_the_refusal() -> None:
    with pytest.raises(UnsafeCustomHost) as caught:
        check_custom_host("http://0xa9fea9fe/latest", NOTHING)
    assert "169.254.169.254" in caught.value.message
    assert "TRUSTED_CUSTOM_HOSTS" in caught.value.message
    assert caught.value.param == "custom_host"


def test_ip_refusal_is_reusable_for_connect_time_checks() -> None:
    from ipaddress import ip_address

    assert ip_refusal(ip_address("93.184.216.34")) is None
    assert ip_refusal(ip_address("2606:4700::1111")) is None
    assert ip_refusal(ip_address("169.254.169.254")) is not None
    assert ip_refusal(ip_address("::ffff:10.0.0.1")) is not None
