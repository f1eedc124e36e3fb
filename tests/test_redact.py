"""The scrubber keeps secrets out of bodies, header values and streams, in every JSON-escaped form."""

import json
import random
import re

import pytest

from aigw import redact
from aigw.redact import MAX_PENDING_LINE, MAX_SECRET_LENGTH, REDACTED, Scrubber

KEY = "sk-abcdefghijklmnop"


def escaped(text: str, which=lambda i: True, upper: bool = False, rnd: random.Random | None = None) -> str:
    """``text`` with the characters at the chosen indexes written as \\uXXXX escapes
    (hex digits upper-case, or each digit's case drawn from ``rnd``)."""
    out = []
    for i, c in enumerate(text):
        if which(i):
            digits = f"{ord(c):04x}"
            if rnd is not None:
                digits = "".join(d.upper() if rnd.random() < 0.5 else d for d in digits)
            out.append("\\u" + (digits.upper() if upper else digits))
        else:
            out.append(c)
    return "".join(out)


async def source(chunks, log=None):
    for c in chunks:
        if log is not None:
            log.append(c)
        yield c


async def collect(chunks, secrets):
    return [c async for c in Scrubber(secrets).stream(source(chunks))]


# ----- bodies ------------------------------------------------------------------------------


def test_plain_key_every_occurrence_and_missing_secrets_ignored():
    body = f'{{"k": "{KEY}", "again": "{KEY}"}}'.encode()
    scrubber = Scrubber([KEY, None, ""])
    assert scrubber.bytes(body) == b'{"k": "[REDACTED]", "again": "[REDACTED]"}'
    assert Scrubber([None, ""]).bytes(body) is body
    assert not Scrubber([None, ""]).active and not Scrubber([]).active and scrubber.active


def test_a_body_without_the_key_comes_back_as_the_same_object():
    body = json.dumps({"content": "line one\nline \"two\" \\u0073 caf\u00e9", "n": 1}).encode()
    assert Scrubber([KEY]).bytes(body) is body
    assert Scrubber([KEY]).bytes(body * 1000) == body * 1000  # the large-text path (RE2 pre-test)


@pytest.mark.parametrize("upper", [False, True])
def test_fully_escaped_key_is_scrubbed(upper):
    body = f'{{"k": "{escaped(KEY, upper=upper)}"}}'.encode()
    out = Scrubber([KEY]).bytes(body)
    assert out == b'{"k": "[REDACTED]"}'


def test_every_mix_of_escaped_and_plain_characters_is_scrubbed_once_decoded():
    rnd = random.Random(1)
    scrubber = Scrubber([KEY])
    for _ in range(300):
        mask = [rnd.random() < 0.5 for _ in KEY]
        text = escaped(KEY, mask.__getitem__, rnd=rnd)
        body = ('{"echo": "before ' + text + ' after"}').encode()
        decoded = json.loads(scrubber.bytes(body))["echo"]
        assert KEY not in decoded, text
        assert decoded == "before [REDACTED] after", text


def test_escaped_slash_in_a_key():
    key = "ab/cdefgh/ij"
    for form in ["ab\\/cdefgh\\/ij", "ab\\u002fcdefgh/ij", "\\u0061b\\/cdefgh\\u002Fij"]:
        body = ('{"k": "' + form + '", "url": "https:\\/\\/example.com\\/"}').encode()
        assert json.loads(Scrubber([key]).bytes(body)) == {"k": "[REDACTED]", "url": "https://example.com/"}, form


def test_escaped_slash_and_quote_and_backslash_in_a_key():
    key = 'ab/cd"ef\\gh-12345'
    body = json.dumps({"k": key}).encode()  # json.dumps writes \" and \\
    assert json.loads(Scrubber([key]).bytes(body)) == {"k": "[REDACTED]"}
    body = ('{"k": "' + json.dumps(key)[1:-1].replace("/", "\\/") + '"}').encode()
    assert json.loads(Scrubber([key]).bytes(body)) == {"k": "[REDACTED]"}


def test_astral_characters_as_surrogate_pairs():
    key = "key-\U0001f600-0123456789"
    body = json.dumps({"k": key}).encode()  # ensure_ascii: the emoji becomes \ud83d\ude00
    assert b"\\ud83d\\ude00" in body
    assert json.loads(Scrubber([key]).bytes(body)) == {"k": "[REDACTED]"}
    assert json.loads(Scrubber([key]).bytes(json.dumps({"k": key}, ensure_ascii=False).encode())) == {"k": "[REDACTED]"}


def test_an_escaped_backslash_does_not_start_an_escape():
    # JSON "\\u0073k-..." is a backslash followed by the text "u0073k-...": the key is not there.
    body = ('{"k": "\\\\' + escaped(KEY, lambda i: i == 0)[1:] + '"}').encode()
    assert body.count(b"\\") == 2
    assert Scrubber([KEY]).bytes(body) == body
    # Three backslashes: an escaped backslash, then a real \u0073.
    body = ('{"k": "\\\\' + escaped(KEY, lambda i: i == 0) + '"}').encode()
    assert json.loads(Scrubber([KEY]).bytes(body)) == {"k": "\\[REDACTED]"}


def test_overlapping_secrets_are_redacted_as_their_union():
    a, b = "abcdefgh12", "gh12345678"
    assert Scrubber([a, b]).bytes(b"x abcdefgh12345678 y") == b"x [REDACTED] y"


def test_text_and_headers():
    scrubber = Scrubber([KEY])
    assert scrubber.text(f"key={KEY}!") == "key=[REDACTED]!"
    assert scrubber.text("caf\u00e9") == "caf\u00e9"
    headers = {"x-echo": f"key={KEY}", "x-escaped": escaped(KEY, lambda i: i % 3 == 0), "x-ok": "fine"}
    assert scrubber.headers(headers) == {"x-echo": "key=[REDACTED]", "x-escaped": "[REDACTED]", "x-ok": "fine"}
    assert Scrubber([]).headers(headers) == headers


# ----- short secrets: whole tokens only ----------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('"key abc."', '"key [REDACTED]."'),
    ("abc", "[REDACTED]"),
    ("[abc]", "[[REDACTED]]"),
    ("abc-", "[REDACTED]-"),
    (".abc, abc", ".[REDACTED], [REDACTED]"),
    ("caf\u00e9 abc\u00e9", "caf\u00e9 [REDACTED]\u00e9"),
    ("abcdef", "abcdef"),
    ("xabc", "xabc"),
    ("abc_d", "abc_d"),
    ("abc.def", "abc.def"),
    ("v1.abc", "v1.abc"),
    ("a-abc", "a-abc"),
    # escapes count as what they decode to
    ("\\nabc", "\\n[REDACTED]"),
    ("\\u4e2dabc", "\\u4e2d[REDACTED]"),
    ("abc\\u4E2D", "[REDACTED]\\u4E2D"),
    ("\\u0078abc", "\\u0078abc"),
    ("abc\\u0078", "abc\\u0078"),
    ("abc\\u002ed", "abc\\u002ed"),
    ("\\u0061\\u0062\\u0063 ok", "[REDACTED] ok"),
    ("ab\\u0063d", "ab\\u0063d"),
])
def test_short_secret_matches_only_as_a_whole_token(text, expected):
    assert Scrubber(["abc"]).text(text) == expected


def test_short_key_like_ollama_in_json():
    body = json.dumps({"content": "your key is ollama.", "model": "ollamas", "k": "ollama"}).encode()
    assert json.loads(Scrubber(["ollama"]).bytes(body)) == {
        "content": "your key is [REDACTED].", "model": "ollamas", "k": "[REDACTED]"}


# ----- limits ------------------------------------------------------------------------------


def test_secrets_longer_than_the_limit_raise():
    Scrubber(["k" * MAX_SECRET_LENGTH])
    with pytest.raises(ValueError):
        Scrubber(["k" * (MAX_SECRET_LENGTH + 1)])


@pytest.mark.parametrize("bad", ["abc\ndefghij", "abcdefg\rhij"])
def test_secrets_with_line_breaks_raise(bad):
    with pytest.raises(ValueError):
        Scrubber([bad])


# ----- streams -----------------------------------------------------------------------------


STREAMS = {
    "plain": f'data: {{"echo": "{KEY}"}}\n\ndata: [DONE]\n\n',
    "escaped": f'data: {{"e": "{escaped(KEY, upper=True)}"}}\n\n',
    "mixed": f'data: {{"e": "x{escaped(KEY, lambda i: i % 2)}y"}}\r\n\r\n',
}


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_stream_catches_a_key_split_at_every_point(name):
    data = STREAMS[name].encode()
    expected = Scrubber([KEY]).bytes(data)
    assert KEY.encode() not in expected and expected.count(REDACTED) >= 1
    for i in range(len(data) + 1):
        assert b"".join(await collect([data[:i], data[i:]], [KEY])) == expected, i
        for j in range(i, len(data) + 1, 3 if name != "plain" else 1):
            assert b"".join(await collect([data[:i], data[i:j], data[j:]], [KEY])) == expected, (i, j)


async def test_stream_short_key_split_at_every_point():
    data = b'data: {"k": "abc", "w": "abcdef", "x": "\\u0061bc."}\n\n'
    expected = b'data: {"k": "[REDACTED]", "w": "abcdef", "x": "[REDACTED]."}\n\n'
    assert Scrubber(["abc"]).bytes(data) == expected
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            assert b"".join(await collect([data[:i], data[i:j], data[j:]], ["abc"])) == expected, (i, j)


async def test_stream_emits_each_completed_line_at_once_and_holds_only_an_incomplete_one():
    log: list[bytes] = []
    stream = Scrubber([KEY]).stream(source([b"data: one\n\n", b"data: sk-abc", b"defghijklmnop\n\n"], log))
    assert await stream.__anext__() == b"data: one\n\n"
    assert len(log) == 1  # out before the next chunk was even read
    assert await stream.__anext__() == b"data: [REDACTED]\n\n"  # the incomplete line waited for its end
    assert len(log) == 3
    await stream.aclose()


@pytest.mark.parametrize("secrets", [[], [None]])
async def test_stream_without_secrets_passes_chunks_through(secrets):
    assert await collect([b"a", b"b"], secrets) == [b"a", b"b"]


async def test_stream_without_line_end_is_flushed_scrubbed_at_the_end():
    assert b"".join(await collect([b"tail ", KEY.encode()[:5], KEY.encode()[5:]], [KEY])) == b"tail [REDACTED]"


async def test_closing_the_scrubbed_stream_closes_its_source_at_once():
    for secrets in ([KEY], []):
        closed = []

        async def src(closed=closed):
            try:
                yield b"one\n"
                yield b"two\n"
            finally:
                closed.append(True)

        stream = Scrubber(secrets).stream(src())
        assert await stream.__anext__() == b"one\n"
        await stream.aclose()
        assert closed == [True]


# ----- the long-line bound -----------------------------------------------------------------


def _hold(secrets) -> int:
    return Scrubber(secrets)._hold


@pytest.mark.parametrize("form", ["plain", "escaped", "mixed"])
async def test_over_long_line_is_cut_and_a_key_straddling_the_cut_is_still_caught(form):
    key_raw = {"plain": KEY, "escaped": escaped(KEY, upper=True), "mixed": escaped(KEY, lambda i: i % 2)}[form].encode()
    hold = _hold([KEY])
    head = b"x" * (MAX_PENDING_LINE - 10)
    for after in range(0, hold + len(key_raw) + 2, 3):  # bytes after the key; the cut is hold bytes from the end
        body = b" " + b"y" * 30 + b" " + key_raw + b" " + b"z" * after
        log: list[bytes] = []
        out = [c async for c in Scrubber([KEY]).stream(source([head, body, b"\n"], log))]
        joined = b"".join(out)
        assert joined == head + b" " + b"y" * 30 + b" [REDACTED] " + b"z" * after + b"\n", after
        assert len(out) == 2 and len(out[0]) >= len(head) + len(body) - hold - len(key_raw) - 12, after


@pytest.mark.parametrize(("before", "expected"), [(b"x", b"xabc"), (b" ", b" [REDACTED]"),
                                                   (b"\\u4e2d", b"\\u4e2d[REDACTED]"), (b"\\u0078", b"\\u0078abc")])
async def test_short_key_at_the_cut_keeps_its_left_context(before, expected):
    hold = _hold(["abc"])
    head = b"w " * ((MAX_PENDING_LINE - 10) // 2)
    for shift in range(-8, 9):  # the cut lands around the start of "abc"
        body = b" " * 20 + before + b"abc" + b" " * (hold - 3 + shift)
        out = [c async for c in Scrubber(["abc"]).stream(source([head, body, b"\n"]))]
        assert b"".join(out) == head + b" " * 20 + expected + b" " * (hold - 3 + shift) + b"\n", (before, shift)
        assert len(out) == 2


async def test_over_long_line_memory_stays_bounded():
    log: list[bytes] = []
    chunk = b"a" * 65536
    stream = Scrubber([KEY]).stream(source([chunk] * 64, log))  # 4 MiB, no line end
    seen = 0
    async for out in stream:
        seen += len(out)
        # whatever was read but not sent is at most the bound plus one chunk
        assert sum(map(len, log)) - seen <= MAX_PENDING_LINE + len(chunk)
    assert seen == 64 * len(chunk)


async def test_an_escape_is_never_split_by_the_cut():
    # Escapes around the cut: wherever it falls, the held rest starts at a token boundary
    # (never inside an escape, never between the two backslashes of an escaped backslash).
    key = "sk-0123456789"
    unit = b"\\\\" + escaped(key, upper=True).encode() + b"\\\\\\" + escaped(key).encode()[1:] + b" "
    assert Scrubber([key]).bytes(unit) == b"\\\\[REDACTED]\\\\[REDACTED] "
    for pad in range(len(unit)):  # moves the cut across every position of a unit
        line = b"x" * MAX_PENDING_LINE + unit * 3 + b"q" * pad
        out = [c async for c in Scrubber([key]).stream(source([line[:1000], line[1000:]]))]
        assert b"".join(out) == b"x" * MAX_PENDING_LINE + Scrubber([key]).bytes(unit * 3) + b"q" * pad, pad
        assert len(out) == 2


# ----- linear time, checked by counting work (timings live in bench/scrub.py) ---------------


async def test_stream_scans_each_byte_a_bounded_number_of_times(monkeypatch):
    scanned = []
    real_bytes, real_spans_from = Scrubber.bytes, Scrubber._spans_from

    def counting_bytes(self, data):
        scanned.append(len(data))
        return real_bytes(self, data)

    def counting_spans_from(self, data, pos):
        scanned.append(len(data))
        return real_spans_from(self, data, pos)

    monkeypatch.setattr(Scrubber, "bytes", counting_bytes)
    monkeypatch.setattr(Scrubber, "_spans_from", counting_spans_from)
    # A 3 MiB line in 1 KiB chunks (each once held back), then small events.
    line = (b"x" * 1018 + b"\\u0066") * (3 * 1024) + b"\n"  # "f" is a key character: views are built
    chunks = [line[i : i + 1024] for i in range(0, len(line), 1024)] + [b"data: e\n\n"] * 1000
    total = sum(map(len, chunks))
    out = [c async for c in Scrubber([KEY]).stream(source(chunks))]
    assert b"".join(out) == b"".join(chunks)
    hold = _hold([KEY])
    cuts = len(line) // (MAX_PENDING_LINE - 2 * hold) + 1
    assert sum(scanned) <= total + cuts * (hold + 24)  # held data is rescanned only up to the hold


def test_escape_decoding_costs_one_look_up_per_escape(monkeypatch):
    lookups = []

    class CountingCache(dict):
        def get(self, key, default=None):
            lookups.append(key)
            return super().get(key, default)

    monkeypatch.setattr(redact, "_DECODED", CountingCache())
    n = 5000
    body = ("\\u0066ox " * n).encode()  # "f" is a key character, but the key is not there:
    assert Scrubber([KEY]).bytes(body) is body
    assert lookups == []  # a C-level decode told so; no escape went through Python
    body = ("\\u0066ox " * n + escaped(KEY, lambda i: i % 2)).encode()
    assert Scrubber([KEY]).bytes(body).endswith(REDACTED)
    assert len(lookups) == n + len(KEY) // 2  # one pass over the escapes; the offset map reuses it


def test_long_secret_is_searched_as_a_pure_literal():
    # A literal compiles to re's Knuth-Morris-Pratt prefix scan: linear for any key, even one
    # that overlaps itself (RE2 and backtracking alternations are not; see the module docstring).
    key = "a" * 4096 + "b" + "a" * 4095
    secret = Scrubber([key])._secrets[0]
    assert secret.pattern.pattern == re.escape(key.encode())
    assert len(secret.probe) <= redact._PROBE_LEN  # bytes.find only ever gets a short needle
    body = b"a" * 100_000 + key.encode() + b"a" * 100_000
    assert Scrubber([key]).bytes(body) == b"a" * 100_000 + REDACTED + b"a" * 100_000


# ----- against a slow reference ------------------------------------------------------------


def _json_tokens(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, decoded UTF-8) for each token, reading escapes as a JSON decoder does."""
    tokens, i = [], 0
    hexdigits = b"0123456789abcdefABCDEF"
    while i < len(raw):
        if raw[i] == 0x5C and raw[i + 1 : i + 2] == b"u" and len(raw) >= i + 6 and all(c in hexdigits for c in raw[i + 2 : i + 6]):
            tokens.append((i, i + 6, chr(int(raw[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")))
            i += 6
        elif raw[i] == 0x5C and raw[i + 1 : i + 2] and raw[i + 1 : i + 2] in b'"\\/bfnrt':
            tokens.append((i, i + 2, {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(
                raw[i + 1 : i + 2], raw[i + 1 : i + 2])))
            i += 2
        else:
            tokens.append((i, i + 1, raw[i : i + 1]))
            i += 1
    return tokens


def _reference(raw: bytes, secret: str) -> bytes:
    """Slow and plain: redact the decoded occurrences (token-aligned) and the raw ones of a long secret."""
    target = secret.encode()
    tokens = _json_tokens(raw)
    spans = [m.span() for m in re.finditer(re.escape(target), raw)]
    k = 0
    while k < len(tokens):
        acc, j = b"", k
        while j < len(tokens) and len(acc) < len(target) and target.startswith(acc + tokens[j][2]):
            acc += tokens[j][2]
            j += 1
        if acc == target:
            spans.append((tokens[k][0], tokens[j - 1][1]))
            k = j
        else:
            k += 1
    spans.sort()
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out += [raw[pos:s], REDACTED]
        pos = e
    return b"".join(out) + raw[pos:]


def _random_text(rnd: random.Random, secret: str) -> bytes:
    pieces = []
    for _ in range(rnd.randrange(1, 12)):
        kind = rnd.randrange(6)
        if kind == 0:
            mask = [rnd.random() < 0.5 for _ in secret]
            pieces.append(escaped(secret, mask.__getitem__, rnd=rnd))
        elif kind == 1:
            pieces.append("\\" * rnd.randrange(1, 4))
        elif kind == 2:
            pieces.append(rnd.choice(["\\n", "\\u4e2d", '\\"', "\\/", "\\u0022", " ", "x", "\n", "caf\u00e9"]))
        elif kind == 3:
            part = secret[: rnd.randrange(len(secret))]
            pieces.append(escaped(part, lambda i: rnd.random() < 0.3))
        else:
            pieces.append("".join(rnd.choice(secret + "u0123456789abcdefABCDEF") for _ in range(rnd.randrange(1, 6))))
    return "".join(pieces).encode()


@pytest.mark.parametrize("secret", ["sk-abcdefgh", "ab/cd-0123", "aaaaaaaaa"])
async def test_random_texts_match_the_reference(secret):
    rnd = random.Random(secret)
    scrubber = Scrubber([secret])
    redacted = 0
    for _ in range(400):
        raw = _random_text(rnd, secret)
        expected = _reference(raw, secret)
        assert scrubber.bytes(raw) == expected, raw
        cuts = sorted(rnd.sample(range(len(raw) + 1), min(2, len(raw) + 1)))
        chunks = [raw[: cuts[0]], raw[cuts[0] : cuts[-1]], raw[cuts[-1] :]]
        assert b"".join([c async for c in scrubber.stream(source(chunks))]) == expected, (raw, cuts)
        assert secret.encode() not in b"".join(t[2] for t in _json_tokens(expected))  # nothing left once decoded
        redacted += expected != raw
    assert redacted > 100


async def test_random_texts_leave_no_whole_token_short_secret_once_decoded():
    secret = "ab-c"
    whole = re.compile(rb"(?<![A-Za-z0-9_])(?<![A-Za-z0-9_][.\-])ab-c(?![A-Za-z0-9_]|[.\-][A-Za-z0-9_])")
    rnd = random.Random(5)
    scrubber = Scrubber([secret])
    redacted = 0
    for _ in range(600):
        raw = _random_text(rnd, secret)
        out = scrubber.bytes(raw)
        assert not whole.search(b"".join(t[2] for t in _json_tokens(out))), (raw, out)
        assert b"".join([c async for c in scrubber.stream(source([raw[:7], raw[7:]]))]) == out
        redacted += out != raw
    assert redacted > 50


@pytest.mark.parametrize("secrets", [["aaaaaaaaa", "aa"], ["ab/cd-0123", "cd"], ['a"b\\c/defgh', "b\\c"]])
async def test_random_texts_with_long_and_short_secrets_leave_nothing_once_decoded(secrets):
    def whole(k: bytes) -> re.Pattern[bytes]:
        return re.compile(rb"(?<![A-Za-z0-9_])(?<![A-Za-z0-9_][.\-])" + re.escape(k) + rb"(?![A-Za-z0-9_]|[.\-][A-Za-z0-9_])")

    rnd = random.Random(str(secrets))
    scrubber = Scrubber(secrets)
    for _ in range(300):
        raw = _random_text(rnd, rnd.choice(secrets)) + b" " + _random_text(rnd, rnd.choice(secrets))
        out = scrubber.bytes(raw)
        decoded = b"".join(t[2] for t in _json_tokens(out))
        for s in secrets:
            assert (s.encode() not in decoded) if len(s) >= 8 else not whole(s.encode()).search(decoded), (raw, out)
        k = rnd.randrange(len(raw) + 1)
        assert b"".join([c async for c in scrubber.stream(source([raw[:k], raw[k:]]))]) == out


def test_a_long_secrets_redaction_bounds_a_short_secrets_token():
    # "aa" inside "aaaaaaaaaaa" is no whole token, but once the long key goes, what is left is.
    assert Scrubber(["aaaaaaaaa", "aa"]).bytes(b"aaaaaaaaaaa") == b"[REDACTED][REDACTED]"
    assert Scrubber(["ab/cd-0123", "cd"]).bytes(b"x cdab/cd-0123 cd") == b"x [REDACTED][REDACTED] [REDACTED]"


def test_a_json_escaped_key_in_a_header_value_is_scrubbed_too():
    from aigw.redact import Scrubber

    key = "sk-live-0123456789abcdef"
    escaped = key.replace("-", "\\u002d")
    out = Scrubber((key,)).headers({"x-debug": '{"key":"' + escaped + '"}', "x-plain": f"k={key}", "x-ok": "fine"})
    assert key not in str(out) and escaped not in str(out) and out["x-ok"] == "fine"
