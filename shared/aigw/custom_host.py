"""SSRF guard for a client-supplied ``custom_host`` (the base URL the gateway forwards LLM calls to).

Policy of the pure function :func:`check_custom_host` (no DNS, no sockets):

* Syntax: ``http``/``https`` only, a host required, <= 2048 printable-ASCII characters; no whitespace,
  control characters, backslashes, userinfo (``user:pass@``), query or fragment.
* The host is read as resolvers read it: bracketed IPv6 (zone ids refused), dotted-quad IPv4 and the
  legacy ``inet_aton`` spellings (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``). IPv6
  embedding IPv4 (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by the IPv4.
* Refused IPs: anything not public unicast - loopback, RFC 1918, link-local (169.254.169.254 metadata),
  CGNAT, unspecified, multicast, broadcast, reserved, benchmark, documentation, unique-local, site-local.
* Refused names: cloud-metadata names, internal suffixes (``.internal``, ``.local``, ``.corp``, ...),
  single-label names, and (best effort) names spelling a non-public IPv4 such as ``10.0.0.1.nip.io``.
  A trailing dot is ignored (``localhost.`` is ``localhost``).
* ``trusted_hosts`` (env ``TRUSTED_CUSTOM_HOSTS``: hostnames, IP literals, CIDRs) lift the IP/name
  refusals, never the syntax rules. Default: loopback only, for a local Ollama.

The result is normalised (lower case, canonical IP literal, no trailing slash) so the HTTP client
connects to exactly the address judged here, not to another parser's reading of the original.

Out of scope for a pure function: what a hostname resolves to (DNS rebinding, public names pointing
at 10.x). That check belongs at connect time, in the shared upstream client (``aigw.upstream``): a
resolver/connector applying :func:`ip_refusal` to every resolved address before connecting.
"""

from __future__ import annotations

import functools
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from aigw.errors import UnsafeCustomHost

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

DEFAULT_TRUSTED_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_URL_LENGTH = 2048

_BLOCKED_SPEC: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified ('this network')"), ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT"), ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local / cloud metadata"), ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"), ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"), ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved / broadcast"),
    ("::/128", "unspecified"), ("::1/128", "loopback"),
    ("::/8", "reserved (IPv4-compatible / IPv4-translated)"), ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"), ("2001::/23", "IETF protocol assignments (incl. Teredo)"),
    ("2001:db8::/32", "documentation"), ("3fff::/20", "documentation"), ("5f00::/16", "SRv6 SIDs"),
    ("fc00::/7", "unique-local"), ("fe80::/10", "link-local"), ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_NAT64 = IPv6Network("64:ff9b::/96")


@functools.cache
def _blocked() -> tuple[tuple[IPNetwork, str], ...]:
    # Built on first use: ~5 ms that functions never checking an address (health) do not pay.
    return tuple((ip_network(net), why) for net, why in _BLOCKED_SPEC)


_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                             "instance-data.ec2.internal", "metadata.azure.com", "metadata.azure.internal"})
_INTERNAL_SUFFIXES = ("internal", "local", "localhost", "localdomain", "home.arpa", "intranet", "corp", "lan",
                      "private")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_DASHED_QUAD = re.compile(r"(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})")
_AUTHORITY = re.compile(r"\[([^\]]*)\](?::(\d*))?|([^\[\]:]*)(?::(\d*))?")


def _ipv4_part(part: str) -> int | None:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if re.fullmatch(r"[0-7]+", part) else None
    return int(part)


def _legacy_ipv4(host: str) -> IPv4Address | None:
    """Read ``host`` as ``inet_aton``/WHATWG read it, or None if it is a hostname.

    Hand-written because ``ipaddress`` accepts only dotted-quad decimal, while libc resolvers and
    browsers turn ``2130706433``, ``0x7f.1`` or ``0177.0.0.1`` into 127.0.0.1 without any DNS query.
    As in WHATWG, a host whose last label is numeric is an IP or nothing: malformed ones raise.
    """
    parts = host.split(".")
    if not _NUMERIC_LABEL.fullmatch(parts[-1]):
        return None
    numbers = [_ipv4_part(p) if _NUMERIC_LABEL.fullmatch(p) else None for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError("looks like an IPv4 address but is not a valid one")
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise ValueError("looks like an IPv4 address but is out of range")
    return IPv4Address(sum(n << 8 * (3 - i) for i, n in enumerate(head)) + last)


def _classify(host: str) -> IPAddress | str:
    """An unbracketed host (lower case, trailing dot removed) -> its IP, or the validated hostname."""
    if ":" in host:
        return IPv6Address(host)  # only reachable from trusted-host entries; raises if malformed
    ip = _legacy_ipv4(host)
    if ip is not None:
        return ip
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError("is not a valid hostname (use punycode for non-ASCII names)")
    return host


def ip_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be contacted, or None when it is a public unicast address."""
    if isinstance(ip, IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            why = ip_refusal(embedded)
            return None if why is None else f"embeds {embedded}: {why}"
    for net, why in _blocked():
        if net.version == ip.version and ip in net:
            return f"{why} address"
    if not ip.is_global or ip.is_multicast or ip.is_reserved:  # belt and braces for new registries
        return "non-public address"
    return None


def _name_refusal(host: str) -> str | None:
    if host in _METADATA_NAMES:
        return "cloud metadata hostname"
    for suffix in _INTERNAL_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return f"internal name under .{suffix}"
    if "." not in host:
        return "single-label hostname"
    labels = host.split(".")
    spelled = [".".join(labels[i:i + 4]) for i in range(len(labels) - 3)]
    spelled += [".".join(m.groups()) for m in map(_DASHED_QUAD.fullmatch, labels) if m]
    for quad in spelled:  # wildcard-DNS names (nip.io, sslip.io); best effort, see module docstring
        if re.fullmatch(r"(?:\d{1,3}\.){3}\d{1,3}", quad) and max(map(int, quad.split("."))) <= 255:
            if ip_refusal(IPv4Address(quad)) is not None:
                return f"hostname spells the non-public address {quad}"
    return None


@functools.lru_cache(maxsize=16)
def _compile_trusted(trusted: frozenset[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names: set[str] = set()
    nets: list[IPNetwork] = []
    for raw in trusted:
        entry = raw.strip().lower().removesuffix(".").removeprefix("[").removesuffix("]")
        if not entry:
            continue
        try:
            found = ip_network(entry, strict=False) if "/" in entry else _classify(entry)
        except ValueError as exc:
            raise ValueError(f"invalid trusted custom host {raw!r}: {exc}") from None
        if isinstance(found, str):
            names.add(found)
        else:
            nets.append(found if isinstance(found, (IPv4Network, IPv6Network)) else ip_network(found))
    return frozenset(names), tuple(nets)


def parse_trusted_hosts(value: str | None) -> frozenset[str]:
    """Comma-separated ``TRUSTED_CUSTOM_HOSTS`` (hostnames, IPs, CIDRs) -> trusted set; ValueError if
    malformed. None means the default (loopback), "" means trust nothing."""
    if value is None:
        return DEFAULT_TRUSTED_HOSTS
    hosts = frozenset(h.strip().lower() for h in value.split(",") if h.strip())
    _compile_trusted(hosts)  # validate at startup rather than on the first request
    return hosts


def is_trusted(host: IPAddress | str, trusted: frozenset[str]) -> bool:
    names, nets = _compile_trusted(frozenset(trusted))
    if isinstance(host, str):
        return host in names
    candidates = [host] + ([host.ipv4_mapped] if isinstance(host, IPv6Address) and host.ipv4_mapped else [])
    return any(ip.version == net.version and ip in net for ip in candidates for net in nets)


def check_custom_host(
    url: str, trusted_hosts: frozenset[str] = DEFAULT_TRUSTED_HOSTS, *, param: str = "custom_host"
) -> str:
    """Return ``url`` normalised (no trailing slash) or raise UnsafeCustomHost (400). Messages never
    echo userinfo: ``@`` in the authority is refused, and the host is quoted only if the URL has no ``@``."""
    def refuse(why: str) -> UnsafeCustomHost:
        return UnsafeCustomHost(f"custom_host refused: {why}", param=param)

    if not isinstance(url, str) or not url:
        raise refuse("must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"longer than {MAX_URL_LENGTH} characters")
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        raise refuse("must be printable ASCII without whitespace or control characters")
    if "\\" in url:
        raise refuse("must not contain backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise refuse("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        raise refuse("must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise refuse("credentials (user:password@) are not allowed in the URL")
    if "?" in url or "#" in url:
        raise refuse("must be a base URL without query string or fragment")
    match = _AUTHORITY.fullmatch(parts.netloc)
    if not match or not (match[1] or match[3]):
        raise refuse("a host (and optional numeric port) is required")
    port = match[2] if match[1] is not None else match[4]
    if port and (len(port) > 5 or not 1 <= int(port) <= 65535):
        raise refuse("port must be between 1 and 65535")
    raw_host = (match[1] or match[3]).lower()
    shown = raw_host if "@" not in url else "(host)"
    if match[1] is not None and ("%" in raw_host or raw_host.startswith("v")):
        raise refuse("IPv6 zone ids and IPvFuture literals are not allowed")
    try:
        host = IPv6Address(raw_host) if match[1] is not None else _classify(raw_host.removesuffix("."))
    except ValueError as exc:
        why = "is not a valid IPv6 address" if match[1] is not None else str(exc)
        raise refuse(f"host {shown!r} {why}") from None
    if not is_trusted(host, trusted_hosts):
        refusal = _name_refusal(host) if isinstance(host, str) else ip_refusal(host)
        if refusal:
            label = f"{shown} = {host}" if isinstance(host, IPv4Address) and shown != str(host) else shown
            raise refuse(f"{label!r} is not allowed: {refusal}; add it to TRUSTED_CUSTOM_HOSTS to allow it")
    netloc = f"[{host.compressed}]" if isinstance(host, IPv6Address) else str(host)
    return f"{parts.scheme}://{netloc}{f':{int(port)}' if port else ''}{parts.path.rstrip('/')}"


# Connect-time half: applied by the upstream transports to what a hostname resolves to.
def _allowed(address: str, trusted: frozenset[str]) -> bool:
    try:
        ip = ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip_refusal(ip) is None or is_trusted(ip, trusted)


def allowed_addresses(host: str, addresses: list[str], trusted: frozenset[str]) -> list[str]:
    """The addresses of ``host`` that may be contacted; OSError when none may."""
    if is_trusted(host.lower().rstrip("."), trusted):
        return addresses
    allowed = [a for a in addresses if _allowed(a, trusted)]
    if not allowed:
        # Reported as a connection error: the attempt becomes a 502.
        raise OSError(f"{host} resolves only to non-public addresses")
    return allowed
