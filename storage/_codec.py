"""The JSON codec, time and identifier rules shared by every store.

Opaque user JSON (event payloads, step outputs, spec definitions, config...) is accepted only
if it is plain JSON: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``, ``int`` (within
signed 64 bits), finite ``float``, ``bool`` and ``None``. Anything else is
:class:`InvalidInput` naming the path of the offending value, raised *before* any write.
It is encoded as compact UTF-8 JSON text; key order is preserved on a round trip.

Times are timezone-aware UTC ``datetime`` values, stored as integer microseconds since the
Unix epoch (so they sort and compare in SQL).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from ._errors import DecodeError, InvalidInput

MAX_ID_LEN = 256
MAX_INT = 2**63 - 1
#: The largest encoded size of one opaque JSON value (a payload, an output, a definition).
MAX_JSON_BYTES = 1 << 20

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

def _no_default(value: Any) -> Any:  # _check_json has already refused every non-JSON type
    raise TypeError(f"{type(value).__name__} is not JSON")


# Two encoders, on purpose. ``_dumps`` (the stdlib's C encoder, built once: JSONEncoder.encode
# builds one per call) writes the canonical forms whose bytes matter: kernel states compared
# byte for byte in SQL and the conversation digest (SEMANTICS.md 6.3 fixes its format).
# Opaque user JSON (payloads, outputs, definitions, config), whose bytes nobody compares, is
# written and read with orjson: 0.13 against 0.63 µs to encode a small payload, 0.17 against
# 1.25 µs to decode one (docs/benchmarks.md). Both write compact UTF-8 JSON with the key order
# kept; they differ only in how some floats are spelled (orjson ``0.00001``, json ``1e-05``),
# which reads back as the same float.
try:
    from json.encoder import c_make_encoder as _make  # type: ignore[attr-defined]
    from json.encoder import encode_basestring as _quote

    _c_encode = _make(None, _no_default, _quote, None, ":", ",", False, False, False)

    def _dumps(value: Any) -> str:
        if type(value) is str:
            return _quote(value)
        return "".join(_c_encode(value, 0))

except ImportError:  # pragma: no cover - CPython always has _json
    _dumps = json.JSONEncoder(
        ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
    ).encode
_odumps = orjson.dumps
_loads = orjson.loads


_MIN_INT = -(2**63)


def _plain(value: Any, depth: int) -> bool:
    """True if ``value`` is plain JSON (the rule of :func:`_check_json`), without building
    paths: the fast check every write makes. Only when it says False does the slow walk
    run, to name the offending path."""
    t = type(value)
    if t is dict:
        if depth > 64:
            return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is int:
                if _MIN_INT <= v <= MAX_INT:
                    continue
                return False
            if not _plain(v, depth + 1):
                return False
        return True
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return _MIN_INT <= value <= MAX_INT
    if t is float:
        return math.isfinite(value)
    if t is list or t is tuple:
        if depth > 64:
            return False
        for v in value:
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if not _plain(v, depth + 1):
                return False
        return True
    return False


def check_utf8(value: str, field: str) -> str:
    """Return the ``str`` ``value`` if it can be stored as UTF-8, that is, holds no lone
    surrogate (``"\\ud800"``: Python strings can, SQLite text and JSON cannot); otherwise
    raise :class:`InvalidInput` naming ``field``. Costs a scan only for non-ASCII text."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                field,
                f"contains a lone surrogate ({value[exc.start]!r} at index {exc.start}); "
                "it cannot be stored as UTF-8",
            ) from None
    return value


def _check_json(value: Any, path: str, depth: int) -> None:
    # A hand-written walk: json.dumps would silently turn int keys into strings and accept
    # NaN-free floats only at the top. This gives the exact path of what is wrong.
    t = type(value)
    if t is str:
        check_utf8(value, path)
        return
    if t is bool or value is None:
        return
    if t is int:
        if -(2**63) <= value <= MAX_INT:
            return
        raise InvalidInput(path, f"integer {value} does not fit in 64 bits")
    if t is float:
        if math.isfinite(value):
            return
        raise InvalidInput(path, f"{value} is not a finite number; JSON has no NaN or infinity")
    if depth > 64:
        raise InvalidInput(path, "nested deeper than 64 levels")
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise InvalidInput(path, f"key {k!r} is a {type(k).__name__}; JSON keys are strings")
            check_utf8(k, f"{path} key {k!r}")
            _check_json(v, f"{path}[{k!r}]", depth + 1)
        return
    if t is list or t is tuple:
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]", depth + 1)
        return
    raise InvalidInput(path, f"{type(value).__name__} is not JSON (dict, list, str, int, float, bool, None)")


def encode_json(value: Any, field: str, *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """Validate ``value`` as plain JSON and return its compact text.

    Raises:
        InvalidInput: naming ``field`` and the path inside it, if ``value`` is not plain JSON
            or its encoding is longer than ``max_bytes``.
    """
    if not _plain(value, 0):
        _check_json(value, field, 0)  # raises, naming the path
        raise AssertionError(f"{field}: _plain and _check_json disagree")  # pragma: no cover
    try:
        data = _odumps(value)
    except orjson.JSONEncodeError:  # a lone surrogate somewhere (_plain lets str through): name where
        _check_json(value, field, 0)
        raise AssertionError(f"{field}: orjson and _check_json disagree") from None  # pragma: no cover
    if len(data) > max_bytes:
        raise InvalidInput(field, f"encodes to more than {max_bytes} bytes of JSON")
    return data.decode()


def encode_object(value: Any, field: str, *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """Like :func:`encode_json`, but the value must be a JSON object (a ``dict``)."""
    if type(value) is not dict:
        raise InvalidInput(field, f"must be a dict (a JSON object), got {type(value).__name__}")
    return encode_json(value, field, max_bytes=max_bytes)


def decode_json(text: str | bytes, what: str) -> Any:
    """Decode stored JSON text; a failure is :class:`DecodeError` naming ``what``."""
    try:
        return _loads(text)
    except (ValueError, TypeError) as exc:
        raise DecodeError(what, f"stored JSON is malformed ({exc})") from exc


def check_id(value: Any, field: str) -> str:
    """Return ``value`` if it is a valid identifier: a non-empty ``str`` of at most
    256 characters without NUL; otherwise raise :class:`InvalidInput`."""
    if type(value) is not str:
        raise InvalidInput(field, f"must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > MAX_ID_LEN:
        raise InvalidInput(field, f"is {len(value)} characters long; the limit is {MAX_ID_LEN}")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return check_utf8(value, field)


def check_count(value: Any, field: str) -> int:
    """Return ``value`` if it is an ``int`` in ``0..2**63-1``; otherwise :class:`InvalidInput`."""
    if type(value) is not int:
        raise InvalidInput(field, f"must be an int, got {type(value).__name__}")
    if value < 0:
        raise InvalidInput(field, f"must not be negative, got {value}")
    if value > MAX_INT:
        raise InvalidInput(field, f"{value} exceeds the 64-bit limit {MAX_INT}")
    return value


def check_time(value: Any, field: str) -> datetime:
    """Return ``value`` in UTC if it is a timezone-aware ``datetime``."""
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "must be timezone-aware (UTC); got a naive datetime")
    return value.astimezone(timezone.utc)


def time_to_micros(value: datetime) -> int:
    """UTC datetime -> integer microseconds since the epoch (exact)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_to_time(value: int) -> datetime:
    """Integer microseconds since the epoch -> UTC datetime (exact).

    Only stored values come here: one that is not an int in the datetime range is a damaged
    row, :class:`DecodeError`."""
    if type(value) is not int:
        raise DecodeError("stored time", f"{value!r} is not an integer number of microseconds")
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise DecodeError("stored time", f"{value} microseconds is outside the datetime range") from None


def stored_count(value: Any, what: str) -> int:
    """Return a stored revision or counter if it is an ``int >= 0``; otherwise the row is
    damaged: :class:`DecodeError` naming ``what``."""
    if type(value) is not int or value < 0:
        raise DecodeError(what, f"stored value {value!r} is not an int >= 0")
    return value


def utc_now() -> datetime:
    """The default store clock: the wall clock, in UTC."""
    return datetime.now(timezone.utc)


def enum_converter(cls: type[enum.Enum], field: str) -> Callable[[Any], Any]:
    """An attrs converter to the enum ``cls`` (from a member or its value); anything else is
    :class:`InvalidInput` naming ``field`` and the allowed values."""

    def convert(value: Any) -> Any:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise InvalidInput(field, f"{value!r} is not one of {allowed}") from None

    return convert
