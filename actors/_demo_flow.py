"""The demo's workload: the flow each mob runs, the agents that drive it, the durable
consumer that projects each mob's log, and the ledger of everything the store acknowledged.

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

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mobstore.storage import (
    ActorCrashed,
    CommitResult,
    ConfigSnapshot,
    FrameSnapshot,
    InputState,
    KernelState,
    KU64,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobEvent,
    MobRun,
    NewMobEvent,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RuntimeState,
    SessionDelta,
    StepLedgerEntry,
    uuid7,
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


def _phase(snapshot: FrameSnapshot | LoopSnapshot) -> tuple[str, int]:
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
    resumed: dict[str, str] = attrs.field(factory=dict)  # agent -> the step it resumed at
    commits: int = 0
    batches_requests: int = 0
    batches: int = 0
    on_event: Callable[[str, MobEvent], None] = attrs.field(default=lambda mob, ev: None, repr=False)

    @property
    def acknowledged(self) -> int:
        return sum(len(v) for v in self.events.values())

    def event(self, mob: str, ev: MobEvent, agent: str | None = None) -> None:
        self.events.setdefault(mob, {})[ev.cursor] = (ev.kind, ev.payload)
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


async def _retry(ledger: Ledger, call: Callable[[], Any]) -> Any:
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
    await _retry(ledger, lambda: store.mob(mob_id).labels.set(labels, run_id=run_id))
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


class Agent:
    """Agent ``k`` of a mob: drives its frame and loop of the mob's run to the end, from
    wherever the store says it is."""

    def __init__(self, store: Store, ledger: Ledger, mob_id: str, k: int, *, reopened: bool) -> None:
        self.store, self.ledger, self.plan = store, ledger, ledger.plan
        self.mob = store.mob(mob_id)
        self.mob_id, self.k = mob_id, k
        self.agent_id = f"{mob_id}/a{k}"
        self.frame_id, self.loop_id = f"a{k}", f"a{k}/loop"
        self.runtime = store.runtime(self.agent_id)
        self.step = "starting"
        self.reopened = reopened

    def body_id(self, i: int) -> str:
        return f"a{self.k}/iter-{i}"

    async def run(self) -> None:
        try:
            await self._run()
        except trio.Cancelled:
            self.ledger.stopped[self.agent_id] = self.step
            raise

    async def _commit(
        self, *commands: Any, event: tuple[str, dict[str, Any]] | None = None, own: bool = True, may_lose: bool = False
    ) -> CommitResult:
        """One atomic step: ``commands`` and the agent's event (``own``: one of the agent's
        planned events), retried after ``ActorCrashed``."""
        mob = self.mob
        cmds = list(commands)
        if event is not None:
            cmds.append(mob.cmd.append(NewMobEvent(event[0], {"agent": self.agent_id, **event[1]})))
        res: CommitResult = await _retry(self.ledger, lambda: mob.commit(*cmds))
        if not res.ok:
            if may_lose:
                return res
            raise RuntimeError(f"{self.agent_id}: step {self.step!r} lost its CAS (command {res.failed_index}); "
                               "the agent's view of the run diverged from the store")
        if event is not None:
            self.ledger.event(self.mob_id, res.results[-1], self.agent_id if own else None)
        return res

    async def _run(self) -> None:
        plan, ledger, mob_id = self.plan, self.ledger, self.mob_id
        runs = self.mob.runs
        # Resume from the store: the run's frames and loops, the runtime's session snapshot.
        [run] = await runs.list_runs(FLOW_ID)
        run_id = run.run_id
        frame = run.frames.get(self.frame_id)
        loop = run.loops.get(self.loop_id)
        body = None
        if loop is not None:
            body = run.frames.get(self.body_id(_phase(loop)[1]))
        raw = await self.runtime.load_session_snapshot()
        messages: list[dict[str, Any]] = json.loads(raw)["messages"] if raw else []
        rt_state = await self.runtime.load_runtime_state()
        if self.reopened:
            ledger.resumed[self.agent_id] = self._describe(frame, loop, body)
        running = flow_state("Running", plan)
        cmd = self.mob.cmd
        frames, loops = ledger.frames[mob_id], ledger.loops[mob_id]

        if frame is None or _phase(frame)[0] != "Done":
            if rt_state is not RuntimeState.RUNNING:
                self.step = "runtime state"
                await _retry(ledger, lambda: self.runtime.persist_runtime_state(RuntimeState.RUNNING))
                ledger.runtime_states[self.agent_id] = RuntimeState.RUNNING
                rt_state = RuntimeState.RUNNING
        if frame is None:
            self.step = "join"
            frame = agent_frame("Ready")
            await self._commit(cmd.cas_frame_state(run_id, self.frame_id, None, frame),
                               event=("agent_joined", {"runtime": self.agent_id}))
            frames[self.frame_id] = frame
        if _phase(frame)[0] == "Ready":
            self.step = "start loop"
            looping, loop = agent_frame("Looping"), loop_state("Idle", 0)
            await self._commit(
                cmd.cas_start_loop(run_id, self.loop_id, running, running, self.frame_id, frame, looping, loop),
                event=("loop_started", {"loop": self.loop_id, "iterations": plan.iterations}),
            )
            frames[self.frame_id], loops[self.loop_id] = looping, loop
            frame = looping
        while _phase(frame)[0] == "Looping":
            assert loop is not None
            stage, i = _phase(loop)
            bid = self.body_id(i)
            if stage == "Idle" and i == plan.iterations:
                self.step = "complete loop"
                done_loop, done_frame = loop_state("Done", i), agent_frame("Done", iterations=i)
                await self._commit(
                    cmd.cas_complete_loop(run_id, self.loop_id, loop, done_loop, self.frame_id, frame, done_frame, running, running),
                    event=("loop_completed", {"loop": self.loop_id, "iterations": i}),
                )
                loops[self.loop_id], frames[self.frame_id] = done_loop, done_frame
                loop, frame = done_loop, done_frame
            elif stage == "Idle":
                if len(messages) == i:  # this iteration's session boundary is not committed yet
                    self.step = f"boundary {i}"
                    await self._boundary(run_id, i, messages)
                self.step = f"request body frame {i}"
                nxt = loop_state("Requested", i)
                await self._commit(cmd.cas_loop_request_body_frame(run_id, self.loop_id, loop, nxt, running, running),
                                   event=("body_frame_requested", {"iteration": i}))
                loop = loops[self.loop_id] = nxt
            elif stage == "Requested":
                self.step = f"start body frame {i}"
                nxt, body = loop_state("Body", i), body_frame("Running", 0)
                entry = LoopIterationLedgerEntry(loop_instance_id=self.loop_id, iteration=i, frame_id=bid)
                dispatched = StepLedgerEntry(step_id=f"work-{i}", meerkat_id=self.agent_id, status="dispatched")
                await self._commit(
                    cmd.cas_grant_body_frame_start(run_id, self.loop_id, loop, nxt, bid, body, entry, running, running),
                    cmd.append_step_entry(run_id, dispatched),
                    event=("body_frame_started", {"iteration": i, "frame": bid}),
                )
                loop = loops[self.loop_id] = nxt
                frames[bid] = body
                ledger.loop_entries[mob_id].append(entry)
                ledger.steps[mob_id].append(dispatched)
            else:  # Body: the body frame's own stages
                assert body is not None
                bstage, calls = _phase(body)
                if bstage == "Running" and calls < plan.tool_calls(i):
                    self.step = f"tool call {i}.{calls}"
                    nxt_body = body_frame("Running", calls + 1)
                    await self._commit(cmd.cas_frame_state(run_id, bid, body, nxt_body),
                                       event=("tool_called", {"iteration": i, "call": calls, "tool": ("search", "read", "edit")[calls % 3]}))
                    body = frames[bid] = nxt_body
                elif bstage == "Running":
                    self.step = f"complete step {i}"
                    out = step_output(self.agent_id, i, calls)
                    nxt_body = body_frame("Stepped", calls)
                    completed = StepLedgerEntry(step_id=f"work-{i}", meerkat_id=self.agent_id, status="completed", output=out)
                    await self._commit(
                        cmd.cas_complete_step_and_record_output(run_id, bid, body, nxt_body, "work", out, (self.loop_id, i)),
                        cmd.append_step_entry(run_id, completed),
                        event=("step_completed", {"iteration": i, "step": f"work-{i}"}),
                    )
                    body = frames[bid] = nxt_body
                    ledger.steps[mob_id].append(completed)
                    ledger.outputs[mob_id].setdefault(self.loop_id, {})[i] = {"work": out}
                else:  # Stepped
                    self.step = f"complete body frame {i}"
                    nxt, nxt_body = loop_state("Idle", i + 1), body_frame("Completed", calls)
                    await self._commit(
                        cmd.cas_complete_body_frame(run_id, self.loop_id, loop, nxt, bid, body, nxt_body, running, running),
                        event=("body_frame_completed", {"iteration": i, "frame": bid}),
                    )
                    loop = loops[self.loop_id] = nxt
                    frames[bid] = nxt_body
                    body = None
        if rt_state is not RuntimeState.IDLE:
            self.step = "runtime idle"
            await _retry(ledger, lambda: self.runtime.persist_runtime_state(RuntimeState.IDLE))
            ledger.runtime_states[self.agent_id] = RuntimeState.IDLE
        await self._complete_run(run_id)
        self.step = "done"

    async def _boundary(self, run_id: str, i: int, messages: list[dict[str, Any]]) -> None:
        """Commit the session boundary of iteration ``i``: the session with one more message,
        a receipt (the store assigns its sequence), and the input that caused it."""
        ledger = self.ledger
        session = {"id": self.agent_id, "messages": [*messages, {"role": "assistant", "content": f"{self.agent_id}: iteration {i}"}]}
        delta = SessionDelta.from_session(session)
        inp = InputState(input_id=uuid7(), current_state="applied", persisted_input={"agent": self.agent_id, "iteration": i})
        kind = RunApplyBoundary.RUN_START if i == 0 else RunApplyBoundary.RUN_CHECKPOINT
        receipt = await _retry(ledger, lambda: self.runtime.commit_session_boundary(delta, run_id, kind, [inp.input_id], [inp]))
        messages[:] = session["messages"]
        ledger.receipts.setdefault(self.agent_id, []).append(receipt)
        ledger.sessions[self.agent_id] = (delta.conversation_digest, delta.message_count)
        ledger.inputs.setdefault(self.agent_id, {})[inp.input_id] = (run_id, receipt.sequence)

    async def _complete_run(self, run_id: str) -> None:
        """If every agent's frame is done, complete the run with its event, by CAS: when
        several agents see it at once, exactly one wins."""
        plan, mob = self.plan, self.mob
        self.step = "complete run"
        run = await mob.runs.get_run(run_id)
        assert run is not None
        if run.status.value != "running":
            return
        done = agent_frame("Done", iterations=plan.iterations)
        if any(run.frames.get(f"a{k}") != done for k in range(plan.agents)):
            return
        res = await self._commit(
            mob.cmd.cas_run_snapshot(run_id, "running", flow_state("Running", plan), "completed", flow_state("Completed", plan)),
            event=("flow_completed", {"run_id": run_id}),
            own=False,
            may_lose=True,
        )
        if res.ok:
            self.ledger.run_status[self.mob_id] = ("completed", flow_state("Completed", plan))
        else:
            self.ledger.completion_cas_lost += 1

    def _describe(self, frame: FrameSnapshot | None, loop: LoopSnapshot | None, body: FrameSnapshot | None) -> str:
        if frame is None:
            return "not joined yet"
        fphase = _phase(frame)[0]
        if fphase != "Looping" or loop is None:
            return fphase.lower()
        stage, i = _phase(loop)
        if stage == "Body" and body is not None:
            bstage, calls = _phase(body)
            return f"iteration {i}, body frame {bstage.lower()} after {calls} tool calls"
        return f"iteration {i}, loop {stage.lower()}"

