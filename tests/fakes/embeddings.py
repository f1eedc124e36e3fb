"""A deterministic "semantic" embedding for tests: a signed, hashed bag of words.

``embed(text)`` lower-cases the text, splits it into word tokens (runs of letters and digits;
punctuation, underscores and whitespace only separate words), hashes each token with blake2b
into one of ``dim`` buckets with a sign of +1 or -1, sums, and normalises to length 1.

* Texts with the same words, in any case, order or punctuation, get the same vector:
  cosine("Hello, World!", "hello world") == 1.0. Repeating a word changes its weight.
* Texts without shared words are nearly orthogonal: their cosine comes only from hash
  collisions. Measured at dim=64: 54 pairs of unrelated 3-9 word sentences gave |cosine|
  median 0.0, mean 0.085, max 0.34; 5000 random pairs of 4-8 distinct words gave p95 0.25,
  p99 0.38, max 0.55 (the sign can be negative too: "Hello, World!" vs "Give me a recipe for
  vegetarian lasagna" is -0.32). So use thresholds >= 0.6 for "same question" in tests.
* Shared words count fully, stop words included: "What is the capital of France?" and
  "What is the weather today?" share three words and score 0.55; "what's THE capital of
  france" (``what's`` -> ``what``, ``s``) scores 0.83 against the first.
* Never a zero vector (a real provider never sends one, and Pinecone rejects them): a text
  without words embeds like the empty word "", and if the signs of a text's words happen to
  cancel out, the sorted words joined into one token are used instead.

The fake provider answers OpenAI embeddings requests for ``SEMANTIC_EMBEDDING_MODEL`` with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from hashlib import blake2b

SEMANTIC_EMBEDDING_MODEL = "fake-semantic-embedding"
SEMANTIC_EMBEDDING_DIMS = 64

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits; everything else separates)."""
    return _WORD.findall(text.lower())


def _bucket(token: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(blake2b(token.encode(), digest_size=8).digest(), "big")
    return h % dim, (1.0 if h >> 63 else -1.0)  # top bit for the sign, low bits for the bucket


def _hashed(tokens: Sequence[str], dim: int) -> list[float]:
    vec = [0.0] * dim
    for token in tokens:
        i, sign = _bucket(token, dim)
        vec[i] += sign
    return vec


def embed(text: str, dim: int = SEMANTIC_EMBEDDING_DIMS) -> list[float]:
    """Unit-length bag-of-words vector of ``text`` with ``dim`` components (see module docstring)."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    tokens = words(text) or [""]
    vec = _hashed(tokens, dim)
    if not any(vec):  # the signs cancelled out
        vec = _hashed([" ".join(sorted(tokens))], dim)
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two equally long vectors (0.0 if either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} != {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
