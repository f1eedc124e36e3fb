"""Keeps provider keys out of what leaves the gateway, including keys an upstream echoes back.

One ``Scrubber`` is built per request from the request's secrets; it scrubs bodies, header
values and streams, replacing every occurrence of a secret with ``[REDACTED]``.

What matches
------------
* A secret's plain UTF-8 form, and every JSON-escaped form of it: each character may be
  written ``\\uXXXX`` (either hex case; astral characters as a surrogate pair) independently of
  its neighbours, ``/`` may be ``\\/``, and ``"``, ``\\``, tab, backspace and form feed may use
  their two-character escapes. Escapes are read as a JSON decoder reads them: ``\\\\u0073`` is an
  escaped backslash followed by the text ``u0073``, not an ``s``. (One harmless excess: a secret
  starting with hex digits may also match from inside an unrelated ``\\uXXXX`` escape.)
* Secrets of 8 characters or more match anywhere. Shorter ones (a key like ``ollama`` or
  ``abc``) match only as whole key tokens, so that a common word inside another word is left
  alone. A key token is a run of ``[A-Za-z0-9_]`` that may hold ``.`` or ``-`` between two such
  characters (``v1.2``, ``sk-proj-x``): the characters beside the secret (after JSON decoding)
  must not be ``[A-Za-z0-9_]``, nor a ``.`` or ``-`` with one of those on its far side. The start
  or end of the text, a line end, a space, punctuation (including a sentence's final ``.``) and
  any non-ASCII character bound a token, and so does a longer secret's redacted match. So
  ``"key abc."`` loses its ``abc``, while ``abcdef``, ``xabc`` and ``abc.d`` keep it. An escape
  beside the secret counts as what it decodes to (``\\u0078abc`` is ``xabc``; ``\\nabc`` and
  ``\\u4e2dabc`` are bounded); when unsure (``\\\\nabc``) the scrubber errs on redacting.
* Where matches of several secrets overlap, their union is redacted.
* Secrets are limited to ``MAX_SECRET_LENGTH`` characters and may not contain CR or LF (keys
  are header-safe; the gateway refuses others at input with a 4xx): ``Scrubber`` raises
  ``ValueError`` for them. Header names are left alone (only values are scrubbed).

How, in linear time whatever the keys
-------------------------------------
RE2 (used for ``$regex`` conditions) was measured first, one pattern per secret
``(?:s|\\\\u0073)(?:k|\\\\u006[bB])...``: a self-overlapping key (``aaaa...``, 8 KB) makes its
DFA states as large as the key, the DFA runs out of memory and RE2 falls back to its NFA, which
costs key length x input (50 us per byte: a 2 MB stream took 100 s). A backtracking engine with
the same pattern is no better. Instead:

1. Escapes are decoded, not matched: those that decode to a character some secret uses (or, with
   short secrets, a key-token character) are decoded into a "view" of the text, with an offset
   map back to the raw bytes. Text without such escapes (nearly all) is its own view, at no cost.
   Before a view is built (a Python call per escape), a C-level decode (the ``raw_unicode_escape``
   codec, which reads backslash parity as JSON does) checks that a secret may be there at all,
   so a flood of escapes costs C speed unless it holds a secret.
2. Each secret is then a plain literal, searched with a compiled ``re`` literal pattern:
   CPython's ``re`` scans for a literal prefix with a Knuth-Morris-Pratt overlap table, linear
   for any key (the ``aaaa...`` key above: 20 MB in 0.07 s). Patterns are compiled lazily, only
   when a secret's first bytes occur at all (``re``'s own cache keeps them across requests).
3. The fast path first looks for a probe, at most the first ``_PROBE_LEN`` bytes of each
   secret, with ``bytes.find``, and for the escapes worth decoding (``\\u00`` for ASCII keys).
   ``bytes.find`` costs haystack x needle in the worst case for a short haystack (it switches to
   its linear Two-Way search only for long ones), so it only ever gets a short needle: its cost
   per byte is bounded by the probe length, whatever the key.

Streams are scrubbed line by line (a secret never spans a line end): only an incomplete line is
held back, and one longer than ``MAX_PENDING_LINE`` is passed on except for its last ``hold``
bytes (the longest escaped form of any secret, plus one escaped character of context), cut at an
escape boundary, so a secret straddling the cut is still caught and memory stays bounded.
"""

from __future__ import annotations

import codecs
import functools
import re
from bisect import bisect_right
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from itertools import accumulate
from operator import add, sub

import re2 as _re2

from aigw.aclose import aclose
from aigw.upstream.sse_passthrough import MAX_PENDING_LINE, line_end

__all__ = ["MAX_PENDING_LINE", "MAX_SECRET_LENGTH", "REDACTED", "REDACTED_TEXT", "SHORT_SECRET", "Scrubber"]

REDACTED = b"[REDACTED]"
REDACTED_TEXT = REDACTED.decode()
MAX_SECRET_LENGTH = 8192  # characters; the gateway refuses longer provider keys at input (4xx)
SHORT_SECRET = 8  # secrets with fewer characters match only as whole tokens

_PROBE_LEN = 32  # bytes of a secret looked for with bytes.find before anything else
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_WORD = rb"[A-Za-z0-9_]"  # always part of a key token
_JOIN = rb"[.\-]"  # part of a key token only between two word characters ("v1.2", "sk-proj")
# Escapes left undecoded in the view (two widths: look-behinds need one width each).
_ESCAPES = (rb"\\[bfnrt\"/\\]", rb"\\u[0-9a-fA-F]{4}")
_BACKSLASH = 0x5C
# JSON's two-character escapes that a secret can need (\n and \r: a secret never holds them).
_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\t": "t"}
_SHORT_DECODE = {ord(letter): char.encode() for char, letter in _SHORT_ESCAPES.items()}
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")
_RE2_FROM = 16384  # texts at least this long test for escapes with RE2 (its per-call cost is higher)
_RE2_OPTIONS = _re2.Options()
_RE2_OPTIONS.encoding = _re2.Options.Encoding.LATIN1  # bytes in, bytes matched: no UTF-8 decoding
_RE2_OPTIONS.log_errors = False
_DECODED: dict[bytes, bytes] = {}  # escape -> its UTF-8 bytes (bounded: see _decode_escape)
_KEEP = "aigw.redact.keep"  # a decode error handler that keeps the undecodable bytes as they are


def _keep_undecodable(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_KEEP, _keep_undecodable)


def _hex_class(digit: str) -> str:
    return f"[{digit}{digit.upper()}]" if digit.isalpha() else digit


def _hex_alternatives(codes: list[int]) -> str:
    """A regex matching the 4-hex-digit form (any case) of each code: their common leading digits
    as a literal (``re`` then scans for ``\\u00`` with its fast literal-prefix search), then the
    rest grouped by all but the last digit."""
    forms = [f"{code:04x}" for code in codes]
    common = 0
    while common < 3 and len({f[common] for f in forms}) == 1:
        common += 1
    groups: dict[str, set[str]] = {}
    for form in forms:
        groups.setdefault(form[common:3], set()).add(form[3])
    parts = []
    for head, lasts in sorted(groups.items()):
        last = "".join(sorted({d for x in lasts for d in (x, x.upper())}))
        parts.append("".join(_hex_class(d) for d in head) + (f"[{last}]" if len(last) > 1 else last))
    return "".join(_hex_class(d) for d in forms[0][:common]) + "(?:" + "|".join(parts) + ")"


@functools.lru_cache(maxsize=64)
def _escape_scan(chars: frozenset[str]) -> tuple[re.Pattern[bytes], tuple[bytes, ...], _re2._Regexp | None]:
    """The escapes that decode to one of ``chars``; the byte strings one of which every such escape
    contains (a cheap test for "maybe an escape worth decoding"); and that test as one RE2 pattern."""
    bmp = sorted(ord(c) for c in chars if ord(c) < 0x10000)
    astral = sorted(ord(c) for c in chars if ord(c) >= 0x10000)
    shorts = sorted(_SHORT_ESCAPES[c] for c in chars if c in _SHORT_ESCAPES)
    alternatives = []
    needles: list[bytes] = []
    for code in astral:  # a surrogate pair, before the BMP forms
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        alternatives.append(f"\\\\u{_hex_alternatives([high])}\\\\u{_hex_alternatives([low])}")
    if bmp:
        alternatives.append(f"\\\\u{_hex_alternatives(bmp)}")
    if astral or bmp:
        needles.append(b"\\u00" if not astral and bmp[-1] < 0x100 else b"\\u")
    if shorts:
        alternatives.append("\\\\[" + "".join(re.escape(s) for s in shorts) + "]")
        needles.extend(b"\\" + s.encode() for s in shorts)
    if not alternatives:
        return re.compile(rb"(?!)"), (), None
    # All needles start with a backslash, so RE2 skips to candidates with memchr: on large texts
    # full of other escapes (\n, \") one RE2 pass beats one bytes.find per short needle.
    needles_re2 = _re2.compile(b"|".join(_re2.escape(n) for n in needles), options=_RE2_OPTIONS)
    return re.compile("|".join(alternatives).encode()), tuple(needles), needles_re2


def _decode_escape(token: bytes) -> bytes:
    """The UTF-8 bytes of an escape (callers look in ``_DECODED`` first)."""
    if token[1] != 0x75:  # "u"
        decoded = _SHORT_DECODE[token[1]]
    else:
        code = int(token[2:6], 16)
        if len(token) == 12:
            code = 0x10000 + ((code - 0xD800) << 10) + (int(token[8:12], 16) - 0xDC00)
        decoded = chr(code).encode("utf-8", "surrogatepass")
    if len(_DECODED) < 4096:
        _DECODED[token] = decoded
    return decoded


def _backslashes_before(data: bytes, i: int) -> int:
    """How many backslashes immediately precede ``data[i]`` (linear in that count)."""
    count = 0
    while i - count > 0 and data[i - count - 1] == _BACKSLASH:
        lo = max(0, i - count - 256)
        window = data[lo : i - count]
        run = len(window) - len(window.rstrip(b"\\"))
        count += run
        if run < len(window):
            break
    return count


def _token_len(data: bytes, j: int) -> int:
    """Length of the JSON token starting at the (unescaped) backslash ``data[j]``."""
    nxt = data[j + 1 : j + 2]
    if nxt == b"u" and _HEX4.fullmatch(data, j + 2, j + 6):
        if data[j + 2 : j + 4].lower() in (b"d8", b"d9", b"da", b"db") and data[j + 6 : j + 8] == b"\\u" \
                and _HEX4.fullmatch(data, j + 8, j + 12) and data[j + 8 : j + 10].lower() in (b"dc", b"dd", b"de", b"df"):
            return 12
        return 6
    if nxt and nxt in b'"\\/bfnrt':
        return 2
    return 1


def _token_around(data: bytes, c: int, lo: int) -> tuple[int, int]:
    """The JSON token holding ``data[c - 1]``: (start, end), where end may pass ``c``.

    ``lo`` is a known token boundary before ``c``. Tokens are escapes (``\\uXXXX``, a surrogate
    pair of them, ``\\/``, ``\\\\``, ...) and single bytes; an escape is at most 12 bytes.
    """
    for j in range(c - 1, max(lo, c - 12) - 1, -1):
        if data[j] != _BACKSLASH:
            continue
        # The last backslash before c: what token is it part of?
        if _backslashes_before(data, j) % 2:
            j -= 1  # the second half of a \\ pair
        elif j >= 6 and data[j - 6] == _BACKSLASH and _token_len(data, j - 6) == 12 \
                and _backslashes_before(data, j - 6) % 2 == 0:
            j -= 6  # the low half of a surrogate pair
        end = j + _token_len(data, j)
        return (j, end) if end >= c else (c - 1, c)
    return c - 1, c


def _whole_token(literal: bytes) -> bytes:
    """Assertions, placed after ``literal``, that it is a whole key token (see the module docstring).

    Look-behinds are fixed-width, so each case repeats the literal. In the view every escape of a
    token character has been decoded, so an escape still there stands for a non-token character.
    """
    def after(prefix: bytes) -> bytes:
        return b"(?<=" + prefix + literal + b")"

    def not_after(prefix: bytes) -> bytes:
        return b"(?<!" + prefix + literal + b")"

    left = b"|".join([
        not_after(_WORD) + not_after(_JOIN),  # start of text, or a non-token character
        after(_JOIN) + not_after(_WORD + _JOIN),  # a joiner with no word character before it
        *(after(e) for e in _ESCAPES),
        *(after(e + _JOIN) for e in _ESCAPES),
    ])
    right = b"(?!" + _WORD + b"|" + _JOIN + _WORD + b")"
    return b"(?:" + left + b")" + right


class _Secret:
    __slots__ = ("plain", "probe", "short", "max_raw", "_pattern")

    def __init__(self, text: str) -> None:
        if len(text) > MAX_SECRET_LENGTH:
            raise ValueError(f"a secret is longer than {MAX_SECRET_LENGTH} characters")
        if "\n" in text or "\r" in text:
            raise ValueError("a secret contains a line break")
        try:
            self.plain = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a secret is not valid Unicode text") from None
        self.short = len(text) < SHORT_SECRET
        self.probe = self.plain if self.short else self.plain[:_PROBE_LEN]
        # The longest raw form: every character escaped (12 bytes for a surrogate pair).
        astral = 0 if text.isascii() or max(text) < "\U00010000" else sum(1 for c in text if c >= "\U00010000")
        self.max_raw = 6 * (len(text) + astral)
        self._pattern: re.Pattern[bytes] | None = None

    @property
    def pattern(self) -> re.Pattern[bytes]:
        if self._pattern is None:
            literal = re.escape(self.plain)
            if self.short:
                literal += _whole_token(literal)
            # A pure literal compiles to a Knuth-Morris-Pratt prefix scan; the short form starts
            # with its literal too, so the scan finds candidates and the assertions check them.
            self._pattern = re.compile(literal)
        return self._pattern


class _View:
    """``raw`` with the escapes worth decoding decoded (``text``), and the offset map between the two.

    ``text`` is built by one substitution whose callback only records where each escape was; the
    map is derived from that record with C-level ``map``/``accumulate``, and only after a match.
    """

    __slots__ = ("raw", "text", "_raw_starts", "_raw_ends", "_sizes", "_starts", "_ends")

    def __init__(self, raw: bytes, scan: re.Pattern[bytes] | None) -> None:
        self.raw = raw
        self.text = raw
        self._starts: list[int] | None = None
        self._raw_starts: list[int] = []
        if scan is None:
            return
        raw_starts, raw_ends, sizes = self._raw_starts, [], []
        cache = _DECODED

        def decode(m: re.Match[bytes]) -> bytes:
            i = m.start()
            if i and raw[i - 1] == _BACKSLASH and _backslashes_before(raw, i) % 2:
                return m.group()  # this backslash is itself escaped: the rest is plain text
            token = m.group()
            decoded = cache.get(token) or _decode_escape(token)
            raw_starts.append(i)
            raw_ends.append(m.end())
            sizes.append(len(decoded))
            return decoded

        text = scan.sub(decode, raw)
        if raw_starts:
            self.text = text
            self._raw_ends, self._sizes = raw_ends, sizes

    def _map(self) -> None:
        shifts = accumulate(map(sub, self._sizes, map(sub, self._raw_ends, self._raw_starts)), initial=0)
        self._starts = list(map(add, self._raw_starts, shifts))  # view offset of each decoded escape
        self._ends = list(map(add, self._starts, self._sizes))

    def _offsets(self) -> tuple[list[int], list[int]]:
        if self._starts is None:
            self._map()
        assert self._starts is not None
        return self._starts, self._ends

    def to_raw(self, v: int, end: bool) -> int:
        if not self._raw_starts:
            return v
        starts, ends = self._offsets()
        i = bisect_right(starts, v) - 1
        if i < 0:
            return v
        if v < ends[i]:  # inside a decoded character: take the whole escape
            return self._raw_ends[i] if end and v > starts[i] else self._raw_starts[i]
        return self._raw_ends[i] + v - ends[i]

    def to_view(self, r: int) -> int:
        if not self._raw_starts or r == 0:
            return r
        starts, ends = self._offsets()
        i = bisect_right(self._raw_starts, r) - 1
        if i < 0:
            return r
        if r < self._raw_ends[i]:
            return starts[i]
        return ends[i] + r - self._raw_ends[i]


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _assemble(data: bytes, spans: list[tuple[int, int]], start: int, stop: int,
              replace: Callable[[int, int], bytes] = lambda s, e: REDACTED) -> bytes:
    """``data[start:stop]`` with each of the (sorted, disjoint) ``spans`` replaced."""
    parts = []
    pos = start
    for s, e in spans:
        parts.append(data[pos:s])
        parts.append(replace(s, e))
        pos = e
    parts.append(data[pos:stop])
    return b"".join(parts)


# The builtin, for annotations inside ``Scrubber``, whose ``bytes`` method shadows the name there.
_Bytes = bytes


class Scrubber:
    """Scrubs one request's secrets from bodies, header values and streams (see the module docstring)."""

    __slots__ = ("_secrets", "_scan", "_needles", "_needles_re2", "_hold", "_presence", "_text_probes")

    def __init__(self, secrets: Iterable[str | None]) -> None:
        unique = {s for s in secrets if s}
        self._secrets = sorted((_Secret(s) for s in unique), key=lambda s: (s.short, -len(s.plain)))
        self._text_probes = tuple(s.probe.decode("utf-8", "ignore") for s in self._secrets)
        chars: set[str] = set()
        for s in unique:
            chars.update(s)
        if any(s.short for s in self._secrets):
            chars |= _TOKEN_CHARS  # escapes beside a short key decide whether it is a whole token
        self._scan, self._needles, self._needles_re2 = _escape_scan(frozenset(chars))
        # The C-level presence test (see _decoded_presence) needs ASCII secrets without "\\".
        ascii_only = all(s.isascii() and "\\" not in s for s in unique)
        self._presence = tuple((b"\\" + _SHORT_ESCAPES[c].encode(), c.encode()) for c in sorted(chars)
                               if c in _SHORT_ESCAPES) if ascii_only else None
        # Bytes of an over-long line held back: the longest raw match plus one escaped character
        # of right context (which decides whether a short secret ends a token).
        self._hold = max((s.max_raw for s in self._secrets), default=0) + 12

    @property
    def active(self) -> bool:
        """False when there is nothing to scrub: callers may skip the scrubber entirely."""
        return bool(self._secrets)

    # ----- one-shot ------------------------------------------------------------------------

    def bytes(self, data: _Bytes) -> _Bytes:
        if not self._secrets or not data:
            return data
        if self._escaped(data):
            view = _View(data, self._scan)
            if view.text is not data:
                spans = self._spans(view, 0)
                return _assemble(data, spans, 0, len(data)) if spans else data
        # No escape to decode. The usual case, no secret's probe occurs, costs one find per secret.
        found = [secret for secret in self._secrets if data.find(secret.probe) >= 0]
        if not found:
            return data
        if len(found) == 1:  # a C-level substitution (one linear pass)
            return found[0].pattern.sub(REDACTED, data)
        spans = self._spans(_View(data, None), 0)  # several: the union of their matches
        return _assemble(data, spans, 0, len(data)) if spans else data

    def text(self, s: str) -> str:
        if not self._secrets or not s:
            return s
        raw = s.encode("utf-8", "surrogatepass")
        out = self.bytes(raw)
        return s if out is raw else out.decode("utf-8", "surrogatepass")

    def headers(self, h: Mapping[str, str]) -> dict[str, str]:
        """Header values scrubbed (names are left alone: a redacted name would be an invalid one)."""
        if not self._secrets or not h:
            return dict(h)
        # All values at once first (joined by a line end, which no secret spans): nearly always no
        # probe occurs and no backslash either (a header holding JSON may carry escaped forms), and
        # that costs a few C-level searches.
        joined = "\n".join(h.values())
        if "\\" not in joined and not any(probe in joined for probe in self._text_probes):
            return dict(h)
        return {name: self.text(value) for name, value in h.items()}

    # ----- matching ------------------------------------------------------------------------

    def _spans(self, view: _View, pos: int) -> list[tuple[int, int]]:
        """Raw spans to redact in ``view.raw``, of matches starting at ``pos`` or later."""
        text, raw = view.text, view.raw
        decoded = text is not raw
        vpos = view.to_view(pos)
        spans: list[tuple[int, int]] = []
        masked: list[tuple[int, int]] = []  # view spans of long secrets' matches
        for secret in self._secrets:  # long ones first
            if secret.short and masked:
                # A long secret's match bounds a short one's token, as its [REDACTED] will:
                # blank it with line ends (never part of a secret, never a token character).
                text = _assemble(text, _merge(masked), 0, len(text), lambda s, e: b"\n" * (e - s))
                masked = []
            if text.find(secret.probe) >= 0:
                for m in secret.pattern.finditer(text, vpos):
                    if decoded:
                        spans.append((view.to_raw(m.start(), False), view.to_raw(m.end(), True)))
                    else:
                        spans.append(m.span())
                    if not secret.short:
                        masked.append(m.span())
            # The plain form may overlap text that looked like an escape (a secret holding "u0073").
            if decoded and not secret.short and raw.find(secret.probe) >= 0:
                for m in secret.pattern.finditer(raw, pos):
                    spans.append(m.span())
                    masked.append((view.to_view(m.start()), view.to_view(m.end())))
        return _merge(spans)

    def _escaped(self, data: _Bytes) -> bool:
        """Whether ``data`` holds an escape worth decoding and, decoded, maybe a secret.

        Cheap tests first. ``bytes.find``, not ``in``: the same search without ``in``'s
        buffer-protocol overhead (about 0.6 us a call here, which dominated small SSE chunks).
        """
        if len(data) > 1024:
            if data.find(b"\\") < 0:  # memchr: most bodies without escapes go no further
                return False
            if len(data) >= _RE2_FROM and self._needles_re2 is not None:
                if self._needles_re2.search(data) is None:
                    return False
                return self._scan.search(data) is not None and self._decoded_presence(data)
        for needle in self._needles:
            if data.find(needle) >= 0:
                return self._scan.search(data) is not None and self._decoded_presence(data)
        return False

    def _decoded_presence(self, data: _Bytes) -> bool:
        """Whether a secret may occur in ``data`` once decoded, tested at C speed.

        Building the exact view costs a Python call per escape, which a flood of escapes of key
        characters (20 MB of ``\\u0061``) would turn into seconds. So first: decode every
        ``\\uXXXX`` with the ``raw_unicode_escape`` codec (which, like JSON, reads ``\\\\u0073``
        as an escaped backslash), the two-character escapes of secret characters with
        ``bytes.replace``, and search that for the secrets (long ones with their linear literal
        pattern). It decodes at least every escape JSON would, so a secret it misses is not
        there. Only for ASCII secrets without backslashes (non-ASCII text is read as Latin-1).
        """
        if self._presence is None:
            return True
        for escape, char in self._presence:
            data = data.replace(escape, char)
        text = data.decode("raw_unicode_escape", _KEEP).encode("latin-1", "replace")
        for secret in self._secrets:
            if text.find(secret.probe) >= 0 and (secret.short or secret.pattern.search(text) is not None):
                return True
        return False

    def _spans_from(self, data: _Bytes, pos: int) -> list[tuple[int, int]]:
        return self._spans(_View(data, self._scan if self._escaped(data) else None), pos)

    # ----- streams -------------------------------------------------------------------------

    async def stream(self, chunks: AsyncIterator[_Bytes]) -> AsyncGenerator[_Bytes, None]:
        """Scrub a stream line by line; only an incomplete line is held back (see the module docstring)."""
        try:
            if not self._secrets:
                async for chunk in chunks:
                    yield chunk
                return
            pending: list[_Bytes] = []  # chunks of the incomplete last line
            pending_len = 0
            context = b""  # after an over-long line was cut: the token before the cut (already sent)
            async for chunk in chunks:
                if not chunk:
                    continue
                end = line_end(chunk)
                if end:
                    if pending or context:
                        pending.append(chunk[:end])
                        block = b"".join(pending)
                        out = self._finish(context, block) if context else self.bytes(block)
                        context = b""
                    else:
                        out = self.bytes(chunk if end == len(chunk) else chunk[:end])
                    rest = chunk[end:]
                    pending, pending_len = ([rest], len(rest)) if rest else ([], 0)
                    if out:
                        yield out
                else:
                    pending.append(chunk)
                    pending_len += len(chunk)
                if pending_len > MAX_PENDING_LINE:
                    out, context, rest = self._cut(context, b"".join(pending))
                    pending, pending_len = [rest], len(rest)
                    if out:
                        yield out
            if pending:
                out = self._finish(context, b"".join(pending))
                if out:
                    yield out
        finally:
            # Closed early (client gone): close the source now, so the upstream is released at once.
            await aclose(chunks)

    def _finish(self, context: _Bytes, data: _Bytes) -> _Bytes:
        """``data`` scrubbed, read after ``context`` (the token sent just before it, for boundaries)."""
        if not context:
            return self.bytes(data)
        full = context + data
        return _assemble(full, self._spans_from(full, len(context)), len(context), len(full))

    def _cut(self, context: _Bytes, data: _Bytes) -> tuple[_Bytes, _Bytes, _Bytes]:
        """Scrub an over-long incomplete line: (what can go out, the token before the cut, what stays held)."""
        lo = len(context)
        full = context + data
        spans = self._spans_from(full, lo)
        cut = len(full) - self._hold  # a match not complete yet starts after this
        moved = True
        while moved and cut > lo:
            moved = False
            start, end = _token_around(full, cut, lo)
            if end > cut:  # never inside an escape or a \\ pair: the held rest is read afresh
                cut, moved = start, True
            for start, end in spans:  # a match across the cut stays held whole, to be found again
                if start < cut < end:
                    cut, moved = start, True
        if cut <= lo:  # cannot happen while MAX_PENDING_LINE far exceeds the hold
            return b"", context, data
        out = _assemble(full, [(s, e) for s, e in spans if e <= cut], lo, cut)
        start, _ = _token_around(full, cut, lo)
        return out, full[start:cut], full[cut:]


@functools.lru_cache(maxsize=256)
def _scrubber(secrets: tuple[str | None, ...]) -> Scrubber:
    return Scrubber(secrets)


def scrubber_for(secrets: tuple[str | None, ...]) -> Scrubber:
    """The scrubber of a set of secrets, built once: requests repeat the same few keys, and
    building one costs ~15 us (a scrubber holds no per-use state)."""
    return _scrubber(secrets)
