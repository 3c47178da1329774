"""The event log against a plain-Python model (hypothesis state machine).

Drives ``storage.Database`` and the event commands directly (synchronous, no trio) on a file
that a rule closes and reopens. Rules append single events and batches (some back-dated),
send several appends in one group commit with a failing neighbour, clear, prune, and poll;
after every step each mob's retained events and last cursor must equal the model's. The
model's rule: cursors per mob start at 1, go up by one per event, and never go back (not
after clear, prune or a reopen).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mobstore.storage import AppendEvents, ClearEvents, Database, InvalidInput, NewMobEvent, PruneEvents, _events
from mobstore.storage._codec import time_to_micros

MOBS = ("a", "b")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class _Unit:
    def __init__(self, *commands: Any) -> None:
        self.commands = commands
        self.results: list[Any] | None = None
        self.error: BaseException | None = None


class _Failing:
    def apply(self, tx: Any) -> None:
        tx.execute("UPDATE mob_heads SET next_cursor = next_cursor + 100")
        raise InvalidInput("test", "a failing neighbour")


offsets = st.integers(min_value=-50, max_value=50)
payloads = st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9), max_size=2)
events = st.tuples(st.sampled_from(["k", "j"]), payloads, st.none() | offsets)


class EventLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mobstore-events-sm-")
        self.path = os.path.join(self.dir, "s.db")
        self.now = T0
        self.db = Database.open(self.path, durability="normal", clock=lambda: self.now)
        self.log: dict[str, list[tuple[int, datetime, str, dict]]] = {m: [] for m in MOBS}
        self.next: dict[str, int] = {m: 1 for m in MOBS}

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _news(self, spec: list[tuple[str, dict, int | None]]) -> list[NewMobEvent]:
        return [NewMobEvent(k, p, timestamp=None if off is None else T0 + timedelta(seconds=off)) for k, p, off in spec]

    def _model_append(self, mob: str, spec: list[tuple[str, dict, int | None]]) -> list[int]:
        cursors = []
        for k, p, off in spec:
            ts = self.now if off is None else T0 + timedelta(seconds=off)
            c = self.next[mob]
            self.next[mob] += 1
            self.log[mob].append((c, ts, k, p))
            cursors.append(c)
        return cursors

    @rule(mob=st.sampled_from(MOBS), spec=st.lists(events, max_size=4))
    def append_batch(self, mob: str, spec: list) -> None:
        u = _Unit(AppendEvents.of(mob, self._news(spec)))
        self.db.apply([u])
        assert u.error is None
        assert [e.cursor for e in u.results[0]] == self._model_append(mob, spec)

    @rule(a=st.lists(events, min_size=1, max_size=2), b=st.lists(events, min_size=1, max_size=2))
    def group_with_failing_neighbour(self, a: list, b: list) -> None:
        units = [_Unit(AppendEvents.of("a", self._news(a))), _Unit(_Failing()), _Unit(AppendEvents.of("b", self._news(b)))]
        self.db.apply(units)
        assert isinstance(units[1].error, InvalidInput)
        assert [e.cursor for e in units[0].results[0]] == self._model_append("a", a)
        assert [e.cursor for e in units[2].results[0]] == self._model_append("b", b)

    @rule(seconds=st.integers(0, 20))
    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(mob=st.sampled_from(MOBS))
    def clear(self, mob: str) -> None:
        self.db.apply([_Unit(ClearEvents(mob))])
        self.log[mob] = []

    @rule(mob=st.sampled_from(MOBS), off=offsets)
    def prune(self, mob: str, off: int) -> None:
        t = T0 + timedelta(seconds=off)
        u = _Unit(PruneEvents(mob, time_to_micros(t)))
        self.db.apply([u])
        keep = [e for e in self.log[mob] if e[1] >= t]
        assert u.results == [len(self.log[mob]) - len(keep)]
        self.log[mob] = keep

    @rule(mob=st.sampled_from(MOBS), after=st.integers(0, 30), limit=st.integers(0, 5))
    def poll(self, mob: str, after: int, limit: int) -> None:
        got = self.db.read(_events.poll, mob, after, limit)
        want = [e for e in self.log[mob] if e[0] > after][:limit]
        assert [(e.cursor, e.timestamp, e.kind, e.payload) for e in got] == want

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = Database.open(self.path, durability="normal", clock=lambda: self.now)

    @invariant()
    def log_matches_model(self) -> None:
        for mob in MOBS:
            got = self.db.read(_events.replay_all, mob)
            assert [(e.cursor, e.timestamp, e.kind, e.payload) for e in got] == self.log[mob]
            assert self.db.read(_events.last_cursor, mob) == self.next[mob] - 1


TestEventLogMachine = EventLogMachine.TestCase
TestEventLogMachine.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
