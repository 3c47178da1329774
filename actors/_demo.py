"""``mobstore demo``: a multi-agent workload with a crash and a restart, verified.

Agents (trio tasks) append events to several mobs concurrently on an embedded file store.
Midway, one mob actor is crashed on purpose: the callers whose requests it held get
``ActorCrashed`` (those requests were not applied) and retry; the supervisor restarts the
actor, which resumes from the database. Then the store is closed and reopened, and every
acknowledged event is checked: present, once, with the cursor it was acknowledged with, and
each mob's cursors strictly increasing. Exit status 0 only if every check passes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from mobstore.storage import ActorCrashed, NewMobEvent

from ._store import open_store


@attrs.define
class DemoReport:
    path: str
    acknowledged: int = 0
    crashed_requests: int = 0
    restarts: int = 0
    seconds: float = 0.0
    mean_batch: float = 0.0
    commits: int = 0
    checks: list[tuple[str, bool, str]] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


class _Progress:
    def __init__(self, total: int, out: Callable[[str], None], tty: bool) -> None:
        self.total, self.done, self.out, self.tty = total, 0, out, tty
        self._last = -1

    def step(self) -> None:
        self.done += 1
        pct = self.done * 100 // self.total
        if pct != self._last and (self.tty or pct % 25 == 0):
            self._last = pct
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            self.out(f"\r  appending [{bar}] {pct:3d}%  ({self.done}/{self.total})" + ("" if self.tty else "\n"))


async def run_demo(
    path: str | None = None,
    *,
    mobs: int = 8,
    agents_per_mob: int = 4,
    events_per_agent: int = 250,
    durability: str = "full",
    out: Callable[[str], None] = lambda s: (sys.stdout.write(s), sys.stdout.flush()),
) -> DemoReport:
    """Run the demo workload on ``path`` (a fresh temp file by default); return its report."""
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="mobstore-demo-"), "demo.db")
    report = DemoReport(path)
    victim = f"mob:mob-{min(3, mobs - 1)}"
    crash_at = max(1, events_per_agent // 2)  # the victim's crash_at-th message group
    groups = 0

    def crash_hook(key: str, _requests: list[Any]) -> None:
        # Crash the victim's actor once, about halfway through its work.
        nonlocal groups
        if key == victim:
            groups += 1
            if groups == crash_at:
                raise RuntimeError("demo: injected actor crash")

    acked: dict[str, dict[int, dict[str, Any]]] = {f"mob-{m}": {} for m in range(mobs)}
    total = mobs * agents_per_mob * events_per_agent
    progress = _Progress(total, out, sys.stdout.isatty())
    out(f"mobstore demo: {mobs} mobs x {agents_per_mob} agents x {events_per_agent} events, durability={durability}\n")
    out(f"  store: {path}\n")

    t0 = time.perf_counter()
    projected = "mob-0"
    handler_crashed = []

    def projector(mob: Any) -> Callable[[Any], Any]:
        # An exactly-once projection: the running summary lives in the mob's spec and is
        # committed together with the consumer's cursor (mob.commit). It crashes once, midway.
        async def project(ev: Any) -> list[Any]:
            if ev.cursor == agents_per_mob * events_per_agent // 2 and not handler_crashed:
                handler_crashed.append(ev.cursor)
                raise RuntimeError("demo: injected projector crash")
            current = await mob.spec.get_spec()
            summary, rev = (current[0]["summary"], current[1]) if current else ({"count": 0, "cursor_sum": 0}, 0)
            summary = {"count": summary["count"] + 1, "cursor_sum": summary["cursor_sum"] + ev.cursor, "through": ev.cursor}
            return [mob.cmd.put_spec({"id": mob.mob_id, "summary": summary}, revision=rev)]

        return project

    async with open_store(path, durability=durability, crash_hook=crash_hook) as store:
        consumer = store.mob(projected).consume("projector", projector(store.mob(projected)), backoff_base=0.01)

        async def agent(mob_id: str, agent_no: int) -> None:
            log = store.mob(mob_id).events
            for n in range(events_per_agent):
                payload = {"agent": f"{mob_id}/a{agent_no}", "n": n}
                while True:
                    try:
                        ev = await log.append(NewMobEvent("step_completed", payload))
                        break
                    except ActorCrashed:
                        report.crashed_requests += 1  # not applied: retry
                acked[mob_id][ev.cursor] = payload
                progress.step()

        async with trio.open_nursery() as nursery:
            for m in range(mobs):
                for a in range(agents_per_mob):
                    nursery.start_soon(agent, f"mob-{m}", a)
        head = await store.mob(projected).events.last_cursor()
        await consumer.wait_cursor(head)
        cstats = consumer.statistics()
        stats = store.statistics()
        report.restarts = stats.restarts
        report.mean_batch = stats.committer.mean_batch
        report.commits = stats.committer.commits
    report.seconds = time.perf_counter() - t0
    report.acknowledged = sum(len(v) for v in acked.values())
    out(f"\n  {report.acknowledged} events acknowledged in {report.seconds:.2f}s "
        f"({report.acknowledged / report.seconds:,.0f}/s, {report.commits} commits, mean batch {report.mean_batch:.1f})\n")
    out(f"  actor {victim} crashed once: {report.crashed_requests} in-flight requests got ActorCrashed and were retried; restarts={report.restarts}\n")
    out(f"  durable consumer 'projector' on {projected}: handled {cstats.handled} events, crashed once at cursor "
        f"{handler_crashed[0] if handler_crashed else '-'} and resumed ({cstats.retries} retry); lag {cstats.lag}\n")
    out("  closed the store; reopening and verifying ...\n")

    async with open_store(path, durability=durability) as store:
        lost = dup = wrong = 0
        monotonic = True
        for mob_id, events in acked.items():
            stored = await store.mob(mob_id).events.replay_all()
            cursors = [e.cursor for e in stored]
            monotonic &= all(a < b for a, b in zip(cursors, cursors[1:]))
            by_cursor = {e.cursor: e.payload for e in stored}
            dup += len(cursors) - len(by_cursor)
            lost += sum(1 for c in events if c not in by_cursor)
            wrong += sum(1 for c, p in events.items() if c in by_cursor and by_cursor[c] != p)
            extra = len(by_cursor) - len(events)
            wrong += max(extra, 0)
        n_proj = len(acked[projected])
        spec = await store.mob(projected).spec.get_spec()
        summary = spec[0]["summary"] if spec else {}
        resumed = store.mob(projected).consume("projector", projector(store.mob(projected)))
        await resumed.wait_ready()
        resumed_at = resumed.cursor
        await resumed.stop()
        report.checks = [
            ("every acknowledged event is present", lost == 0, f"{lost} missing"),
            ("each stored once, with its acknowledged cursor and payload", dup == 0 and wrong == 0, f"{dup} duplicated, {wrong} different or unacknowledged"),
            ("cursors strictly increasing per mob", monotonic, ""),
            ("the crashed actor was restarted", report.restarts >= 1, f"restarts={report.restarts}"),
            (
                "the projection holds every event of its mob exactly once",
                summary.get("count") == n_proj and summary.get("cursor_sum") == n_proj * (n_proj + 1) // 2,
                f"summary={summary}, events={n_proj}",
            ),
            ("the consumer resumes after reopen at its persisted cursor", resumed_at == n_proj, f"resumed at {resumed_at}"),
        ]
    width = max(len(name) for name, _, _ in report.checks)
    for name, ok, detail in report.checks:
        out(f"  [{'ok' if ok else 'FAIL'}] {name:<{width}}  {'' if ok else detail}\n")
    out("demo " + ("passed" if report.ok else "FAILED") + "\n")
    return report
