"""Named subscription cursors of one mob (``mob.cursors``), persisted with the mob."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobstore.storage import ResetCursor, SetCursor, _cursors

if TYPE_CHECKING:
    from mobstore.storage import Command

    from ._mob import Mob

DEFAULT = _cursors.DEFAULT_CURSOR


class MobCursors:
    """How far each named subscriber of this mob's event log has got (SEMANTICS.md §8.2).

    ``get`` is ``None`` before the first ``set``; cursors survive restarts. A cursor never
    moves backwards by accident: :meth:`set` only moves it forward (or keeps it), and a
    lower value is :class:`CasConflict`; rewinding is explicit, with :meth:`reset`.
    ``"default"`` is upstream mobkit's single subscription cursor.
    """

    __slots__ = ("_mob",)

    def __init__(self, mob: Mob) -> None:
        self._mob = mob

    async def get(self, name: str = DEFAULT) -> int | None:
        """The cursor ``name``, or ``None`` if it was never set.

        Raises:
            InvalidInput: a bad name.
            DecodeError: the stored value is not a cursor (edited by hand).
        """
        mob = self._mob
        return await mob._store._read(_cursors.get_cursor, mob.mob_id, _cursors.check_name(name))

    async def set(self, cursor: int, name: str = DEFAULT) -> int:
        """Move the cursor ``name`` forward to ``cursor`` (the same value again is fine).

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was written; if it returns, the cursor is stored.

        Returns:
            ``cursor``.

        Raises:
            CasConflict: the stored cursor is greater (``expected`` = ``cursor``,
                ``actual`` = the stored one); nothing changed. Use :meth:`reset` to rewind.
            InvalidInput: ``cursor`` is not an int in 0..2**63-1, or a bad name. Nothing is
                queued.
        """
        mob = self._mob
        return await mob._store._call(mob._key, (SetCursor.of(mob.mob_id, cursor, name),))

    async def reset(self, cursor: int | None = None, name: str = DEFAULT) -> None:
        """Set the cursor ``name`` to ``cursor`` whatever it is (an explicit rewind), or with
        ``None`` remove it, so that :meth:`get` is ``None`` again.

        Atomic, durable and cancellation-safe as :meth:`set`.

        Raises:
            InvalidInput: a bad cursor or name. Nothing is queued.
        """
        mob = self._mob
        await mob._store._call(mob._key, (ResetCursor.of(mob.mob_id, cursor, name),))

    async def list(self) -> dict[str, int]:
        """Every cursor of this mob, by name."""
        mob = self._mob
        return await mob._store._read(_cursors.list_cursors, mob.mob_id)

    def set_command(self, cursor: int, name: str = DEFAULT) -> Command:
        """:meth:`set` as a command for ``mob.commit``, so a consumer's writes and its cursor
        advance commit together (exactly once): a cursor that would move backwards raises
        :class:`CasConflict` and rolls the whole commit back."""
        return SetCursor.of(self._mob.mob_id, cursor, name)

    def __repr__(self) -> str:
        return f"MobCursors({self._mob.mob_id!r})"
