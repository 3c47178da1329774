"""The realm config (``store.config``): a JSON object under a generation CAS.

The realm is one entity: config writes go through the realm's actor (key ``"realm"``, the
same actor as realm profiles), one message per call, in mailbox order. Config and
generation live in one row and change in one statement, so they are never out of step, not
even after a crash (``storage/_config.py`` explains the design).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mobstore.storage import (
    ConfigResolvedPaths,
    ConfigSnapshot,
    ConfigStoreMetadata,
    PatchConfig,
    SetConfig,
    _config,
)
from mobstore.storage._codec import encode_object

from ._realm import REALM_KEY

if TYPE_CHECKING:
    from ._store import Store


class ConfigRuntime:
    """The realm config (``store.config``): ``get``, ``set``, ``patch`` with an optional
    ``expected_generation``.

    The generation is 0 before the first write and grows by exactly one per successful
    ``set`` or ``patch``; a failed call (conflict, invalid config) changes neither the config
    nor the generation. Of several concurrent writers passing the same expected generation,
    exactly one succeeds and every other gets :class:`GenerationConflict`.

    Args:
        store: the open store.
        initial: the config before the first write (default ``{}``); not validated.
        validator: called with every new config before it is stored; raises
            :class:`InvalidInput` (or ``ValueError``) to refuse it. Default:
            :func:`mobstore.storage.validate_config` (upstream's rules). It runs in the
            commit thread, so keep it quick and pure.
        realm_id, instance_id: reported in the snapshot's metadata.
    """

    __slots__ = ("_store", "_initial", "_validator", "metadata")

    def __init__(
        self,
        store: Store,
        *,
        initial: dict[str, Any] | None = None,
        validator: _config.Validator | None = _config.validate_config,
        realm_id: str | None = None,
        instance_id: str | None = None,
    ) -> None:
        self._store = store
        self._initial = encode_object({} if initial is None else initial, "initial")
        self._validator = validator
        path = store.path
        #: Where this config lives: backend ``"sqlite"``; resolved paths for a file store.
        self.metadata = ConfigStoreMetadata(
            realm_id=realm_id,
            instance_id=instance_id,
            backend="sqlite",
            resolved_paths=ConfigResolvedPaths.for_store(path) if path else None,
        )

    async def get(self) -> ConfigSnapshot:
        """The config and its generation (the initial config and 0 if never written).

        Sees every write acknowledged before the call. The config is a fresh dict.
        """
        config, generation = await self._store._read(_config.get_config, self._initial)
        return ConfigSnapshot(config, generation, self.metadata)

    async def set(self, config: dict[str, Any], expected_generation: int | None = None) -> ConfigSnapshot:
        """Replace the config; with ``expected_generation``, only if it is current.

        Atomic and durable when it returns: the config and generation + 1 are written by
        one statement. Atomic with respect to cancellation: if the call raises
        ``Cancelled`` nothing was written; if it returns, the new config is stored.

        Returns:
            The new snapshot (generation = previous + 1).

        Raises:
            GenerationConflict: ``expected_generation`` is not the current generation
                (``expected``, ``current``); checked first, nothing written.
            InvalidInput: ``config`` is not a JSON object of plain JSON (before anything is
                queued), or the validator refused it (nothing written).
        """
        cmd = SetConfig.of(config, expected_generation, self._validator, self._initial)
        new, generation = await self._store._call(REALM_KEY, (cmd,))
        return ConfigSnapshot(new, generation, self.metadata)

    async def patch(self, delta: Any, expected_generation: int | None = None) -> ConfigSnapshot:
        """Apply a JSON merge patch (RFC 7386) to the current config; with
        ``expected_generation``, only if it is current.

        The merge runs inside the transaction, on the config as committed, so concurrent
        patches never merge onto a stale base. ``None`` values delete keys; a patch that is
        not an object replaces the whole config (and must then be an object). Atomic,
        durable and cancellation-safe as :meth:`set`.

        Returns:
            The new snapshot, carrying the merged config.

        Raises:
            GenerationConflict: as for :meth:`set`.
            InvalidInput: ``delta`` is not plain JSON (before anything is queued), or the
                merged config is not an object or is refused by the validator (nothing
                written).
        """
        cmd = PatchConfig.of(delta, expected_generation, self._validator, self._initial)
        new, generation = await self._store._call(REALM_KEY, (cmd,))
        return ConfigSnapshot(new, generation, self.metadata)

    def __repr__(self) -> str:
        return "ConfigRuntime()"
