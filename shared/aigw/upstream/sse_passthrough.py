"""Relays a provider stream that is already OpenAI-format SSE, line by line.

The bytes go out as they came, each completed line as soon as it ends, with three repairs:

* A line holding a NUL byte or invalid UTF-8 is not passed verbatim: invalid sequences become
  U+FFFD and NUL bytes are dropped. Clients decode SSE as UTF-8 (a strict decoder, such as a
  Python client's ``iter_lines``, raises mid-stream on a bad byte) and raw NULs are invalid
  inside JSON and cut C strings short. It also keeps the key scrubber, which runs after this
  relay, honest: it then sees the text the client will decode, so a key split by a NUL or a
  stray byte that a lenient client would drop or replace cannot slip past it.
* A stream that ends cleanly (the source is exhausted without raising) but never sent
  ``data: [DONE]`` gets ``data: [DONE]\\n\\n`` appended: every successful stream ends with
  ``[DONE]``. A ``[DONE]`` already sent is never repeated; if the stream stopped without the
  blank line that ends its last event, the missing line ends are added. A source that raises
  propagates its error and gets nothing appended (the relay turns that into an error event).
* A line still incomplete after ``MAX_PENDING_LINE`` bytes is passed on without waiting for its
  end (never splitting a UTF-8 sequence), so memory stays bounded.

Linear time: each chunk is searched once for its last line end, complete lines are checked in
bulk with C-level primitives (``isascii``, a strict UTF-8 decode, ``in``), and chunks of an
incomplete line are collected in a list and joined once, never re-concatenated per chunk.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aigw.aclose import aclose

MAX_PENDING_LINE = 1 << 20  # an incomplete line longer than this is passed on without its end
DONE_EVENT = b"data: [DONE]\n\n"

_EOL = re.compile(rb"\r\n|\r|\n")


def line_end(data: bytes) -> int:
    """The index just past the last line terminator (``\\n`` or ``\\r``) of ``data``; 0 when none.

    ``data[:line_end(data)]`` holds only complete lines (a ``\\r`` whose ``\\n`` comes in the
    next chunk is complete already: the ``\\n`` then stands alone, as it did in the input).
    """
    last = data[-1] if data else 0
    if last == 0x0A or last == 0x0D:  # the usual SSE chunk: whole events
        return len(data)
    return max(data.rfind(b"\n"), data.rfind(b"\r")) + 1


def _clean(block: bytes) -> bytes:
    """``block`` with invalid UTF-8 replaced by U+FFFD and NUL bytes dropped; the same object when clean.

    Decoding a block of lines at once equals decoding each line alone: ``\\r`` and ``\\n`` never
    occur inside a multi-byte sequence, so a sequence cut short by a line end is replaced the same way.
    """
    if block.find(b"\0") < 0:  # find, not ``in``: cheaper on the many small chunks of a stream
        if block.isascii():
            return block
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return block
    return block.decode("utf-8", "replace").replace("\0", "").encode("utf-8")


def _utf8_cut(data: bytes) -> int:
    """The largest index <= len(data) that does not split a UTF-8 sequence at the end of ``data``."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte < 0x80:
            return end
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end if back >= need else end - back
    return end  # only continuation bytes (invalid anyway): nothing to keep together


def _done_in(block: bytes, first_is_continuation: bool) -> bool:
    """Whether a line of ``block`` is a ``data: [DONE]`` line (the OpenAI SDKs stop on a data
    value starting with ``[DONE]``, so such a line counts)."""
    lines = _EOL.split(block)
    if first_is_continuation:
        lines = lines[1:]
    for line in lines:
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            if value.startswith(b"[DONE]"):
                return True
    return False


def _line_ends_at_end(tail: bytes) -> int:
    """How many line terminators (0, 1 or 2+) end ``tail``; 2 means the last event is complete."""
    count = 0
    while tail and count < 2:
        if tail.endswith(b"\r\n"):
            tail = tail[:-2]
        elif tail[-1:] in (b"\n", b"\r"):
            tail = tail[:-1]
        else:
            break
        count += 1
    return count


async def passthrough_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Relay an OpenAI-format SSE stream; see the module docstring for what is repaired."""
    pending: list[bytes] = []  # chunks of the incomplete last line
    pending_len = 0
    continuation = False  # pending continues a line already partly passed on
    done = False
    tail = b""  # the last bytes sent, to know whether the last event was ended
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            end = line_end(chunk)
            if end:
                if pending:
                    pending.append(chunk[:end])
                    block = b"".join(pending)
                else:
                    block = chunk if end == len(chunk) else chunk[:end]
                rest = chunk[end:]
                pending, pending_len = ([rest], len(rest)) if rest else ([], 0)
                out = _clean(block)
                if not done and out.find(b"[DONE]") >= 0:
                    done = _done_in(out, continuation)
                continuation = False
                tail = (tail + out[-4:])[-4:]
                yield out
            else:
                pending.append(chunk)
                pending_len += len(chunk)
            if pending_len > MAX_PENDING_LINE:
                data = b"".join(pending)
                cut = _utf8_cut(data)
                rest = data[cut:]
                pending, pending_len = ([rest], len(rest)) if rest else ([], 0)
                out = _clean(data[:cut])
                if not done and not continuation and out.find(b"[DONE]") >= 0:
                    done = _done_in(out, False)  # an unfinished line can still be a data: [DONE] line
                continuation = True
                if out:
                    tail = (tail + out[-4:])[-4:]
                    yield out
        # The source ended cleanly (an exception would have propagated from the loop above).
        suffix = b""
        if pending:
            out = _clean(b"".join(pending))
            if not done and not continuation and out.find(b"[DONE]") >= 0:
                done = _done_in(out, False)
            suffix = out
            tail = (tail + out[-4:])[-4:]
        if tail:  # end the last event, so clients dispatch it
            suffix += (b"\n\n", b"\n", b"")[_line_ends_at_end(tail)]
        if not done:
            suffix += DONE_EVENT
        if suffix:
            yield suffix
    finally:
        # Closed early (client gone): close the source now, so the upstream is released at once.
        await aclose(chunks)
