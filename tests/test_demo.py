"""`mobstore demo`: the workload passes its own verification at small sizes, and the
verification is not vacuous (a damaged store or a doctored ledger fails the right checks)."""

from __future__ import annotations

import copy
import sqlite3
from datetime import datetime, timezone

import attrs
import pytest
import trio

from mobstore.actors import KernelState, RuntimeState, open_store
from mobstore.actors._cli import main
from mobstore.actors._demo import DemoError, run_demo, verify

SMALL = dict(mobs=3, agents_per_mob=2, events_per_agent=50, durability="normal")


def _demo(path, **sizes):
    out: list[str] = []
    report = trio.run(lambda: run_demo(str(path), **{**SMALL, **sizes}, out=out.append))
    return report, "".join(out)


def _verify(path, ledger):
    async def go():
        async with open_store(str(path), durability="normal") as store:
            return await verify(store, ledger)

    return trio.run(go)


def _failed(checks):
    return {name for name, ok, _ in checks if not ok}


@pytest.fixture
def demo_run(tmp_path):
    path = tmp_path / "demo.db"
    report, text = _demo(path)
    assert report.ok, text
    return path, report


def test_demo_passes_every_check(demo_run):
    """Small demo: every agent's events, flows, boundaries, labels, consumers and config
    verify after the crashes and the midway close-and-reopen."""
    _, report = demo_run
    ledger = report.ledger
    assert report.acknowledged == 3 * (2 * 50 + 2)
    assert len(report.checks) == 20 and report.restarts >= 1
    assert ledger.actor_crashes == 1 and ledger.projector_crashes == 1
    # Midway the agents were cancelled in the middle of their flows; all resumed from the store.
    assert ledger.stopped and set(ledger.stopped) <= set(ledger.resumed)
    assert set(ledger.resumed) == {f"mob-{m}/a{k}" for m in range(3) for k in range(2)}
    assert ledger.consumer_first_after
    assert all(first == ledger.consumer_closed_at[m] + 1 for m, first in ledger.consumer_first_after.items())


def test_demo_prints_phases_progress_and_the_table(tmp_path):
    """Plain output (not a terminal): a line per phase, progress lines, the summary table."""
    report, text = _demo(tmp_path / "d.db", mobs=2, events_per_agent=30)
    assert report.ok, text
    for phase in ("[1/5] setup", "[2/5]", "[3/5] midway", "[4/5]", "[5/5]"):
        assert phase in text
    assert "events [" in text and "\r" not in text
    assert "check" in text and "result" in text and "detail" in text
    assert text.rstrip().endswith("demo passed")


def test_demo_progress_bar_on_a_terminal(tmp_path):
    out: list[str] = []
    report = trio.run(lambda: run_demo(str(tmp_path / "d.db"), **{**SMALL, "mobs": 1}, out=out.append, tty=True))
    assert report.ok
    assert any(s.startswith("\r  events [") for s in out)


def test_tampered_store_fails_the_matching_checks(demo_run):
    """Damage the closed file behind the store's back: lose an event, move a frame, drop a
    receipt, rewind the consumer. Exactly the checks that cover those fail."""
    path, report = demo_run
    ledger = report.ledger
    run_id = ledger.run_ids["mob-1"]
    con = sqlite3.connect(path)
    with con:
        assert con.execute("DELETE FROM mob_events WHERE mob_id = 'mob-1' AND cursor = 7").rowcount == 1
        state = KernelState("Running").canonical()
        assert con.execute("UPDATE run_frames SET state = ? WHERE run_id = ? AND frame_id = 'a0'", (state, run_id)).rowcount == 1
        assert con.execute("DELETE FROM runtime_receipts WHERE runtime_id = 'mob-2/a1' AND sequence = 0").rowcount == 1
        assert con.execute("UPDATE mob_cursors SET cursor = cursor - 1 WHERE mob_id = 'mob-0'").rowcount == 1
    con.close()
    checks = _verify(path, ledger)
    assert _failed(checks) == {
        "every acknowledged event present once, at its cursor",
        "cursors strictly increasing per mob",
        "frames and loops in their last acknowledged states",
        "boundary receipts contiguous, as acknowledged",
        "consumer cursor == log head",
    }
    details = dict((name, detail) for name, _, detail in checks)
    assert details["every acknowledged event present once, at its cursor"].startswith("1 missing")


def test_doctored_ledger_fails_the_matching_checks(demo_run):
    """The same store checked against a ledger that claims other acknowledged writes."""
    path, report = demo_run
    assert _failed(_verify(path, report.ledger)) == set()
    ledger = copy.deepcopy(report.ledger)
    ledger.labels[("mob-0", None)] = {"team": "blue"}
    ledger.config_writes += 1
    ledger.runtime_states["mob-1/a0"] = RuntimeState.RUNNING
    kind, payload = ledger.events["mob-2"][5]
    ledger.events["mob-2"][5] = (kind, {**payload, "agent": "someone else"})
    ledger.steps["mob-1"].pop()
    ledger.sessions["mob-0/a1"] = ("0" * 64, 2)
    ledger.projector_crashes = 0
    assert _failed(_verify(path, ledger)) == {
        "labels as last written",
        "realm config generation and content",
        "runtime states as last written",
        "every acknowledged event present once, at its cursor",
        "step ledger: every acknowledged entry, once",
        "session snapshot = last acknowledged boundary",
        "the crashed projector resumed",
    }


def test_a_cursor_acknowledged_twice_fails_the_events_check(demo_run):
    """If the store handed out one cursor twice, the cursor-keyed ledger would merge the two
    acknowledgements (one acknowledged event lost without a trace): the ledger notes the
    reuse and the events check fails."""
    from mobstore.actors import MobEvent

    path, report = demo_run
    ledger = copy.deepcopy(report.ledger)
    kind, payload = ledger.events["mob-1"][3]
    ledger.event("mob-1", MobEvent(3, datetime.now(timezone.utc), "mob-1", kind, payload))
    assert ledger.reused == [("mob-1", 3)]
    assert _failed(_verify(path, ledger)) == {"every acknowledged event present once, at its cursor"}


def test_unreadable_store_fails_checks_instead_of_raising(demo_run):
    """A value the store cannot decode makes the checks that read it fail, with the error."""
    path, report = demo_run
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE run_frames SET state = 'not json' WHERE run_id = ?", (report.ledger.run_ids["mob-0"],))
    con.close()
    checks = _verify(path, report.ledger)
    failed = _failed(checks)
    assert "every run completed, flow state final" in failed and "frames and loops in their last acknowledged states" in failed
    assert "labels as last written" not in failed


def test_demo_refuses_bad_sizes_and_an_existing_file(tmp_path, capsys):
    with pytest.raises(DemoError, match="at least 7"):
        trio.run(lambda: run_demo(str(tmp_path / "x.db"), events_per_agent=6, out=lambda s: None))
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"data")
    assert main(["demo", "--path", str(existing)]) == 2
    assert "exists" in capsys.readouterr().err
    assert existing.read_bytes() == b"data"


def test_report_without_checks_is_not_a_pass():
    """The report keeps the fields scripts read; with no checks run it is not ``ok``."""
    from mobstore.actors._demo import DemoReport

    names = {f.name for f in attrs.fields(DemoReport)}
    assert {"path", "acknowledged", "restarts", "crashed_requests", "checks", "ledger"} <= names
    assert not DemoReport("x").ok  # no checks run: not a pass


def test_an_agent_resumed_elsewhere_fails_the_midway_check(demo_run):
    """The midway check compares where each cancelled agent's acknowledged commits had left
    it with where the store resumed it (it used to check only that it resumed at all)."""
    path, report = demo_run
    ledger = copy.deepcopy(report.ledger)
    assert ledger.stopped and set(ledger.stopped_at) == set(ledger.stopped)
    agent = sorted(ledger.stopped)[0]
    ledger.stopped_at[agent] = "iteration 99, loop idle"
    assert _failed(_verify(path, ledger)) == {"agents stopped midway resumed from the store"}
