"""The spec of one mob (``mob.spec``): its definition under a revision CAS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mobstore.storage import DeleteSpec, PutSpec, _specs

if TYPE_CHECKING:
    from ._mob import Mob


class MobSpec:
    """The mob's spec (``mob.spec``): a JSON object definition and its revision.

    Revisions start at 1 and grow by one per put. They never restart: after a delete, the
    next put continues from the deleted spec's revision (API.md decision 6), so a client
    holding a stale revision can never pass a CAS by accident. Mutations go through the mob's
    actor, in the mob's mailbox order.
    """

    __slots__ = ("_mob",)

    def __init__(self, mob: Mob) -> None:
        self._mob = mob

    async def put_spec(self, definition: dict[str, Any], revision: int | None = None) -> int:
        """Store ``definition`` as the mob's spec and return its new revision.

        ``revision`` is the CAS precondition: ``None`` stores unconditionally (upsert),
        ``0`` only if the mob has no spec (create-only), ``k`` only if the spec is at
        revision ``k``. A missing ``definition["id"]`` is filled in with the mob id.

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was written; if it returns, the spec is stored.

        Args:
            definition: a JSON object (a ``dict`` of plain JSON), at most 1 MiB encoded.
            revision: the expected current revision (0 = no spec), or ``None``.

        Returns:
            The new revision: the previous revision + 1 (the deleted spec's + 1 after a
            delete; 1 for a mob that never had a spec).

        Raises:
            SpecRevisionConflict: ``revision`` is not the current one (``actual`` says what
                is, 0 for no spec); nothing changed.
            InvalidInput: ``definition`` is not a JSON object, its ``"id"`` is another mob's,
                or ``revision`` is not ``None`` or an int >= 0. Nothing is queued.
        """
        mob = self._mob
        cmd = PutSpec.of(mob.mob_id, definition, revision)
        return await mob._store._call(mob._key, (cmd,))

    async def get_spec(self) -> tuple[dict[str, Any], int] | None:
        """The spec as ``(definition, revision)``, or ``None`` if the mob has none.

        Sees every put acknowledged before the call. The definition is a fresh dict (it
        always contains ``"id"``).
        """
        mob = self._mob
        return await mob._store._read(_specs.get_spec, mob.mob_id)

    async def delete_spec(self, revision: int | None = None) -> bool:
        """Delete the spec; with ``revision``, only if the spec is at that revision.

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was deleted; if it returns, its answer holds.

        Returns:
            ``True`` if the spec was deleted; ``False`` if the mob has no spec, or
            ``revision`` is not the current one (nothing changed). Use :meth:`get_spec` to
            tell the two apart.

        Raises:
            InvalidInput: ``revision`` is not ``None`` or an int >= 0. Nothing is queued.
        """
        mob = self._mob
        return await mob._store._call(mob._key, (DeleteSpec.of(mob.mob_id, revision),))

    def __repr__(self) -> str:
        return f"MobSpec({self._mob.mob_id!r})"
