"""Spec revision CAS against a Python model (hypothesis state machine).

Drives ``storage.Database`` and the spec commands directly (synchronous, no trio), on a file
store that a rule closes and reopens. The model is the rule of SEMANTICS.md §4.2 with the
tombstone high-water mark of §4.3: ``current`` is the live revision or 0; a put checks the
expected revision against ``current`` and stores ``high_water + 1``; a delete returns False
for an absent spec or a stale revision. Besides single puts and deletes, rules send several
requests in one group commit (each its own unit) and several commands as one atomic batch
(all or nothing), so the SAVEPOINT paths of the committer are checked against the model too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mobstore.storage import Atomic, Database, DeleteSpec, PutSpec, SpecRevisionConflict, _specs
from mobstore.storage._atomic import CommitAborted
from strategies import spec_definitions as definitions
from strategies import spec_mobs as mobs
from strategies import spec_revisions as revisions

MOBS = ("a", "b", "c")


class _Unit:
    """A minimal committer unit (what ``actors.Request`` is to the real committer)."""

    def __init__(self, *commands: Any) -> None:
        self.commands = commands
        self.results: list[Any] | None = None
        self.error: BaseException | None = None


@attrs.define
class _Spec:
    high: int = 0
    definition: dict[str, Any] | None = None  # None: no live spec

    @property
    def current(self) -> int:
        return self.high if self.definition is not None else 0


class _Model:
    def __init__(self) -> None:
        self.specs = {m: _Spec() for m in MOBS}

    def put(self, mob: str, definition: dict[str, Any], expected: int | None) -> int | SpecRevisionConflict:
        s = self.specs[mob]
        if expected is not None and expected != s.current:
            return SpecRevisionConflict(mob, expected, s.current)
        s.high += 1
        s.definition = {"id": mob, **definition}
        return s.high

    def delete(self, mob: str, expected: int | None) -> bool:
        s = self.specs[mob]
        if s.definition is None or (expected is not None and expected != s.high):
            return False
        s.definition = None
        return True

    def copy(self) -> _Model:
        m = _Model()
        m.specs = {k: attrs.evolve(v) for k, v in self.specs.items()}
        return m


def _expected(data: st.DataObject, model: _Model, mob: str) -> int | None:
    cur = model.specs[mob].current
    high = model.specs[mob].high
    return data.draw(st.sampled_from([None, 0, cur, cur + 1, max(cur - 1, 0), high, high + 1]))


@settings(max_examples=50, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
class SpecRevisions(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="mobstore-specs-")
        self.path = os.path.join(self.dir, "store.db")
        self.db = Database.open(self.path, durability="normal", readers=1)
        self.model = _Model()

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _apply(self, *units: _Unit) -> None:
        self.db.apply(units)

    @rule(mob=mobs, definition=definitions, data=st.data())
    def put(self, mob: str, definition: dict[str, Any], data: st.DataObject) -> None:
        expected = _expected(data, self.model, mob)
        u = _Unit(PutSpec.of(mob, definition, expected))
        self._apply(u)
        want = self.model.put(mob, definition, expected)
        if isinstance(want, SpecRevisionConflict):
            assert isinstance(u.error, SpecRevisionConflict)
            assert (u.error.mob_id, u.error.expected, u.error.actual) == (mob, want.expected, want.actual)
        else:
            assert u.error is None and u.results == [want]

    @rule(mob=mobs, data=st.data())
    def delete(self, mob: str, data: st.DataObject) -> None:
        expected = _expected(data, self.model, mob)
        u = _Unit(DeleteSpec.of(mob, expected))
        self._apply(u)
        assert u.error is None and u.results == [self.model.delete(mob, expected)]

    @rule(ops=st.lists(st.tuples(mobs, st.booleans(), definitions, revisions), min_size=2, max_size=5))
    def group_commit(self, ops: list[tuple[str, bool, dict[str, Any], int | None]]) -> None:
        """Several requests in one transaction: each behaves as if applied alone, in order."""
        units = [_Unit(PutSpec.of(m, d, e) if is_put else DeleteSpec.of(m, e)) for m, is_put, d, e in ops]
        self._apply(*units)
        for u, (m, is_put, d, e) in zip(units, ops):
            want = self.model.put(m, d, e) if is_put else self.model.delete(m, e)
            if isinstance(want, SpecRevisionConflict):
                assert isinstance(u.error, SpecRevisionConflict) and u.error.actual == want.actual
            else:
                assert u.error is None and u.results == [want]

    @rule(mob=mobs, ops=st.lists(st.tuples(st.booleans(), definitions, revisions), min_size=1, max_size=4))
    def atomic(self, mob: str, ops: list[tuple[bool, dict[str, Any], int | None]]) -> None:
        """Several commands as one atomic batch: all of them, or (on a conflict or a False)
        none of them."""
        cmds = tuple(PutSpec.of(mob, d, e) if is_put else DeleteSpec.of(mob, e) for is_put, d, e in ops)
        u = _Unit(Atomic(mob, cmds))
        self._apply(u)
        trial = self.model.copy()
        results: list[Any] = []
        failed: Any = None
        for is_put, d, e in ops:
            r = trial.put(mob, d, e) if is_put else trial.delete(mob, e)
            if isinstance(r, SpecRevisionConflict) or r is False:
                failed = r
                break
            results.append(r)
        if failed is None:
            assert u.error is None and u.results == [results]
            self.model = trial
        elif failed is False:
            assert isinstance(u.error, CommitAborted) and u.error.index == len(results)
            assert u.error.results == [*results, False]
        else:
            assert isinstance(u.error, SpecRevisionConflict) and u.error.actual == failed.actual

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = Database.open(self.path, durability="normal", readers=1)

    @precondition(lambda self: hasattr(self, "db"))
    @invariant()
    def store_matches_model(self) -> None:
        live = sorted(m for m, s in self.model.specs.items() if s.definition is not None)
        assert self.db.read(_specs.list_specs) == live
        for m, s in self.model.specs.items():
            got = self.db.read(_specs.get_spec, m)
            assert got == (None if s.definition is None else (s.definition, s.high))


TestSpecRevisions = SpecRevisions.TestCase
