"""Mob specs: commands and reads (SQL over an open transaction).

Revision rule
-------------
A spec is ``(definition, revision)``, one per mob. ``current`` is the live spec's revision,
or 0 when there is none. A put checks the caller's expected revision against ``current``:
``None`` is an unconditional upsert, ``0`` create-only, ``k`` update-if-at-``k``; a mismatch
raises :class:`SpecRevisionConflict` and changes nothing.

Upstream restarts at revision 1 after a delete, so a client holding revision 1 of the *old*
spec could pass a CAS against a *new* one (SEMANTICS.md 4.3, W7). Here a delete leaves a
tombstone row whose revision is the mob's high-water mark: a put on an absent spec still
requires ``None`` or ``0``, but stores ``high_water + 1``. Numbering equals upstream's until
the first delete; revisions then keep counting, so no stale revision can ever match again.

Validation happens when a command is built (:meth:`PutSpec.of`), on the caller's side, so
bad input fails before anything is queued.
"""

from __future__ import annotations

from typing import Any

import apsw
import attrs

from ._codec import check_count, decode_json, encode_object, stored_count
from ._database import Transaction
from ._errors import DecodeError, InvalidInput, SpecRevisionConflict


def check_revision(revision: Any, field: str = "revision") -> int | None:
    """``None`` or a revision count (``0..2**63-1``); otherwise :class:`InvalidInput`."""
    return None if revision is None else check_count(revision, field)


def _state(tx: Transaction, mob_id: str) -> tuple[int, bool]:
    """``(high_water, live)``: the last revision ever stored (0 if none) and whether a
    spec is live (then ``high_water`` is its revision)."""
    rows = tx.execute(
        "SELECT revision, definition IS NOT NULL FROM mob_specs WHERE mob_id = ?", (mob_id,)
    ).fetchall()
    if not rows:
        return 0, False
    return stored_count(rows[0][0], f"revision of the spec of mob {mob_id!r}"), bool(rows[0][1])


@attrs.frozen
class PutSpec:
    """Store a mob's spec under a revision CAS; returns the new revision (an ``int``).

    Build it with :meth:`of`. Applying it raises :class:`SpecRevisionConflict` (nothing
    changed) when ``expected`` is given and is not the current revision.
    """

    mob_id: str
    text: str  #: the encoded definition, with "id" filled in
    expected: int | None

    @classmethod
    def of(cls, mob_id: str, definition: Any, revision: Any = None) -> PutSpec:
        """Validate and encode a put on the caller's side.

        Raises:
            InvalidInput: ``definition`` is not a JSON object (or not plain JSON, or too
                large); ``definition["id"]`` is present and is not ``mob_id``; ``revision``
                is neither ``None`` nor an ``int`` in ``0..2**63-1``.
        """
        expected = check_revision(revision)
        if type(definition) is not dict:
            raise InvalidInput(
                "definition", f"must be a dict (a JSON object), got {type(definition).__name__}"
            )
        if "id" in definition:
            if definition["id"] != mob_id:
                raise InvalidInput(
                    "definition['id']",
                    f"{definition['id']!r} is not the mob this spec is stored under ({mob_id!r});"
                    " leave it out or set it to the mob id",
                )
        else:
            definition = {"id": mob_id, **definition}
        return cls(mob_id, encode_object(definition, "definition"), expected)

    def apply(self, tx: Transaction) -> int:
        high, live = _state(tx, self.mob_id)
        current = high if live else 0
        if self.expected is not None and self.expected != current:
            raise SpecRevisionConflict(self.mob_id, self.expected, current)
        revision = high + 1
        tx.execute(
            "INSERT INTO mob_specs (mob_id, revision, definition) VALUES (?, ?, ?)"
            " ON CONFLICT (mob_id) DO UPDATE SET"
            " revision = excluded.revision, definition = excluded.definition",
            (self.mob_id, revision, self.text),
        )
        return revision


@attrs.frozen
class DeleteSpec:
    """Delete a mob's spec; returns ``True`` if deleted, ``False`` if there was no spec or
    ``expected`` was given and is not the current revision (then nothing changed).

    The revision stays behind as the mob's high-water mark (see the module docstring).
    """

    mob_id: str
    expected: int | None

    @classmethod
    def of(cls, mob_id: str, revision: Any = None) -> DeleteSpec:
        """Raises :class:`InvalidInput` if ``revision`` is neither ``None`` nor a count."""
        return cls(mob_id, check_revision(revision))

    def apply(self, tx: Transaction) -> bool:
        high, live = _state(tx, self.mob_id)
        if not live or (self.expected is not None and self.expected != high):
            return False
        tx.execute("UPDATE mob_specs SET definition = NULL WHERE mob_id = ?", (self.mob_id,))
        return True


# -- reads (run on a reader connection) ------------------------------------------------------


def get_spec(conn: apsw.Connection, mob_id: str) -> tuple[dict[str, Any], int] | None:
    """The live spec of ``mob_id`` as ``(definition, revision)``, or ``None``."""
    rows = conn.execute(
        "SELECT definition, revision FROM mob_specs WHERE mob_id = ? AND definition IS NOT NULL",
        (mob_id,),
    ).fetchall()
    if not rows:
        return None
    text, revision = rows[0]
    definition = decode_json(text, f"spec of mob {mob_id!r}")
    if type(definition) is not dict:
        raise DecodeError(f"spec of mob {mob_id!r}", "the stored definition is not a JSON object")
    return definition, stored_count(revision, f"revision of the spec of mob {mob_id!r}")


def list_specs(conn: apsw.Connection) -> list[str]:
    """The ids of the mobs that have a live spec, sorted (by code point)."""
    rows = conn.execute(
        "SELECT mob_id FROM mob_specs WHERE definition IS NOT NULL ORDER BY mob_id"
    ).fetchall()
    return [r[0] for r in rows]
