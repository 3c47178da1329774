"""Shared parts of ``mobstore inspect``: limits, per-value decoding, display helpers.

Every stored value is decoded on its own. A value that cannot be decoded (corrupt, or
written by a newer mobstore) becomes the marker ``{"$undecodable": "<what>: <why>"}`` in
place of the value, and is listed in the result's ``undecodable``: one bad row never hides
the rest of the store.
"""

from __future__ import annotations

import json
import math
from typing import Any

import apsw
import attrs

from ._codec import micros_to_time
from ._errors import InvalidInput, MobStoreError
from ._kernel_state import KernelState

#: The key of the marker that stands in for a value that cannot be decoded.
UNDECODABLE = "$undecodable"
#: The bucket of per-state counts for rows whose state cannot be read.
UNREADABLE_STATE = "<undecodable>"
_FAILURES = (MobStoreError, ValueError, TypeError, KeyError, RecursionError, OverflowError)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} overflows a float")
    return value


# Stored JSON is strict JSON (the store never writes NaN or Infinity): anything else is
# undecodable, and the report (``--json``) stays valid JSON.
_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def _strict_loads(raw: str | bytes) -> Any:
    return _STRICT.decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


@attrs.frozen
class Limits:
    """How many items of each list ``inspect`` shows; ``None`` means all of them. Counts
    (totals, counts by state) always cover everything.

    Attributes:
        runs: runs per mob (the newest), and runs per runtime in its receipt summary.
        frames: frames, and loops, per run (the first and last few, by id).
        ledger: entries per ledger per run (the last few), receipts of ``--run``'s run.
        runtimes: runtimes (by id).
    """

    runs: int | None = attrs.field(default=10, validator=lambda _i, a, v: _check_limit(a.name, v))
    frames: int | None = attrs.field(default=4, validator=lambda _i, a, v: _check_limit(a.name, v))
    ledger: int | None = attrs.field(default=3, validator=lambda _i, a, v: _check_limit(a.name, v))
    runtimes: int | None = attrs.field(default=20, validator=lambda _i, a, v: _check_limit(a.name, v))

    @classmethod
    def for_mode(cls, one_run: bool, **given: int | None) -> Limits:
        """The defaults of the overview (``one_run`` false) or of one run's full detail
        (everything), with the ``given`` limits overriding them."""
        base = cls(runs=None, frames=None, ledger=None, runtimes=None) if one_run else cls()
        return attrs.evolve(base, **given)


def _check_limit(name: str, value: Any) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise InvalidInput(f"limits.{name}", f"must be a count (an int >= 0) or None (all), got {value!r}")


def sql_limit(limit: int | None) -> int:
    """``limit`` for a SQL ``LIMIT`` (``-1``: no limit)."""
    return -1 if limit is None else limit


def rows(conn: apsw.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args).fetchall()


def scalar(conn: apsw.Connection, sql: str, *args: Any) -> Any:
    return conn.execute(sql, args).fetchall()[0][0]


def counts(conn: apsw.Connection, sql: str, *args: Any) -> dict[str, int]:
    """``{key: count}`` from a ``SELECT key, count(*) ... GROUP BY key``, biggest first; a
    NULL key (a state that cannot be read) counts as :data:`UNREADABLE_STATE`."""
    got = [(UNREADABLE_STATE if k is None else str(k), n) for k, n in rows(conn, sql, *args)]
    return dict(sorted(got, key=lambda kv: (-kv[1], kv[0])))


def json_field_sql(column: str, path: str) -> str:
    """SQL for the text at ``path`` of the JSON in ``column``; NULL (never an error) when the
    column is not valid JSON text or holds no text there."""
    return (
        f"CASE WHEN typeof({column}) = 'text' AND json_valid({column}) THEN "
        f"CASE WHEN json_type({column}, '{path}') = 'text' THEN json_extract({column}, '{path}') END END"
    )


class Decoder:
    """Decodes stored values one by one, collecting what it could not decode."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, what: str, detail: str) -> dict[str, str]:
        message = f"{what}: {detail}"
        self.errors.append(message)
        return {UNDECODABLE: message}

    def json(self, raw: Any, what: str) -> Any:
        """Stored JSON text (or bytes) as plain values, or the marker."""
        try:
            if not isinstance(raw, (str, bytes)):
                raise TypeError(f"stored as {type(raw).__name__}, not text")
            return _strict_loads(raw)
        except _FAILURES as exc:
            return self.fail(what, f"not JSON ({exc})")

    def kernel(self, raw: Any, what: str) -> dict[str, Any]:
        """A stored kernel state: ``{"phase", "display", "state"}`` with ``state`` the wire
        form; if it cannot be decoded, ``phase`` and ``display`` are None and ``state`` the
        marker."""
        try:
            if not isinstance(raw, (str, bytes)):
                raise TypeError(f"stored as {type(raw).__name__}, not text")
            try:
                obj = _strict_loads(raw)
            except ValueError as exc:
                raise ValueError(f"not JSON ({exc})") from None
            state = KernelState.from_json(obj, "kernel state")
        except _FAILURES as exc:
            return {"phase": None, "display": None, "state": self.fail(what, str(exc))}
        wire = state.to_json()
        return {"phase": state.phase, "display": kernel_display(wire), "state": wire}

    def time(self, us: Any, what: str) -> Any:
        """Stored UTC microseconds as ISO 8601 text (``None`` stays ``None``), or the marker."""
        if us is None:
            return None
        try:
            if type(us) is not int:
                raise TypeError(f"stored as {type(us).__name__}, not integer microseconds")
            return micros_to_time(us).isoformat()
        except _FAILURES as exc:
            return self.fail(what, f"not a time ({exc})")


def kernel_display(wire: dict[str, Any]) -> str:
    """A kernel state's wire form, compactly: ``Phase(field=value, ...)``."""
    fields = wire.get("fields") or {}
    if not fields:
        return str(wire["phase"])
    return f"{wire['phase']}({', '.join(f'{k}={_value(v)}' for k, v in fields.items())})"


def _value(v: dict[str, Any]) -> str:
    t = v.get("type")
    if t == "bool":
        return "true" if v["value"] else "false"
    if t == "u64":
        return str(v["value"])
    if t == "string":
        return json.dumps(v["value"], ensure_ascii=False)
    if t == "named_variant":
        return f"{v['enum_name']}::{v['variant']}"
    if t == "seq":
        return "[" + ", ".join(_value(x) for x in v["items"]) + "]"
    if t == "set":
        return "{" + ", ".join(_value(x) for x in v["items"]) + "}"
    if t == "map":
        return "{" + ", ".join(f"{_value(k)}: {_value(x)}" for k, x in v["entries"]) + "}"
    return "none"


# -- text helpers --------------------------------------------------------------------------------


def is_marker(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and UNDECODABLE in value


def short(value: Any, limit: int = 100) -> str:
    """Compact JSON of ``value``, clipped to ``limit`` characters; a marker as
    ``<undecodable: ...>``."""
    if is_marker(value):
        return clip(f"<undecodable: {value[UNDECODABLE]}>", max(limit, 160))
    return clip(json.dumps(value, ensure_ascii=False, separators=(",", ":")), limit)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_text(entry: dict[str, Any], limit: int = 100) -> str:
    """A decoded kernel state (see :meth:`Decoder.kernel`) for a text line."""
    if entry["display"] is None:
        return short(entry["state"])
    return clip(entry["display"], limit)


def by_state(counted: dict[str, int]) -> str:
    """``{"Done": 2, "Running": 1}`` as ``Done 2, Running 1``."""
    return ", ".join(f"{k} {n}" for k, n in counted.items())


def plural(n: Any, word: str) -> str:
    """``1 message``, ``2 messages`` (a marker or other value: as is, then ``word`` + s)."""
    return f"{n} {word}" if n == 1 and type(n) is int else f"{short(n) if isinstance(n, dict) else n} {word}s"


def size(n: int) -> str:
    return f"{n:,} B"
