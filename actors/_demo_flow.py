"""The demo's workload: the flow each mob runs (the agents that drive it are in
``_demo_agent``), the durable consumer that projects each mob's log, and the ledger of everything the store acknowledged.

Every agent owns one frame of its mob's flow run (``a<k>``), one loop in it (``a<k>/loop``),
one body frame per loop iteration (``a<k>/iter-<i>``) and one runtime (``<mob>/a<k>``). Each
step an agent takes is ONE atomic store call whose precondition fails if the step was
already taken: a frame/loop CAS committed together with the event it appends (``mob.commit``),
or a session boundary (whose snapshot tells how many boundaries exist). So an agent holds no
state the store does not: cancelled at any point (midway, the demo cancels them all and
closes the store), a new agent resumes from the run's frames and loops and the runtime's
session snapshot, and neither repeats nor skips a step.

The :class:`Ledger` records only what the store acknowledged (a call that returned); the
verifier (``_demo_verify``) compares the reopened store with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from mobstore.storage import (
    ActorCrashed,
    ConfigSnapshot,
    FrameSnapshot,
    KernelState,
    KU64,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobEvent,
    MobRun,
    NewMobEvent,
    RunBoundaryReceipt,
    RuntimeState,
    StepLedgerEntry,
)

if TYPE_CHECKING:
    from ._mob import Mob
    from ._store import Store

FLOW_ID = "review"
CONSUMER = "projector"
#: Events an agent appends besides its tool calls: joined, loop started, loop completed, and
#: per iteration: body frame requested, started, step completed, body frame completed.
FIXED_EVENTS, EVENTS_PER_ITERATION = 3, 4


class DemoError(Exception):
    """The demo cannot run as asked (bad sizes, an existing store file)."""


# -- the plan ----------------------------------------------------------------------------------


@attrs.frozen
class Plan:
    """Sizes of the workload: ``events`` is the exact number of events each agent appends."""

    mobs: int
    agents: int
    events: int

    def __attrs_post_init__(self) -> None:
        least = FIXED_EVENTS + EVENTS_PER_ITERATION
        if self.mobs < 1 or self.agents < 1:
            raise DemoError("--mobs and --agents must be at least 1")
        if self.events < least:
            raise DemoError(f"--events must be at least {least} (an agent's flow appends {least} events for one loop iteration)")

    @property
    def iterations(self) -> int:
        """Loop iterations per agent: one per 25 events, at least 1."""
        return max(1, min(self.events // 25, (self.events - FIXED_EVENTS) // EVENTS_PER_ITERATION))

    def tool_calls(self, i: int) -> int:
        """Tool-call events in iteration ``i`` (the rest of the agent's events, spread evenly)."""
        n = self.iterations
        spare = self.events - FIXED_EVENTS - EVENTS_PER_ITERATION * n
        return spare // n + (1 if i < spare % n else 0)

    @property
    def events_per_mob(self) -> int:
        """The agents' events plus the flow's own two (``flow_started``, ``flow_completed``)."""
        return self.agents * self.events + 2

    @property
    def total_events(self) -> int:
        return self.mobs * self.events_per_mob

    def mob_ids(self) -> list[str]:
        return [f"mob-{m}" for m in range(self.mobs)]

    def definition(self) -> dict[str, Any]:
        """The flow, as stored in each mob's spec."""
        return {
            "flow_id": FLOW_ID,
            "agents": self.agents,
            "steps": {"work": {"loop": {"iterations": self.iterations}, "body": ["tool_calls", "step_output"]}},
        }


# -- kernel states -------------------------------------------------------------------------------


def _state(phase: str, **fields: int) -> KernelState:
    return KernelState(phase, {k: KU64(v) for k, v in fields.items()})


def flow_state(phase: str, plan: Plan) -> KernelState:
    """The run's flow state: ``Pending``, ``Running``, ``Completed``. Agents only check it."""
    return _state(phase, agents=plan.agents)


def agent_frame(phase: str, **fields: int) -> FrameSnapshot:
    """An agent's frame: ``Ready`` -> ``Looping`` -> ``Done(iterations)``."""
    return FrameSnapshot(_state(phase, **fields))


def loop_state(phase: str, iteration: int) -> LoopSnapshot:
    """An agent's loop: ``Idle(i)`` -> ``Requested(i)`` -> ``Body(i)`` -> ``Idle(i+1)`` ...
    -> ``Done(n)``."""
    return LoopSnapshot(_state(phase, iteration=iteration))


def body_frame(phase: str, calls: int) -> FrameSnapshot:
    """A body frame: ``Running(calls)`` (one CAS per tool call) -> ``Stepped`` -> ``Completed``."""
    return FrameSnapshot(_state(phase, calls=calls))


def phase_of(snapshot: FrameSnapshot | LoopSnapshot) -> tuple[str, int]:
    ks = snapshot.kernel_state
    values = [v.value for v in ks.fields.values()]
    return ks.phase, (values[0] if values else 0)


def step_output(agent: str, i: int, calls: int) -> dict[str, Any]:
    return {"agent": agent, "iteration": i, "tool_calls": calls, "verdict": "approve" if (i + calls) % 3 else "revise"}


# -- the ledger of acknowledged writes -----------------------------------------------------------


@attrs.define
class Ledger:
    """Everything the store acknowledged during the run (and counters for the report).

    Only results of calls that returned are recorded, so after a cancellation or a crash the
    ledger and the store must agree exactly.
    """

    plan: Plan
    events: dict[str, dict[int, tuple[str, Any]]] = attrs.field(factory=dict)  # mob -> cursor -> (kind, payload)
    agent_events: dict[str, int] = attrs.field(factory=dict)  # agent -> events acknowledged
    run_ids: dict[str, str] = attrs.field(factory=dict)  # mob -> its run
    run_status: dict[str, tuple[str, KernelState]] = attrs.field(factory=dict)  # mob -> (status, flow state)
    frames: dict[str, dict[str, FrameSnapshot]] = attrs.field(factory=dict)
    loops: dict[str, dict[str, LoopSnapshot]] = attrs.field(factory=dict)
    steps: dict[str, list[StepLedgerEntry]] = attrs.field(factory=dict)
    loop_entries: dict[str, list[LoopIterationLedgerEntry]] = attrs.field(factory=dict)
    outputs: dict[str, dict[str, dict[int, dict[str, Any]]]] = attrs.field(factory=dict)  # mob -> loop -> i -> outputs
    spec_flow: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    labels: dict[tuple[str, str | None], dict[str, str]] = attrs.field(factory=dict)
    receipts: dict[str, list[RunBoundaryReceipt]] = attrs.field(factory=dict)  # runtime -> receipts
    sessions: dict[str, tuple[str, int]] = attrs.field(factory=dict)  # runtime -> (digest, message count)
    inputs: dict[str, dict[str, tuple[str, int]]] = attrs.field(factory=dict)  # runtime -> input -> (run, seq)
    runtime_states: dict[str, RuntimeState] = attrs.field(factory=dict)
    config: ConfigSnapshot | None = None
    config_writes: int = 0
    consumer_closed_at: dict[str, int] = attrs.field(factory=dict)  # mob -> cursor persisted at the midway close
    consumer_first_after: dict[str, int] = attrs.field(factory=dict)  # mob -> first event handled after reopen
    # counters for the report
    crashed_requests: int = 0
    actor_crashes: int = 0
    restarts: int = 0
    projector_crashes: int = 0
    projector_retries: int = 0
    completion_cas_lost: int = 0
    stopped: dict[str, str] = attrs.field(factory=dict)  # agent -> the step it was in when cancelled
    stopped_at: dict[str, str] = attrs.field(factory=dict)  # agent -> where its acknowledged commits had it then
    resumed: dict[str, str] = attrs.field(factory=dict)  # agent -> the step it resumed at
    commits: int = 0
    acks: int = 0  # every acknowledged append, also one whose cursor was seen before
    reused: list[tuple[str, int]] = attrs.field(factory=list)  # (mob, cursor) acknowledged twice
    batches_requests: int = 0
    batches: int = 0
    on_event: Callable[[str, MobEvent], None] = attrs.field(default=lambda mob, ev: None, repr=False)

    @property
    def acknowledged(self) -> int:
        return sum(len(v) for v in self.events.values())

    def event(self, mob: str, ev: MobEvent, agent: str | None = None) -> None:
        self.acks += 1
        got = self.events.setdefault(mob, {})
        if ev.cursor in got:  # the store handed out a cursor twice: one of the two is lost
            self.reused.append((mob, ev.cursor))
        got[ev.cursor] = (ev.kind, ev.payload)
        if agent is not None:
            self.agent_events[agent] = self.agent_events.get(agent, 0) + 1
        self.on_event(mob, ev)


# -- fault injection -------------------------------------------------------------------------------


class CrashOnce:
    """A crash hook (``open_store(crash_hook=...)``): once armed, the victim mob's actor
    raises on the next group of requests it takes; those requests get ``ActorCrashed``.
    ``recovered``: the restarted actor has taken a group since."""

    def __init__(self, mob_id: str, note: Callable[[str], None]) -> None:
        self.key = f"mob:{mob_id}"
        self.armed = self.fired = self.recovered = False
        self._note = note

    def __call__(self, key: str, requests: list[Any]) -> None:
        if key != self.key or not self.armed:
            return
        if self.fired:
            self.recovered = True
        else:
            self.fired = True
            self._note(f"! actor {key} crashed on purpose, holding {len(requests)} requests: "
                       "their callers get ActorCrashed (not applied) and retry")
            raise RuntimeError("demo: injected actor crash")


async def retry(ledger: Ledger, call: Callable[[], Any]) -> Any:
    """``await call()``, again after ``ActorCrashed`` (the request was not applied)."""
    while True:
        try:
            return await call()
        except ActorCrashed as exc:
            if exc.escalated:
                raise
            ledger.crashed_requests += 1


# -- the durable consumer --------------------------------------------------------------------------


def projector(
    mob: Mob, ledger: Ledger, *, crash_at: int | None, reopened: bool, note: Callable[[str], None]
) -> Callable[[MobEvent], Any]:
    """An exactly-once projection of ``mob``'s log into its spec (``spec["projection"]``):
    the handler returns the spec update, which commits with the consumer's cursor. Each
    event bumps the spec revision by exactly one. It crashes once at ``crash_at``.

    The handler remembers the spec it returned and reads the store only when the event is
    not the one right after it (a retry, a restart): the consumer calls it for event ``c``
    only once the commit for ``c - 1`` is in. A wrong guess could not double-count either:
    the revision CAS would fail the commit and the event would be handled again.
    """
    last: list[tuple[dict[str, Any], int]] = []  # the spec (and revision) after the last event handled

    async def project(ev: MobEvent) -> list[Any]:
        if reopened:
            ledger.consumer_first_after.setdefault(mob.mob_id, ev.cursor)
        if ev.cursor == crash_at and not ledger.projector_crashes:
            ledger.projector_crashes += 1
            note(f"! consumer {CONSUMER!r} of {mob.mob_id} crashed on purpose at event {ev.cursor}: "
                 "it restarts from its persisted cursor")
            raise RuntimeError("demo: injected projector crash")
        if last and last[0][0]["projection"]["through"] == ev.cursor - 1:
            spec, rev = last[0]
        else:
            got = await mob.spec.get_spec()
            assert got is not None, "the spec is written before the consumer starts"
            spec, rev = got
        p = spec["projection"]
        kinds = dict(p["kinds"])
        kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
        projection = {"count": p["count"] + 1, "cursor_sum": p["cursor_sum"] + ev.cursor, "through": ev.cursor, "kinds": kinds}
        spec = {**spec, "projection": projection}
        last[:] = [(spec, rev + 1)]
        return [mob.cmd.put_spec(spec, revision=rev)]

    return project


# -- setup and the coordinator's writes ------------------------------------------------------------


async def setup_mob(store: Store, ledger: Ledger, mob_id: str) -> None:
    """Spec, labels and the flow run of one mob: created pending, started with its event."""
    plan = ledger.plan
    mob = store.mob(mob_id)
    definition = plan.definition()
    await mob.spec.put_spec({"flow": definition, "projection": {"count": 0, "cursor_sum": 0, "through": 0, "kinds": {}}})
    ledger.spec_flow[mob_id] = definition
    await set_labels(store, ledger, mob_id, None, {"team": f"team-{mob_id}", "phase": "running", "epoch": "1"})
    run = await mob.runs.create_run(
        MobRun.pending(mob_id=mob_id, flow_id=FLOW_ID, flow_state=flow_state("Pending", plan),
                       activation_params={"agents": plan.agents, "iterations": plan.iterations})
    )
    ledger.run_ids[mob_id] = run.run_id
    res = await mob.commit(
        mob.cmd.cas_run_snapshot(run.run_id, "pending", flow_state("Pending", plan), "running", flow_state("Running", plan)),
        mob.cmd.append(NewMobEvent("flow_started", {"run_id": run.run_id, "flow_id": FLOW_ID})),
    )
    assert res.ok, "a fresh run starts"
    ledger.run_status[mob_id] = ("running", flow_state("Running", plan))
    ledger.event(mob_id, res.results[1])
    ledger.frames[mob_id], ledger.loops[mob_id] = {}, {}
    ledger.steps[mob_id], ledger.loop_entries[mob_id], ledger.outputs[mob_id] = [], [], {}
    await set_labels(store, ledger, mob_id, run.run_id, {"flow": FLOW_ID, "status": "running"})


async def set_labels(store: Store, ledger: Ledger, mob_id: str, run_id: str | None, labels: dict[str, str]) -> None:
    await retry(ledger, lambda: store.mob(mob_id).labels.set(labels, run_id=run_id))
    ledger.labels[(mob_id, run_id)] = dict(labels)


async def write_config(store: Store, ledger: Ledger, patch: dict[str, Any]) -> None:
    """A realm-config write by generation CAS (the first one sets, the others patch)."""
    gen = ledger.config.generation if ledger.config is not None else 0
    if ledger.config is None:
        snap = await store.config.set({"demo": patch}, expected_generation=gen)
    else:
        snap = await store.config.patch({"demo": patch}, expected_generation=gen)
    ledger.config, ledger.config_writes = snap, ledger.config_writes + 1


# -- an agent --------------------------------------------------------------------------------------
