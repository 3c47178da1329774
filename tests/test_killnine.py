"""The kill -9 harness: a child runs the seeded workload and reports every acknowledged
commit; the parent SIGKILLs it at a seeded moment, reopens the store and checks that every
acknowledged commit is there, nothing is half-visible or out of order, and the file is
intact. 20 iterations by default, hundreds under ``-m slow``; and the checks are shown to
catch what they claim to catch (a store file tampered with by hand fails them).
"""

from __future__ import annotations

import apsw
import pytest

from mobstore.actors import NewMobEvent
from mobstore.actors.testing import kill9_app, kill9_once, run_chaos


def _run(harness, iterations: int) -> None:
    killed = 0
    for _ in range(iterations):
        v = harness.run_once()
        assert v.ok, v.summary() + "\n" + v.detail
        killed += v.outcome == "killed"
    assert killed == iterations  # every child was still working when it was killed


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_kill9_ten_iterations(kill9, durability):
    """10 + 10 iterations on one file per durability, each continuing where the last died:
    every acknowledged commit of every iteration so far is checked each time."""
    harness = kill9(seed=11, durability=durability)
    _run(harness, 10)
    assert len(harness.acks) > 10  # the loop did work, and it accumulated


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["full", "normal"])
def test_kill9_soak(kill9, durability):
    """150 iterations per durability (300 in all)."""
    _run(kill9(seed=2026, durability=durability), 150)


def test_kill9_once_returns_a_verdict(tmp_path):
    v = kill9_once(str(tmp_path / "s.db"), seed=5, iteration=3, max_kill_after=10)
    assert v.ok and v.iteration == 3 and 1 <= v.killed_after <= 10 and v.acked >= v.killed_after


class TestTheChecksCatchDamage:
    """Tamper with a killed store by hand: the verdict must say what is wrong."""

    @pytest.fixture
    def killed(self, kill9):
        harness = kill9(seed=3, max_kill_after=120)
        while True:  # until every writer and the consumer did some work
            v = harness.run_once()
            assert v.ok, v.summary()
            kinds = {a["k"] for a in harness.acks}
            if {"ev", "spec", "run", "profile", "config", "receipt"} <= kinds and harness.previous.consumer:
                return harness

    def _sql(self, harness, sql: str) -> None:
        conn = apsw.Connection(harness.path)
        conn.execute(sql)
        conn.close()

    def test_a_lost_event_is_lost_and_a_gap(self, killed):
        self._sql(killed, "DELETE FROM mob_events WHERE mob_id = 'chaos-1' AND cursor = 2")
        v = killed.check()
        assert not v.ok and v.lost and any("cursors" in o for o in v.order)

    def test_a_spec_revision_without_its_event_is_torn(self, killed):
        self._sql(killed, "UPDATE mob_specs SET revision = revision + 1 WHERE mob_id = 'chaos-0'")
        v = killed.check()
        assert not v.ok and any("spec" in t for t in v.torn)

    def test_a_run_missing_its_loop_is_torn(self, killed):
        self._sql(killed, "DELETE FROM run_loops")
        v = killed.check()
        assert not v.ok and any("reference run" in t for t in v.torn)

    def test_a_receipt_without_its_snapshot_is_torn(self, killed):
        self._sql(killed, "DELETE FROM runtime_receipts WHERE sequence = (SELECT MAX(sequence) FROM runtime_receipts)")
        v = killed.check()
        assert not v.ok and (v.torn or v.lost)

    def test_a_double_projection_breaks_exactly_once(self, killed):
        self._sql(killed, """INSERT INTO mob_events SELECT mob_id, cursor + 1000000, ts_us, kind, payload
                             FROM mob_events WHERE mob_id = 'chaos-0' AND kind = 'projected' LIMIT 1""")
        v = killed.check()
        assert not v.ok and any("consumer" in t for t in v.torn)


# -- a user's own workload --------------------------------------------------------------------


async def orders(store, ack, seed):
    """The workload of the docs' example: one writer appending numbered orders."""
    log, n = store.mob("orders").events, 0
    while True:
        ev = await log.append(NewMobEvent("order_placed", {"n": n}))
        ack({"cursor": ev.cursor, "n": n})
        n += 1


async def test_kill9_app_runs_a_user_workload(tmp_path):
    """kill9_app: the user's workload in a child, the user's check in the parent; a check
    that fails is reported, not raised."""

    async def check(store, acks):
        events = {e.cursor: e.payload for e in await store.mob("orders").events.replay_all()}
        for a in acks:
            assert events.get(a["cursor"]) == {"n": a["n"]}, a

    path = tmp_path / "app.db"
    verdict = await kill9_app(path, f"{__name__}:orders", check, seed=1)
    assert verdict.ok, verdict.problems
    assert verdict.killed_after >= 1 and len(verdict.acks) >= verdict.killed_after

    async def wrong(store, acks):
        assert not acks, "acks were expected to be empty"

    verdict = await kill9_app(path, f"{__name__}:orders", wrong, seed=2)
    assert not verdict.ok and "check failed" in verdict.problems[0]


def test_run_chaos_renders_a_verdict_table():
    lines: list[str] = []
    report = run_chaos(iterations=2, seed=4, durability="normal", progress=lines.append, max_kill_after=20)
    assert report.ok and len(lines) == 2 and report.lost == 0 and report.torn == 0
    table = report.table()
    assert "every acknowledged commit present" in table and "verdict: PASS: 0 lost, 0 torn" in table
