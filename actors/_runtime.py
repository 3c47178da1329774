"""The runtime handle: routed to the one actor that owns a runtime id."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._store import Store


class Runtime:
    """Handle of one runtime id. Its mutations are serialised by the runtime's actor
    (``"runtime:<id>"``); the runtime-store operations arrive with the runtime store."""

    __slots__ = ("_store", "runtime_id", "_key")

    def __init__(self, store: Store, runtime_id: str) -> None:
        self._store = store
        self.runtime_id = runtime_id
        self._key = f"runtime:{runtime_id}"

    def __repr__(self) -> str:
        return f"Runtime({self.runtime_id!r})"
