"""``mobstore demo``: a multi-agent workload on an embedded file store, with an actor crash,
a consumer crash and a close-and-reopen midway, verified invariant by invariant at the end.

Each mob gets a spec, labels and one flow run; each of its agents drives a loop of body
frames through the frame/loop CAS API, appending its events in the same transactions, and
commits a session boundary per iteration on its own runtime; a durable consumer per mob
projects the log into the mob's spec exactly once (``_demo_flow``). Midway, one mob actor is
crashed (its callers get ``ActorCrashed`` and retry) and one consumer; at 50% every agent is
cancelled wherever it is, the store is closed and reopened, and new agents resume from the
persisted run state and session snapshots while the consumers resume from their persisted
cursors. At the end the store is reopened and checked against the ledger of acknowledged
writes (``_demo_verify``). Exit status 0 only if every check passes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ._demo_agent import Agent
from ._demo_flow import CONSUMER, FLOW_ID, CrashOnce, DemoError, Ledger, Plan, projector, set_labels, setup_mob, write_config
from ._demo_verify import Check, verify
from ._store import Store, open_store

__all__ = ["DemoError", "DemoReport", "run_demo", "verify"]


def _stdout(s: str) -> None:
    sys.stdout.write(s)
    sys.stdout.flush()


@attrs.define
class DemoReport:
    path: str
    ledger: Ledger | None = None
    acknowledged: int = 0
    crashed_requests: int = 0
    restarts: int = 0
    seconds: float = 0.0
    mean_batch: float = 0.0
    commits: int = 0
    checks: list[Check] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)


class _Progress:
    """Events acknowledged so far: a ``\\r`` bar on a terminal, a line per 10% otherwise."""

    def __init__(self, total: int, out: Callable[[str], None], tty: bool) -> None:
        self.total, self.out, self.tty = total, out, tty
        self.done = 0
        self._shown = 0
        self._line = ""

    def advance(self) -> None:
        self.done += 1
        pct = self.done * 100 // self.total
        mark = pct if self.tty else pct // 10
        if mark != self._shown:
            self._shown = mark
            self._draw()

    def _draw(self) -> None:
        pct = self.done * 100 // self.total
        bar = "#" * (pct // 4) + "." * (25 - pct // 4)
        text = f"  events [{bar}] {pct:3d}%  {self.done:,}/{self.total:,}"
        if self.tty:
            self._line = text
            self.out("\r" + text)
        else:
            self.out(text + "\n")

    def note(self, text: str) -> None:
        """A line of its own, above the bar."""
        if self._line:
            self.out("\r" + " " * len(self._line) + "\r")
        self.out(f"  {text}\n")
        if self._line:
            self.out(self._line)

    def end_line(self) -> None:
        if self._line:
            self.out("\n")
            self._line = ""


def _table(checks: list[Check]) -> str:
    w = max(len("check"), *(len(n) for n, _, _ in checks))
    rows = [f"  {'check':<{w}}  result  detail", f"  {'-' * w}  ------  {'-' * 40}"]
    rows += [f"  {name:<{w}}  {'ok' if ok else 'FAIL':<6}  {detail}" for name, ok, detail in checks]
    return "\n".join(rows) + "\n"


def _stats(ledger: Ledger, store: Store) -> None:
    s = store.statistics()
    ledger.restarts += s.restarts
    ledger.commits += s.committer.commits
    ledger.batches += s.committer.batches
    ledger.batches_requests += s.committer.requests


async def run_demo(
    path: str | None = None,
    *,
    mobs: int = 8,
    agents_per_mob: int = 4,
    events_per_agent: int = 250,
    durability: str = "full",
    out: Callable[[str], None] = _stdout,
    tty: bool | None = None,
) -> DemoReport:
    """Run the demo on ``path`` (a fresh temp file by default); return its report.

    Raises:
        DemoError: bad sizes (``events_per_agent`` below 7), or ``path`` is an existing
            non-empty file (the demo verifies the whole store, so it needs a new one).
    """
    plan = Plan(mobs, agents_per_mob, events_per_agent)
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="mobstore-demo-"), "demo.db")
    elif os.path.exists(path) and os.path.getsize(path) > 0:
        raise DemoError(f"{path} exists; the demo writes and verifies a new store: pass a new --path")
    if tty is None:
        tty = out is _stdout and sys.stdout.isatty()
    report = DemoReport(path)
    ledger = report.ledger = Ledger(plan)
    progress = _Progress(plan.total_events, out, tty)
    mob_ids = plan.mob_ids()
    victim = mob_ids[min(3, mobs - 1)]
    hook = CrashOnce(victim, progress.note)
    midway = trio.Event()
    arm_at = plan.events_per_mob // 4  # the victim's actor crashes once a quarter of its events are in
    projected_crash = (mob_ids[0], plan.events_per_mob // 3)

    def on_event(mob: str, _ev: Any) -> None:
        progress.advance()
        if mob == victim and not hook.armed and len(ledger.events[mob]) >= arm_at:
            hook.armed = True
        # Midway: half of all events are in, and the crashed actor is back (so the crash and
        # its restart both happen before the close).
        if progress.done * 2 >= plan.total_events and hook.recovered:
            midway.set()

    ledger.on_event = on_event

    def consume(store: Store, m: str, reopened: bool) -> Any:
        mob = store.mob(m)
        crash_at = projected_crash[1] if m == projected_crash[0] else None
        handler = projector(mob, ledger, crash_at=crash_at, reopened=reopened, note=progress.note)
        return mob.consume(CONSUMER, handler, backoff_base=0.01)

    out(f"mobstore demo: {mobs} mobs x {agents_per_mob} agents x {events_per_agent} events "
        f"({plan.iterations} loop iterations per agent), durability={durability}\n")
    out(f"  store: {path}\n")
    t0 = time.perf_counter()

    # -- epoch 1: setup, then the agents until half of all events are in -------------------------
    async with open_store(path, durability=durability, crash_hook=hook) as store:
        out(f"[1/5] setup: realm config; per mob a spec, labels and a '{FLOW_ID}' flow run, started\n")
        await write_config(store, ledger, {"mobs": mobs, "agents": agents_per_mob, "events": events_per_agent, "epoch": 1})
        async with trio.open_nursery() as nursery:
            for m in mob_ids:
                nursery.start_soon(setup_mob, store, ledger, m)
        consumers = {m: consume(store, m, False) for m in mob_ids}
        out(f"[2/5] {mobs * agents_per_mob} agents at work; per loop iteration: a session boundary, a body frame,\n"
            "      tool calls, a step output; a durable consumer per mob projects its log into the spec\n")
        async with trio.open_nursery() as nursery:
            for m in mob_ids:
                for k in range(agents_per_mob):
                    nursery.start_soon(Agent(store, ledger, m, k, reopened=False).run)
            await midway.wait()
            nursery.cancel_scope.cancel()
        progress.end_line()
        for m, c in consumers.items():
            await c.stop()
            ledger.projector_retries += c.retries
            persisted = await store.mob(m).cursors.get(CONSUMER)
            ledger.consumer_closed_at[m] = persisted if persisted is not None else 0
        _stats(ledger, store)
    steps = Counter(" ".join(w for w in s.split() if not w[0].isdigit()) for s in ledger.stopped.values())
    out(f"[3/5] midway ({progress.done * 100 // plan.total_events}% of events): cancelled {len(ledger.stopped)} agents mid-step "
        f"({', '.join(f'{n} in {s}' for s, n in steps.most_common(3))}),\n"
        "      stopped the consumers, closed the store\n")

    # -- epoch 2: reopen; consumers and agents resume from what the store holds ----------------
    async with open_store(path, durability=durability, crash_hook=hook) as store:
        await write_config(store, ledger, {"epoch": 2})
        for m in mob_ids:
            await set_labels(store, ledger, m, None, {"team": f"team-{m}", "phase": "running", "epoch": "2"})
        consumers = {m: consume(store, m, True) for m in mob_ids}
        for c in consumers.values():
            await c.wait_ready()
        lag = sum(len(ledger.events[m]) - ledger.consumer_closed_at[m] for m in mob_ids)
        out(f"      reopened: consumers resume after their persisted cursors ({lag:,} events behind);\n"
            "      agents resume from the run's frames and loops and their session snapshots\n")
        async with trio.open_nursery() as nursery:
            for m in mob_ids:
                for k in range(agents_per_mob):
                    nursery.start_soon(Agent(store, ledger, m, k, reopened=True).run)
        progress.end_line()
        for m in mob_ids:
            head = await store.mob(m).events.last_cursor()
            await consumers[m].wait_cursor(head)
        for m in mob_ids:
            await set_labels(store, ledger, m, None, {"team": f"team-{m}", "phase": "completed", "epoch": "2"})
            await set_labels(store, ledger, m, ledger.run_ids[m], {"flow": FLOW_ID, "status": "completed"})
        await write_config(store, ledger, {"finished": True})
        for c in consumers.values():
            await c.stop()
            ledger.projector_retries += c.retries
        _stats(ledger, store)
    ledger.actor_crashes = int(hook.fired)
    report.seconds = time.perf_counter() - t0
    report.acknowledged = ledger.acknowledged
    report.crashed_requests, report.restarts, report.commits = ledger.crashed_requests, ledger.restarts, ledger.commits
    report.mean_batch = ledger.batches_requests / ledger.batches if ledger.batches else 0.0
    out(f"[4/5] every run completed by its last agent ({ledger.completion_cas_lost} concurrent completion CAS lost "
        "to the winner);\n      consumers caught up; labels and config final; closed\n")
    out(f"      workload: {report.acknowledged:,} events acknowledged in {report.seconds:.2f}s "
        f"({report.acknowledged / report.seconds:,.0f}/s); {report.commits:,} commits, mean batch {report.mean_batch:.1f}\n")

    # -- verify on a fresh open ---------------------------------------------------------------
    out("[5/5] reopened; verifying against every acknowledged write\n")
    async with open_store(path, durability=durability) as store:
        report.checks = await verify(store, ledger)
    out(_table(report.checks))
    out("demo " + ("passed" if report.ok else "FAILED") + "\n")
    return report
