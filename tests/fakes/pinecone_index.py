"""The in-memory vector index behind ``FakePinecone``: Pinecone's data-plane semantics, no HTTP.

One dense index, metric cosine, fixed dimension; namespaces are separate ("" is the default).
``upsert`` / ``query`` / ``delete`` take the parsed JSON body of the REST call and return the
JSON answer, or raise ``PineconeError`` (HTTP status + Pinecone's ``{"code", "message",
"details"}`` body, where ``code`` is the gRPC status code: 3 INVALID_ARGUMENT, 16
UNAUTHENTICATED, ...). A request is validated whole before anything changes.

Validation follows Pinecone's documented limits: vector ids are non-empty strings; values have
exactly ``dimension`` numbers, not all zero (cosine); metadata is a flat object of strings,
numbers, booleans and lists of strings, at most 40 KB (JSON) per vector; at most 1000 vectors
per upsert; topK 1..10000. Upsert replaces a whole vector, metadata included.

Query: ``vector`` or ``id`` (a stored vector's values), ``topK``, optional ``filter``; matches
are sorted by score (cosine similarity) descending, ties by id. A match carries ``values``
(``[]`` unless ``includeValues``) and ``metadata`` only with ``includeMetadata`` and when the
vector has some.

Metadata filter operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists`` on fields, ``$and``
and ``$or`` on lists of filters, ``{"field": value}`` shorthand for ``$eq``. A list-valued field
matches ``$eq``/``$in`` if any element does. Like MongoDB (whose syntax Pinecone borrows), a
missing field matches ``$ne`` and ``$nin`` and fails the others. Booleans never equal numbers.
"""

from __future__ import annotations

import json
import math
import operator
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.embeddings import cosine

MAX_UPSERT_VECTORS = 1000
MAX_TOP_K = 10_000
MAX_METADATA_BYTES = 40 * 1024

# HTTP status -> gRPC status code, as Pinecone's REST gateway reports it in "code".
GRPC_CODES: dict[int, int] = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4}


class PineconeError(Exception):
    """An error answer: ``status`` (HTTP) and ``body()`` (Pinecone's JSON error shape)."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = GRPC_CODES.get(status, 2) if code is None else code  # 2: UNKNOWN

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": []}


def _invalid(message: str) -> PineconeError:
    return PineconeError(400, message)


@dataclass(frozen=True)
class Vector:
    id: str
    values: list[float]
    metadata: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "values": list(self.values)}
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# --------------------------------------------------------------------------- metadata filter


def _equal(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"$gt": operator.gt, "$gte": operator.ge,
                                                   "$lt": operator.lt, "$lte": operator.le}


def _operator(op: str, arg: Any, present: bool, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if op == "$exists":
        if not isinstance(arg, bool):
            raise _invalid("$exists operator must have a boolean argument")
        return present == arg
    if op in ("$eq", "$ne"):
        if not (isinstance(arg, str | bool) or _is_number(arg)):
            raise _invalid(f"{op} operator must have a string, number or boolean argument")
        hit = present and any(_equal(v, arg) for v in values)
        return hit if op == "$eq" else not hit
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise _invalid(f"{op} operator must have an array argument")
        hit = present and any(_equal(v, a) for v in values for a in arg)
        return hit if op == "$in" else not hit
    if op in _COMPARE:
        if not _is_number(arg):
            raise _invalid(f"{op} operator must have a number argument")
        return present and _is_number(value) and _COMPARE[op](value, arg)
    raise _invalid(f"unknown operator {op!r} in filter")


def matches_filter(flt: Any, metadata: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata`` satisfies the Pinecone metadata filter ``flt`` (raises on a bad filter)."""
    if not isinstance(flt, dict):
        raise _invalid("filter must be an object")
    md = metadata or {}
    results = []  # evaluate every clause, so a bad clause fails even after a false one
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise _invalid(f"{key} operator must have a non-empty array of filters")
            parts = [matches_filter(c, md) for c in cond]
            results.append(all(parts) if key == "$and" else any(parts))
        elif key.startswith("$"):
            raise _invalid(f"unknown top-level operator {key!r} in filter")
        else:
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            if not ops:
                raise _invalid(f"empty condition for field {key!r} in filter")
            results += [_operator(op, arg, key in md, md.get(key)) for op, arg in ops.items()]
    return all(results)


# --------------------------------------------------------------------------- validation


def _namespace(body: Mapping[str, Any]) -> str:
    ns = body.get("namespace") or ""
    if not isinstance(ns, str):
        raise _invalid("namespace must be a string")
    return ns


def _metadata(vid: str, md: Any) -> dict[str, Any] | None:
    if md is None:
        return None
    if not isinstance(md, dict):
        raise _invalid(f"Metadata of vector {vid!r} must be an object")
    for key, value in md.items():
        ok = isinstance(value, str | bool) or _is_number(value) or (
            isinstance(value, list) and all(isinstance(x, str) for x in value))
        if not ok:
            raise _invalid(f"Metadata value for field {key!r} of vector {vid!r} must be a string, number, "
                           f"boolean or list of strings, got {json.dumps(value)[:40]}")
    size = len(json.dumps(md, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise _invalid(f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector")
    return dict(md)


class PineconeIndex:
    """A dense cosine index of ``dimension``; thread-safe (the server thread and tests share it)."""

    def __init__(self, dimension: int) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        self.dimension = dimension
        self._namespaces: dict[str, dict[str, Vector]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inspection (tests)

    def namespaces(self) -> list[str]:
        """Namespaces holding at least one vector, sorted."""
        with self._lock:
            return sorted(ns for ns, vecs in self._namespaces.items() if vecs)

    def vectors(self, namespace: str = "") -> dict[str, Vector]:
        """A copy of the vectors of ``namespace`` by id."""
        with self._lock:
            return dict(self._namespaces.get(namespace, {}))

    def clear(self) -> None:
        with self._lock:
            self._namespaces.clear()

    # ------------------------------------------------------------------ data-plane operations

    def _values(self, values: Any, what: str) -> list[float]:
        if not isinstance(values, list) or not all(_is_number(x) for x in values):
            raise _invalid(f"{what} values must be an array of numbers")
        if len(values) != self.dimension:
            raise _invalid(f"{what} dimension {len(values)} does not match the dimension of the index {self.dimension}")
        if not any(values):
            raise _invalid(f"{what} must contain at least one non-zero value for an index with metric cosine")
        return [float(x) for x in values]

    def upsert(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /vectors/upsert`` -> ``{"upsertedCount": n}``."""
        ns, raw = _namespace(body), body.get("vectors")
        if not isinstance(raw, list) or not raw:
            raise _invalid("vectors must be a non-empty array")
        if len(raw) > MAX_UPSERT_VECTORS:
            raise _invalid(f"Upsert request has {len(raw)} vectors; the limit is {MAX_UPSERT_VECTORS} per request")
        parsed: list[Vector] = []
        for item in raw:
            if not isinstance(item, dict):
                raise _invalid("each vector must be an object")
            vid = item.get("id")
            if not isinstance(vid, str) or not vid:
                raise _invalid("Vector ID must be a non-empty string")
            parsed.append(Vector(vid, self._values(item.get("values"), "Vector"), _metadata(vid, item.get("metadata"))))
        with self._lock:
            self._namespaces.setdefault(ns, {}).update((v.id, v) for v in parsed)
        return {"upsertedCount": len(parsed)}

    def query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /query`` -> ``{"matches": [...], "namespace": ns, "usage": {"readUnits": 1}}``."""
        ns, top_k, flt = _namespace(body), body.get("topK"), body.get("filter")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise _invalid(f"topK must be an integer between 1 and {MAX_TOP_K}, got {json.dumps(top_k)}")
        if ("vector" in body) == ("id" in body):
            raise _invalid("exactly one of vector or id must be given")
        if flt is not None:
            matches_filter(flt, {})  # a bad filter fails even when there is nothing to filter
        with self._lock:
            stored = list(self._namespaces.get(ns, {}).values())
        if "id" in body:
            by_id = [v for v in stored if v.id == body["id"]]
            if not by_id:  # Pinecone answers an unknown id with no matches
                return {"matches": [], "namespace": ns, "usage": {"readUnits": 1}}
            query = by_id[0].values
        else:
            query = self._values(body["vector"], "Query vector")
        if flt is not None:
            stored = [v for v in stored if matches_filter(flt, v.metadata)]
        scored = sorted(((cosine(query, v.values), v) for v in stored), key=lambda sv: (-sv[0], sv[1].id))
        out = []
        for score, v in scored[:top_k]:
            match: dict[str, Any] = {"id": v.id, "score": score, "values": list(v.values) if body.get("includeValues") else []}
            if body.get("includeMetadata") and v.metadata is not None:
                match["metadata"] = dict(v.metadata)
            out.append(match)
        return {"matches": out, "namespace": ns, "usage": {"readUnits": 1}}

    def delete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /vectors/delete`` with ``ids``, ``deleteAll: true`` or ``filter`` -> ``{}``."""
        ns, ids, flt = _namespace(body), body.get("ids"), body.get("filter")
        chosen = [name for name in ("ids", "deleteAll", "filter") if body.get(name) not in (None, False)]
        if len(chosen) != 1:
            raise _invalid("exactly one of ids, deleteAll or filter must be given")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise _invalid("ids must be an array of strings")
        if body.get("deleteAll") not in (None, True, False):
            raise _invalid("deleteAll must be a boolean")
        if flt is not None:
            matches_filter(flt, {})  # validate before changing anything
        with self._lock:
            vecs = self._namespaces.get(ns, {})
            if body.get("deleteAll"):
                gone = list(vecs)
            elif ids is not None:
                gone = [i for i in ids if i in vecs]
            else:
                gone = [v.id for v in vecs.values() if matches_filter(flt, v.metadata)]
            for vid in gone:
                del vecs[vid]
            if not vecs:
                self._namespaces.pop(ns, None)
        return {}
