"""Mob- and run-scoped labels of one mob (``mob.labels``), persisted with the mob."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mobstore.storage import DeleteLabels, MetadataScope, SetLabels, _labels

if TYPE_CHECKING:
    from ._mob import Mob


class MobLabels:
    """Labels of the mob (``run_id=None``) and of its runs: maps of string to string, for
    external context such as ``repo``, ``branch`` or ``customer`` (SEMANTICS.md §8.1).

    ``set`` replaces the whole set and never merges (merge by reading, changing and writing
    back); an empty set clears it. Run scopes belong to this mob: another mob's run with
    the same id has its own labels. Mutations go through the mob's actor, in the mob's
    mailbox order, and survive restarts.

    Limits: at most 256 entries per scope, keys non-empty and at most 256 bytes of UTF-8,
    values at most 4096 bytes. Run ids: a UUID (either spelling) is canonicalised; any other
    non-empty id of at most 256 characters is kept as given.
    """

    __slots__ = ("_mob",)

    def __init__(self, mob: Mob) -> None:
        self._mob = mob

    async def set(self, labels: Mapping[str, str], run_id: uuid.UUID | str | None = None) -> None:
        """Replace the labels of the mob, or of run ``run_id``; ``{}`` clears them.

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was written; if it returns, the new set is stored.

        Raises:
            InvalidInput: ``labels`` is ``None`` or not a map of string to string, breaks a
                limit, or ``run_id`` is empty or not an id. Nothing is queued.
        """
        mob = self._mob
        await mob._store._call(mob._key, (SetLabels.of(mob.mob_id, labels, run_id),))

    async def get(self, run_id: uuid.UUID | str | None = None) -> dict[str, str]:
        """The labels of the mob, or of run ``run_id``, sorted by key; ``{}`` if none.

        Sees every write acknowledged before the call.
        """
        run = "" if run_id is None else _labels.label_run_id(run_id)
        mob = self._mob
        return await mob._store._read(_labels.get_labels, mob.mob_id, run)

    async def delete(self, run_id: uuid.UUID | str | None = None) -> dict[str, str] | None:
        """Remove the labels of the mob, or of run ``run_id``; other scopes are untouched.

        Atomic, durable and cancellation-safe as :meth:`set`.

        Returns:
            The labels that were deleted, or ``None`` if there were none.
        """
        mob = self._mob
        return await mob._store._call(mob._key, (DeleteLabels.of(mob.mob_id, run_id),))

    async def list(self) -> list[tuple[MetadataScope, dict[str, str]]]:
        """Every label set of this mob: the mob scope first (if set), then its runs by run
        id. Other mobs never appear, even with equal run ids."""
        mob = self._mob
        return await mob._store._read(_labels.list_labels, mob.mob_id)

    def __repr__(self) -> str:
        return f"MobLabels({self._mob.mob_id!r})"
