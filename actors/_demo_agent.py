"""The demo's agents: each drives its own frame, loop and body frames of its mob's flow run
and commits session boundaries on its own runtime, one atomic store call per step, so a
cancelled agent's successor resumes from the store alone (see ``_demo_flow``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio

from mobstore.storage import (
    CommitResult,
    FrameSnapshot,
    InputState,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    NewMobEvent,
    RunApplyBoundary,
    RuntimeState,
    SessionDelta,
    StepLedgerEntry,
    uuid7,
)

from ._demo_flow import FLOW_ID, Ledger, agent_frame, body_frame, flow_state, loop_state, phase_of, retry, step_output

if TYPE_CHECKING:
    from ._store import Store


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
            # Where the agent was by what it had been told (its acknowledged commits): the
            # store must give it back exactly this when it resumes. (A commit in flight when
            # the cancel came either returned first, and is in the ledger, or was withdrawn.)
            ledger = self.ledger
            frame = ledger.frames.get(self.mob_id, {}).get(self.frame_id)
            loop = ledger.loops.get(self.mob_id, {}).get(self.loop_id)
            body = None if loop is None else ledger.frames.get(self.mob_id, {}).get(self.body_id(phase_of(loop)[1]))
            ledger.stopped_at[self.agent_id] = self._describe(frame, loop, body)
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
        res: CommitResult = await retry(self.ledger, lambda: mob.commit(*cmds))
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
            body = run.frames.get(self.body_id(phase_of(loop)[1]))
        raw = await self.runtime.load_session_snapshot()
        messages: list[dict[str, Any]] = json.loads(raw)["messages"] if raw else []
        rt_state = await self.runtime.load_runtime_state()
        if self.reopened:
            ledger.resumed[self.agent_id] = self._describe(frame, loop, body)
        running = flow_state("Running", plan)
        cmd = self.mob.cmd
        frames, loops = ledger.frames[mob_id], ledger.loops[mob_id]

        if frame is None or phase_of(frame)[0] != "Done":
            if rt_state is not RuntimeState.RUNNING:
                self.step = "runtime state"
                await retry(ledger, lambda: self.runtime.persist_runtime_state(RuntimeState.RUNNING))
                ledger.runtime_states[self.agent_id] = RuntimeState.RUNNING
                rt_state = RuntimeState.RUNNING
        if frame is None:
            self.step = "join"
            frame = agent_frame("Ready")
            await self._commit(cmd.cas_frame_state(run_id, self.frame_id, None, frame),
                               event=("agent_joined", {"runtime": self.agent_id}))
            frames[self.frame_id] = frame
        if phase_of(frame)[0] == "Ready":
            self.step = "start loop"
            looping, loop = agent_frame("Looping"), loop_state("Idle", 0)
            await self._commit(
                cmd.cas_start_loop(run_id, self.loop_id, running, running, self.frame_id, frame, looping, loop),
                event=("loop_started", {"loop": self.loop_id, "iterations": plan.iterations}),
            )
            frames[self.frame_id], loops[self.loop_id] = looping, loop
            frame = looping
        while phase_of(frame)[0] == "Looping":
            assert loop is not None
            stage, i = phase_of(loop)
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
                bstage, calls = phase_of(body)
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
            await retry(ledger, lambda: self.runtime.persist_runtime_state(RuntimeState.IDLE))
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
        receipt = await retry(ledger, lambda: self.runtime.commit_session_boundary(delta, run_id, kind, [inp.input_id], [inp]))
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
        fphase = phase_of(frame)[0]
        if fphase != "Looping" or loop is None:
            return fphase.lower()
        stage, i = phase_of(loop)
        if stage == "Body" and body is not None:
            bstage, calls = phase_of(body)
            return f"iteration {i}, body frame {bstage.lower()} after {calls} tool calls"
        return f"iteration {i}, loop {stage.lower()}"

