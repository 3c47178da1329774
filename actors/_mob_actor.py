"""The mob actor's behaviour: what a mob actor remembers between messages.

State is a cache of the database, rebuilt by ``recover`` at every (re)start: today the last
committed cursor (``head``), which later capabilities (live tails, ``wait_cursor``) follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobstore.storage import AppendEvents, _events
from mobstore.storage._atomic import iter_applied

from ._request import Request

if TYPE_CHECKING:
    from ._store import Store


class MobBehaviour:
    def __init__(self, store: Store, mob_id: str) -> None:
        self._store = store
        self.mob_id = mob_id
        self.head = 0

    async def recover(self) -> None:
        self.head = await self._store._read(_events.last_cursor, self.mob_id)

    def committed(self, requests: list[Request]) -> None:
        head = self.head
        self._follow(requests)
        if self.head != head:
            tail = self._store._tails.get(self.mob_id)
            if tail is not None:  # someone subscribes or waits: wake them
                tail.advance(self.head)

    def _follow(self, requests: list[Request]) -> None:
        for r in requests:
            results = r.results
            if results is None:
                continue
            cmds = r.commands
            if len(cmds) == 1 and type(cmds[0]) is AppendEvents:  # the hot path: one append
                if results[0]:
                    self.head = results[0][-1].cursor
                continue
            for cmd, res in iter_applied(cmds, results):
                if type(cmd) is AppendEvents and res:
                    self.head = res[-1].cursor
