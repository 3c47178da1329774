"""The mob event log: commands and reads (SQL over an open transaction).

Cursor rule: ``mob_heads.next_cursor`` is the per-mob high-water mark, advanced in the same
transaction as the insert. It never decreases, so a cursor is never reused: not after
``clear``, ``prune`` or a restart. If a head row were ever missing while events exist, the
next cursor is ``MAX(cursor) + 1`` (never below it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import apsw
import attrs

from ._codec import (
    _loads,
    check_count,
    check_time,
    decode_json,
    encode_object,
    micros_to_time,
    time_to_micros,
)
from ._database import Transaction
from ._errors import InvalidInput, PruneBlocked
from ._records import MobEvent, NewMobEvent

# (timestamp in µs or None for "now", the same as a datetime, kind, payload JSON text, the
# payload itself). The returned MobEvent shares the caller's payload dict: what is stored is
# the encoded text.
_Row = tuple[int | None, datetime | None, str, str, dict[str, Any]]


def encode_event(mob_id: str, new: Any, i: int | None) -> _Row:
    """Validate and encode one event: ``i`` is its index in a batch (errors name
    ``news[i]...``), ``None`` for a single ``append`` (errors name ``new...``)."""
    if type(new) is not NewMobEvent:
        raise InvalidInput(_name(i), f"must be a NewMobEvent, got {type(new).__name__}")
    if new.mob_id is not None and new.mob_id != mob_id:
        raise InvalidInput(f"{_name(i)}.mob_id", f"{new.mob_id!r} is another mob; this handle is for {mob_id!r}")
    t = new.timestamp
    text = encode_object(new.payload, "payload" if i is None else f"news[{i}].payload")
    return (None if t is None else time_to_micros(t), t, new.kind, text, new.payload)


def _name(i: int | None) -> str:
    return "new" if i is None else f"news[{i}]"


@attrs.frozen
class AppendEvents:
    """Append events to one mob's log, all or none; returns the list of :class:`MobEvent`.

    Build it with :meth:`of`, which validates and encodes on the caller's side, so bad input
    fails before anything is queued.
    """

    mob_id: str
    rows: tuple[_Row, ...]

    @classmethod
    def of(cls, mob_id: str, news: Sequence[NewMobEvent]) -> AppendEvents:
        if type(news) is not tuple and type(news) is not list:
            if isinstance(news, NewMobEvent) or not isinstance(news, Sequence):
                raise InvalidInput("news", f"must be a list of NewMobEvent, got {type(news).__name__}")
        return cls(mob_id, tuple([encode_event(mob_id, n, i) for i, n in enumerate(news)]))

    def apply(self, tx: Transaction) -> list[MobEvent]:
        return self.apply_many(tx, (self,))[0]

    @staticmethod
    def apply_many(tx: Transaction, cmds: Sequence[AppendEvents]) -> list[list[MobEvent]]:
        """Apply several appends (any mobs) in order with one head update per mob and one
        multi-row insert: the same outcome as applying them one at a time."""
        need: dict[str, int] = {}
        for c in cmds:
            need[c.mob_id] = need.get(c.mob_id, 0) + len(c.rows)
        nxt: dict[str, int] = {}
        for mob, n in need.items():
            if n:
                nxt[mob] = _advance_head(tx, mob, n)
        now: int | None = None  # the clock is read once per batch of appends
        now_dt: datetime | None = None
        params = []
        out = []
        for c in cmds:
            mob = c.mob_id
            first = nxt.get(mob, 0)
            events = []
            for i, (ts, dt, kind, text, payload) in enumerate(c.rows, first):
                if ts is None:
                    if now is None:
                        now_dt = check_time(tx.now(), "clock()")
                        now = time_to_micros(now_dt)
                    ts, dt = now, now_dt
                params.append((mob, i, ts, kind, text))
                events.append(MobEvent(i, dt, mob, kind, payload))
            if events:
                nxt[mob] = first + len(events)
            out.append(events)
        if params:
            tx.executemany(
                "INSERT INTO mob_events (mob_id, cursor, ts_us, kind, payload) VALUES (?, ?, ?, ?, ?)",
                params,
            )
        return out


def committed_events(cmd: AppendEvents, events: list[MobEvent]) -> list[MobEvent]:
    """``events`` (the result of ``cmd``) with payloads decoded from the text that was
    stored, not the caller's dicts, which the caller may still change after ``append``
    returned: what live subscribers are served from memory must be what was committed."""
    return [
        MobEvent(e.cursor, e.timestamp, e.mob_id, e.kind, _loads(row[3]))
        for e, row in zip(events, cmd.rows)
    ]


def _advance_head(tx: Transaction, mob: str, n: int) -> int:
    """Reserve ``n`` cursors of ``mob``; return the first."""
    got = tx.execute(
        "UPDATE mob_heads SET next_cursor = next_cursor + ? WHERE mob_id = ? RETURNING next_cursor",
        (n, mob),
    ).fetchall()
    if got:
        return got[0][0] - n
    first = tx.execute(
        "SELECT COALESCE(MAX(cursor), 0) + 1 FROM mob_events WHERE mob_id = ?", (mob,)
    ).fetchall()[0][0]
    tx.execute("INSERT INTO mob_heads (mob_id, next_cursor) VALUES (?, ?)", (mob, first + n))
    return first


@attrs.frozen
class ClearEvents:
    """Delete every event of the mob; the cursor high-water mark stays. Returns ``None``."""

    mob_id: str

    def apply(self, tx: Transaction) -> None:
        tx.execute("DELETE FROM mob_events WHERE mob_id = ?", (self.mob_id,))


@attrs.frozen
class PruneEvents:
    """Delete the mob's events with ``timestamp < older_than`` (strict); returns the count.

    Unless ``force``, it first checks the mob's persisted consumer cursors (``mob_cursors``):
    if an event to delete lies after the slowest consumer's cursor, it raises
    :class:`PruneBlocked` naming that consumer and deletes nothing.
    """

    mob_id: str
    older_than_us: int
    force: bool = False

    def apply(self, tx: Transaction) -> int:
        if not self.force:
            slowest = tx.execute(
                "SELECT name, cursor FROM mob_cursors WHERE mob_id = ? ORDER BY cursor, name LIMIT 1",
                (self.mob_id,),
            ).fetchall()
            if slowest:
                name, cursor = slowest[0]
                held = tx.execute(
                    "SELECT 1 FROM mob_events WHERE mob_id = ? AND cursor > ? AND ts_us < ? LIMIT 1",
                    (self.mob_id, cursor, self.older_than_us),
                ).fetchall()
                if held:
                    raise PruneBlocked(self.mob_id, name, cursor)
        tx.execute(
            "DELETE FROM mob_events WHERE mob_id = ? AND ts_us < ?", (self.mob_id, self.older_than_us)
        )
        return tx.conn.changes()


# -- reads (run on a reader connection) ------------------------------------------------------

_SELECT = "SELECT cursor, ts_us, kind, payload FROM mob_events WHERE mob_id = ? AND cursor > ? ORDER BY cursor"


def _event(mob_id: str, row: tuple[int, int, str, str]) -> MobEvent:
    cursor, ts, kind, payload = row
    return MobEvent(cursor, micros_to_time(ts), mob_id, kind, decode_json(payload, f"payload of event {mob_id}#{cursor}"))


def poll(conn: apsw.Connection, mob_id: str, after_cursor: int, limit: int) -> list[MobEvent]:
    """Events with ``cursor > after_cursor``, ascending, at most ``limit``."""
    if limit == 0:
        return []
    rows = conn.execute(_SELECT + " LIMIT ?", (mob_id, after_cursor, limit)).fetchall()
    return [_event(mob_id, r) for r in rows]


def replay_all(conn: apsw.Connection, mob_id: str) -> list[MobEvent]:
    """Every retained event of the mob, ascending by cursor."""
    return [_event(mob_id, r) for r in conn.execute(_SELECT, (mob_id, 0)).fetchall()]


def last_cursor(conn: apsw.Connection, mob_id: str) -> int:
    """The last cursor ever assigned in the mob (0 if none): ``next_cursor - 1``."""
    row = conn.execute(
        "SELECT MAX(COALESCE((SELECT next_cursor - 1 FROM mob_heads WHERE mob_id = ?), 0),"
        " COALESCE((SELECT MAX(cursor) FROM mob_events WHERE mob_id = ?), 0))",
        (mob_id, mob_id),
    ).fetchall()
    return row[0][0]


def check_poll_args(after_cursor: Any, limit: Any) -> None:
    check_count(after_cursor, "after_cursor")
    check_count(limit, "limit")
