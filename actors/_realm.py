"""Realm profiles (``store.profiles``): named, reusable profiles under a revision CAS.

The realm is one entity: its mutations go through one actor (key ``"realm"``), one message
per call, applied in mailbox order. Reads go to a reader connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobstore.storage import CreateProfile, DeleteProfile, Profile, StoredRealmProfile, UpdateProfile, _profiles

if TYPE_CHECKING:
    from ._store import Store

REALM_KEY = "realm"


class RealmProfiles:
    """The realm's profiles (``store.profiles``).

    A profile's revision is 1 after create and grows by one per update. Revisions never
    restart: a name deleted and created again continues from the deleted revision (API.md
    decision 6), so a stale revision can never match the new profile. ``list`` is sorted by
    name; ``updated_at`` never goes backwards, ``created_at`` never changes.
    """

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, name: str, profile: Profile) -> StoredRealmProfile:
        """Create the profile ``name``.

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was written; if it returns, the profile is stored.

        Returns:
            The stored record: revision 1 (or the deleted profile's revision + 1 if the name
            was used before), ``created_at == updated_at ==`` the store clock.

        Raises:
            CasConflict: a profile called ``name`` exists (``actual`` is its revision);
                nothing changed.
            InvalidInput: ``name`` is not a non-empty str of at most 256 characters, or
                ``profile`` is not a :class:`Profile` that encodes. Nothing is queued.
        """
        return await self._store._call(REALM_KEY, (CreateProfile.of(name, profile),))

    async def get(self, name: str) -> StoredRealmProfile | None:
        """The profile called ``name``, or ``None``. Sees every write acknowledged before."""
        _profiles.check_name(name)
        return await self._store._read(_profiles.get_profile, name)

    async def list(self) -> list[StoredRealmProfile]:
        """Every profile, sorted by name."""
        return await self._store._read(_profiles.list_profiles)

    async def update(self, name: str, profile: Profile, expected_revision: int) -> StoredRealmProfile:
        """Replace the profile ``name`` if it is at ``expected_revision``.

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was written; if it returns, the update is stored.

        Returns:
            The new record: revision ``expected_revision + 1``, ``created_at`` unchanged,
            ``updated_at`` the store clock (never earlier than the previous one).

        Raises:
            NotFound: there is no profile ``name`` (checked before the revision).
            CasConflict: its revision is not ``expected_revision`` (``actual`` says what it
                is); nothing changed.
            InvalidInput: a bad name, profile or revision. Nothing is queued.
        """
        return await self._store._call(REALM_KEY, (UpdateProfile.of(name, profile, expected_revision),))

    async def delete(self, name: str, expected_revision: int) -> StoredRealmProfile:
        """Delete the profile ``name`` if it is at ``expected_revision``.

        Atomic and durable when it returns. Atomic with respect to cancellation: if the call
        raises ``Cancelled`` nothing was deleted; if it returns, the profile is gone.

        Returns:
            The deleted record, with the revision it had.

        Raises:
            NotFound: there is no profile ``name``.
            CasConflict: its revision is not ``expected_revision``; the profile survives.
            InvalidInput: a bad name or revision. Nothing is queued.
        """
        return await self._store._call(REALM_KEY, (DeleteProfile.of(name, expected_revision),))

    def __repr__(self) -> str:
        return "RealmProfiles()"
