"""Subscription cursors (SEMANTICS.md §8.2): named, persisted, per mob; commands and reads.

A cursor records how far a named subscriber of a mob's event log has got. ``"default"`` is
upstream mobkit's single ``subscription_cursor``.

Rules:
    * ``get`` is ``None`` until the first ``set``; values survive restarts (they live in the
      store file with the mob's events).
    * **A cursor never moves backwards by accident.** ``SetCursor`` (``mob.cursors.set``)
      moves it forward or leaves it where it is (setting the current value again is fine,
      so a replayed acknowledgement is harmless); a lower value is :class:`CasConflict`
      (``expected`` = the value asked for, ``actual`` = the stored one) and changes
      nothing. Inside ``mob.commit`` this rolls back the whole commit, so a stale consumer
      incarnation cannot apply its output twice.
    * **Rewinding is explicit**: ``ResetCursor`` (``mob.cursors.reset``) sets any value, or
      with ``None`` removes the cursor (``get`` is ``None`` again).

Upstream's ``set_subscription_cursor`` is an unconditional upsert (last writer wins, it can
move backwards); the port splits it into the guarded ``set`` and the explicit ``reset``
(issue 4), so a lagging writer can never rewind a consumer silently.

Stored as an INTEGER column (readable in any SQLite shell); a value that is not an integer
(a hand edit, a foreign writer) is :class:`DecodeError` on read.
"""

from __future__ import annotations

from typing import Any

import apsw
import attrs

from ._codec import check_count, check_id, stored_count
from ._database import Transaction
from ._errors import CasConflict

DEFAULT_CURSOR = "default"


def check_name(name: Any) -> str:
    """A cursor name: a non-empty str of at most 256 characters, no NUL."""
    return check_id(name, "name")


def _value(value: Any, mob_id: str, name: str) -> int:
    return stored_count(value, f"cursor {name!r} of mob {mob_id!r}")


@attrs.frozen
class SetCursor:
    """Move cursor ``name`` forward to ``cursor`` (creating it); returns ``cursor``.

    Raises :class:`CasConflict` (nothing changed) if the stored cursor is greater.
    """

    mob_id: str
    name: str
    cursor: int

    @classmethod
    def of(cls, mob_id: str, cursor: Any, name: Any = DEFAULT_CURSOR) -> SetCursor:
        return cls(mob_id, check_name(name), check_count(cursor, "cursor"))

    def apply(self, tx: Transaction) -> int:
        mob, name, cursor = self.mob_id, self.name, self.cursor
        done = tx.execute(
            "INSERT INTO mob_cursors (mob_id, name, cursor) VALUES (?, ?, ?)"
            " ON CONFLICT (mob_id, name) DO UPDATE SET cursor = excluded.cursor"
            " WHERE excluded.cursor >= mob_cursors.cursor RETURNING 1",
            (mob, name, cursor),
        ).fetchall()
        if not done:
            rows = tx.execute("SELECT cursor FROM mob_cursors WHERE mob_id = ? AND name = ?", (mob, name)).fetchall()
            current = _value(rows[0][0], mob, name)
            raise CasConflict(
                f"cursor {name!r} of mob {mob!r}",
                cursor,
                current,
                "cursors never move backwards; use mob.cursors.reset() to rewind on purpose",
            )
        return cursor


@attrs.frozen
class ResetCursor:
    """Set cursor ``name`` to ``cursor`` whatever it was (an explicit rewind), or remove it
    when ``cursor`` is ``None``. Returns ``None``."""

    mob_id: str
    name: str
    cursor: int | None

    @classmethod
    def of(cls, mob_id: str, cursor: Any = None, name: Any = DEFAULT_CURSOR) -> ResetCursor:
        return cls(mob_id, check_name(name), None if cursor is None else check_count(cursor, "cursor"))

    def apply(self, tx: Transaction) -> None:
        if self.cursor is None:
            tx.execute("DELETE FROM mob_cursors WHERE mob_id = ? AND name = ?", (self.mob_id, self.name))
        else:
            tx.execute(
                "INSERT INTO mob_cursors (mob_id, name, cursor) VALUES (?, ?, ?)"
                " ON CONFLICT (mob_id, name) DO UPDATE SET cursor = excluded.cursor",
                (self.mob_id, self.name, self.cursor),
            )


# -- reads --------------------------------------------------------------------------------------


def get_cursor(conn: apsw.Connection, mob_id: str, name: str) -> int | None:
    """The cursor, or ``None`` if it was never set (or was reset to ``None``)."""
    rows = conn.execute("SELECT cursor FROM mob_cursors WHERE mob_id = ? AND name = ?", (mob_id, name)).fetchall()
    return _value(rows[0][0], mob_id, name) if rows else None


def list_cursors(conn: apsw.Connection, mob_id: str) -> dict[str, int]:
    """Every cursor of the mob, by name."""
    rows = conn.execute("SELECT name, cursor FROM mob_cursors WHERE mob_id = ? ORDER BY name", (mob_id,)).fetchall()
    return {name: _value(v, mob_id, name) for name, v in rows}
