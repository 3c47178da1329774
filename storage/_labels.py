"""Mob- and run-scoped labels (SEMANTICS.md §8.1): the scope record, commands and reads.

A label set is a map of string to string attached to a mob (``MetadataScope(mob_id)``) or
to one run of a mob (``MetadataScope(mob_id, run_id)``: the run scope includes the mob, so
equal run ids in different mobs never meet). ``set`` replaces the whole set, never merges;
an empty set deletes the entry; ``delete`` returns what was there.

Unlike upstream mobkit (in memory, wiped on restart) labels are persisted with the mob, in
``mob_labels(mob_id, run_id, labels)``, where ``run_id = ''`` is the mob scope: real run ids
are never empty, and NULL would not do (SQLite key columns treat NULLs as distinct).

Limits (upstream has none, W12): at most :data:`MAX_LABELS` entries per scope; keys
non-empty strings of at most :data:`MAX_KEY_BYTES` UTF-8 bytes; values strings (possibly
empty) of at most :data:`MAX_VALUE_BYTES`. Anything else is :class:`InvalidInput` naming the
key, and nothing is written. A set is stored and returned sorted by key (upstream keeps a
``BTreeMap``).

Run ids: a :class:`uuid.UUID` or a UUID string (either case) is stored as canonical
lowercase text, so ``UUID`` and ``str`` spellings of one run address the same labels; any
other non-empty id (at most 256 characters, no NUL) is kept verbatim, as upstream's RPC
does not require run ids to be UUIDs.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from typing import Any

import apsw
import attrs

from ._codec import check_id, check_utf8, decode_json, encode_object
from ._database import Transaction
from ._errors import DecodeError, InvalidInput

MAX_LABELS = 256
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 4096
_MAX_TEXT = 8 << 20  # the encoded set; the real limits are the three above
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def label_run_id(value: Any, field: str = "run_id") -> str:
    """The stored form of a label run id (see the module docstring); never empty."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if type(value) is str and len(value) == 36 and _UUID.fullmatch(value):
        return value.lower()
    return check_id(value, field)


def check_labels(labels: Any, field: str = "labels") -> dict[str, str]:
    """Validate a label set; return it as a new dict sorted by key.

    Raises:
        InvalidInput: ``labels`` is None or not a map of string to string, or breaks a limit.
    """
    if labels is None:
        raise InvalidInput(field, "is required; pass {} to clear the labels")
    if not isinstance(labels, Mapping):
        raise InvalidInput(field, f"must be a map of string to string, got {type(labels).__name__}")
    if len(labels) > MAX_LABELS:
        raise InvalidInput(field, f"has {len(labels)} entries; the limit is {MAX_LABELS}")
    for k, v in labels.items():
        # Plain str only, as everywhere in the store: a str subclass (a StrEnum member, say)
        # would be stored as whatever its str() gives, not as its value.
        if type(k) is not str:
            raise InvalidInput(field, f"must be a map of string to string; key {k!r} is a {type(k).__name__}, not a plain str")
        if not k:
            raise InvalidInput(field, "keys must not be empty")
        check_utf8(k, f"{field} key {k[:32]!r}")  # before the byte length, which encodes it
        if len(k) * 4 > MAX_KEY_BYTES and len(k.encode("utf-8")) > MAX_KEY_BYTES:
            raise InvalidInput(f"{field}[{k[:32]!r}...]", f"key is longer than {MAX_KEY_BYTES} bytes of UTF-8")
        if type(v) is not str:
            raise InvalidInput(f"{field}[{k!r}]", f"must be a map of string to string; the value is a {type(v).__name__}, not a plain str")
        check_utf8(v, f"{field}[{k[:32]!r}]")
        if len(v) * 4 > MAX_VALUE_BYTES and len(v.encode("utf-8")) > MAX_VALUE_BYTES:
            raise InvalidInput(f"{field}[{k!r}]", f"value is longer than {MAX_VALUE_BYTES} bytes of UTF-8")
    return {k: labels[k] for k in sorted(labels)}


@functools.total_ordering
@attrs.frozen(order=False)
class MetadataScope:
    """Where a label set belongs: a mob (``run_id`` None) or one run of a mob.

    Every mob scope sorts before every run scope, then by mob id and run id (upstream's
    derived order).
    """

    mob_id: str
    run_id: str | None = None

    @classmethod
    def mob(cls, mob_id: str) -> MetadataScope:
        """The scope of mob ``mob_id``."""
        return cls(mob_id)

    @classmethod
    def run(cls, mob_id: str, run_id: Any) -> MetadataScope:
        """The scope of run ``run_id`` of mob ``mob_id`` (a UUID run id is canonicalised)."""
        return cls(mob_id, label_run_id(run_id))

    @property
    def is_run(self) -> bool:
        """True for a run scope."""
        return self.run_id is not None

    def _key(self) -> tuple[int, str, str]:
        return (self.run_id is not None, self.mob_id, self.run_id or "")  # type: ignore[return-value]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, MetadataScope):
            return NotImplemented
        return self._key() < other._key()


# -- commands ---------------------------------------------------------------------------------


@attrs.frozen
class SetLabels:
    """Replace the labels of one scope (an empty set deletes them). Returns ``None``."""

    mob_id: str
    run_id: str  # '' = the mob scope
    text: str | None  # None = clear

    @classmethod
    def of(cls, mob_id: str, labels: Any, run_id: Any = None) -> SetLabels:
        """Validate on the caller's side: :class:`InvalidInput` naming the field."""
        run = "" if run_id is None else label_run_id(run_id)
        checked = check_labels(labels)
        return cls(mob_id, run, encode_object(checked, "labels", max_bytes=_MAX_TEXT) if checked else None)

    def apply(self, tx: Transaction) -> None:
        if self.text is None:
            tx.execute("DELETE FROM mob_labels WHERE mob_id = ? AND run_id = ?", (self.mob_id, self.run_id))
        else:
            tx.execute(
                "INSERT INTO mob_labels (mob_id, run_id, labels) VALUES (?, ?, ?)"
                " ON CONFLICT (mob_id, run_id) DO UPDATE SET labels = excluded.labels",
                (self.mob_id, self.run_id, self.text),
            )


@attrs.frozen
class DeleteLabels:
    """Delete the labels of one scope; returns the previous set, or ``None`` if there was
    none."""

    mob_id: str
    run_id: str

    @classmethod
    def of(cls, mob_id: str, run_id: Any = None) -> DeleteLabels:
        return cls(mob_id, "" if run_id is None else label_run_id(run_id))

    def apply(self, tx: Transaction) -> dict[str, str] | None:
        rows = tx.execute(
            "DELETE FROM mob_labels WHERE mob_id = ? AND run_id = ? RETURNING labels", (self.mob_id, self.run_id)
        ).fetchall()
        return _decode(rows[0][0], self.mob_id, self.run_id) if rows else None


# -- reads --------------------------------------------------------------------------------------


def _decode(text: str, mob_id: str, run_id: str) -> dict[str, str]:
    what = f"labels of mob {mob_id!r}" + (f" run {run_id!r}" if run_id else "")
    value = decode_json(text, what)
    if type(value) is not dict or not all(type(v) is str for v in value.values()):
        raise DecodeError(what, "stored labels are not a map of string to string")
    return value


def get_labels(conn: apsw.Connection, mob_id: str, run_id: str) -> dict[str, str]:
    """The labels of one scope (``run_id`` '' = the mob), or ``{}``."""
    rows = conn.execute("SELECT labels FROM mob_labels WHERE mob_id = ? AND run_id = ?", (mob_id, run_id)).fetchall()
    return _decode(rows[0][0], mob_id, run_id) if rows else {}


def list_labels(conn: apsw.Connection, mob_id: str) -> list[tuple[MetadataScope, dict[str, str]]]:
    """The mob's entries in scope order: the mob scope (if set), then its runs by run id."""
    rows = conn.execute("SELECT run_id, labels FROM mob_labels WHERE mob_id = ? ORDER BY run_id", (mob_id,)).fetchall()
    return [(MetadataScope(mob_id, run or None), _decode(text, mob_id, run)) for run, text in rows]
