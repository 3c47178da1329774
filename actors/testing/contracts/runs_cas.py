"""The flow-run contract, part 2: the frame and loop CAS wrappers (SEMANTICS.md §3.3, §3.6).

Every wrapper is checked three ways from one table: with all preconditions holding it
applies every part; with any single precondition failing it returns False and the whole run
(every part) is unchanged; on a missing run (or another mob's) it raises NotFound.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from mobstore.actors import (
    FrameSnapshot,
    InvalidInput,
    KernelState,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    NotFound,
)
from mobstore.storage import kernel_value


def S(phase: str, **fields: Any) -> KernelState:  # noqa: N802 - reads like a constructor
    """A kernel state from plain values (``S("Running", n=1, tags={"a"})``)."""
    return KernelState(phase, {k: kernel_value(v) for k, v in fields.items()})


def missing_run_id() -> str:
    return str(uuid.uuid4())


async def new_run(store: Any, mob: str = "m", **fields: Any) -> MobRun:
    """Create a run of ``mob`` (flow ``"f"`` unless given) and return it as stored."""
    fields.setdefault("run_id", uuid.uuid4())
    fields.setdefault("flow_id", "f")
    return await store.mob(mob).runs.create_run(MobRun(mob_id=mob, **fields))


R0, R1, RX = S("Run", v=0), S("Run", v=1), S("Run", v=99)
F0, F1, FX = FrameSnapshot(S("Frame", v=0)), FrameSnapshot(S("Frame", v=1)), FrameSnapshot(S("Frame", v=99))
L0, L1, LX = LoopSnapshot(S("Loop", v=0)), LoopSnapshot(S("Loop", v=1)), LoopSnapshot(S("Loop", v=99))
E = LoopIterationLedgerEntry(loop_instance_id="l", iteration=0, frame_id="f2")


def _with(run: MobRun, flow: KernelState | None = None, frames: dict | None = None, loops: dict | None = None, **kw: Any) -> MobRun:
    if flow is not None:
        kw["flow_state"] = flow
    if frames:
        kw["frames"] = {**run.frames, **frames}
    if loops:
        kw["loops"] = {**run.loops, **loops}
    return attrs.evolve(run, **kw)


_LOOP = dict(loop_instance_id="l", expected_loop=L0, next_loop=L1)
_FLOW = dict(expected_run_state=R0, next_run_state=R1)
_FRAME = dict(frame_id="f", expected_frame=F0, next_frame=F1)

#: method -> (arguments that succeed on the fixture run, the run after success,
#:            {precondition: argument overrides that make only it fail}).
WRAPPERS: dict[str, tuple[dict[str, Any], Callable[[MobRun], MobRun], dict[str, dict[str, Any]]]] = {
    "cas_grant_node_slot": (
        {**_FLOW, **_FRAME},
        lambda r: _with(r, R1, {"f": F1}),
        {"flow": {"expected_run_state": RX}, "frame": {"expected_frame": FX}, "frame absent": {"frame_id": "nope"}},
    ),
    "cas_complete_step_and_record_output": (
        {**_FRAME, "step_output_key": "k", "step_output": {"v": 1}},
        lambda r: _with(r, None, {"f": F1}, root_step_outputs={"k": {"v": 1}}),
        {"frame": {"expected_frame": FX}, "frame absent": {"frame_id": "nope"}},
    ),
    "cas_start_loop": (
        {**_FLOW, **_FRAME, "loop_instance_id": "l2", "initial_loop": L1},
        lambda r: _with(r, R1, {"f": F1}, {"l2": L1}),
        {
            "flow": {"expected_run_state": RX},
            "frame": {"expected_frame": FX},
            "frame absent": {"frame_id": "nope"},
            "loop exists": {"loop_instance_id": "l"},
        },
    ),
    "cas_loop_request_body_frame": (
        {**_LOOP, **_FLOW},
        lambda r: _with(r, R1, None, {"l": L1}),
        {"flow": {"expected_run_state": RX}, "loop": {"expected_loop": LX}, "loop absent": {"loop_instance_id": "nope"}},
    ),
    "cas_grant_body_frame_start": (
        {**_LOOP, **_FLOW, "frame_id": "f2", "initial_frame": F1, "ledger_entry": E},
        lambda r: _with(r, R1, {"f2": F1}, {"l": L1}, loop_iteration_ledger=[E]),
        {
            "flow": {"expected_run_state": RX},
            "loop": {"expected_loop": LX},
            "loop absent": {"loop_instance_id": "nope"},
            "frame exists": {"frame_id": "f"},
        },
    ),
    "cas_complete_body_frame": (
        {**_LOOP, **_FRAME, **_FLOW},
        lambda r: _with(r, R1, {"f": F1}, {"l": L1}),
        {
            "flow": {"expected_run_state": RX},
            "loop": {"expected_loop": LX},
            "loop absent": {"loop_instance_id": "nope"},
            "frame": {"expected_frame": FX},
            "frame absent": {"frame_id": "nope"},
        },
    ),
}
WRAPPERS["cas_complete_loop"] = WRAPPERS["cas_complete_body_frame"]

_FAILURES = [(name, pre) for name, (_, _, fails) in WRAPPERS.items() for pre in fails]


async def _fixture_run(store: Any) -> MobRun:
    return await new_run(store, status="running", flow_state=R0, frames={"f": F0}, loops={"l": L0})


class RunCasContract:
    """``mob.runs`` frame and loop CAS: cas_frame_state and the seven wrappers."""

    @pytest.mark.parametrize("method", list(WRAPPERS))
    async def test_wrapper_applies_every_part(self, store, method):
        """With every precondition holding, the wrapper returns True and applies every part
        (and nothing else); the same call again returns False."""
        run = await _fixture_run(store)
        args, after, _ = WRAPPERS[method]
        call = getattr(store.mob("m").runs, method)
        assert await call(run.run_id, **args) is True
        assert await store.get_run(run.run_id) == after(run)
        assert await call(run.run_id, **args) is False
        assert await store.get_run(run.run_id) == after(run)

    @pytest.mark.parametrize(("method", "precondition"), _FAILURES, ids=[f"{m}-{p}" for m, p in _FAILURES])
    async def test_wrapper_any_failed_precondition_changes_nothing(self, store, method, precondition):
        """With exactly one precondition failing, the wrapper returns False and every part of
        the run (flow state, frames, loops, ledgers, outputs, status) is unchanged."""
        run = await _fixture_run(store)
        args, _, fails = WRAPPERS[method]
        call = getattr(store.mob("m").runs, method)
        assert await call(run.run_id, **{**args, **fails[precondition]}) is False
        assert await store.get_run(run.run_id) == run

    @pytest.mark.parametrize("method", list(WRAPPERS))
    async def test_wrapper_missing_run_is_not_found(self, store, method):
        """On a missing run, or a run of another mob, the wrapper raises NotFound(kind="run")
        and changes nothing."""
        other = await new_run(store, mob="other", flow_state=R0, frames={"f": F0}, loops={"l": L0})
        args, _, _ = WRAPPERS[method]
        call = getattr(store.mob("m").runs, method)
        for target in (missing_run_id(), other.run_id):
            with pytest.raises(NotFound) as info:
                await call(target, **args)
            assert info.value.kind == "run"
        assert await store.get_run(other.run_id) == other

    @pytest.mark.parametrize("method", list(WRAPPERS))
    async def test_wrapper_bad_input_is_refused(self, store, method):
        """A wrapper given a KernelState where a snapshot is due (or the reverse) raises
        InvalidInput naming the argument; nothing changes."""
        run = await _fixture_run(store)
        args, _, _ = WRAPPERS[method]
        for name, value in args.items():
            if isinstance(value, (FrameSnapshot, LoopSnapshot)):
                bad = value.kernel_state
            elif isinstance(value, KernelState):
                bad = FrameSnapshot(value)
            else:
                continue
            with pytest.raises(InvalidInput) as info:
                await getattr(store.mob("m").runs, method)(run.run_id, **{**args, name: bad})
            assert info.value.field == name
        assert await store.get_run(run.run_id) == run

    async def test_cas_frame_state(self, store):
        """None on an absent frame inserts; None on a present frame is False; an expected
        value on an absent frame is False; a match replaces; a mismatch is False."""
        run = await new_run(store)
        runs = store.mob("m").runs
        assert await runs.cas_frame_state(run.run_id, "f", None, F0)
        assert (await runs.get_run(run.run_id)).frames == {"f": F0}
        assert not await runs.cas_frame_state(run.run_id, "f", None, F1)
        assert not await runs.cas_frame_state(run.run_id, "g", F0, F1)
        assert not await runs.cas_frame_state(run.run_id, "f", FX, F1)
        assert (await runs.get_run(run.run_id)).frames == {"f": F0}
        assert await runs.cas_frame_state(run.run_id, "f", F0, F1)
        assert await runs.get_run(run.run_id) == attrs.evolve(run, frames={"f": F1})

    async def test_complete_step_with_loop_context_pads_iterations(self, store):
        """Loop L, iteration 2 on empty outputs gives [{}, {}, {key: out}]; re-recording a key
        overwrites it without reordering; the flow state is not checked."""
        run = await _fixture_run(store)
        runs = store.mob("m").runs
        assert await runs.cas_flow_state(run.run_id, R0, RX)  # flow state is irrelevant here
        assert await runs.cas_complete_step_and_record_output(run.run_id, "f", F0, F1, "a", 1, ("L", 2))
        assert (await runs.get_run(run.run_id)).loop_iteration_outputs == {"L": [{}, {}, {"a": 1}]}
        assert await runs.cas_complete_step_and_record_output(run.run_id, "f", F1, F0, "b", 2, ("L", 2))
        assert await runs.cas_complete_step_and_record_output(run.run_id, "f", F0, F1, "a", 3, ("L", 2))
        assert await runs.cas_complete_step_and_record_output(run.run_id, "f", F1, F0, "z", 0, ("L", 0))
        got = await runs.get_run(run.run_id)
        assert got.loop_iteration_outputs == {"L": [{"z": 0}, {}, {"a": 3, "b": 2}]}
        assert list(got.loop_iteration_outputs["L"][2]) == ["a", "b"]
        assert got.root_step_outputs == {} and got.frames["f"] == F0
        assert got.step_outputs() == {"a": 3, "b": 2}

    async def test_complete_step_root_outputs_keep_insertion_order(self, store):
        """Root outputs keep insertion order; re-recording overwrites in place."""
        run = await _fixture_run(store)
        runs = store.mob("m").runs
        frames = [F0, F1]
        for i, (key, value) in enumerate([("z", 1), ("a", 2), ("m", 3), ("z", 4)]):
            assert await runs.cas_complete_step_and_record_output(
                run.run_id, "f", frames[i % 2], frames[(i + 1) % 2], key, value
            )
        got = await runs.get_run(run.run_id)
        assert list(got.root_step_outputs.items()) == [("z", 4), ("a", 2), ("m", 3)]

    async def test_complete_step_rejects_bad_loop_context(self, store):
        """A loop context that is not (loop_id, iteration) with a sane iteration is
        InvalidInput before anything is queued."""
        run = await _fixture_run(store)
        runs = store.mob("m").runs
        for ctx in [("L",), ("L", -1), ("", 0), ("L", "2"), ("L", 10**9), ["L", 1]]:
            with pytest.raises(InvalidInput, match="loop_context"):
                await runs.cas_complete_step_and_record_output(run.run_id, "f", F0, F1, "k", 1, ctx)
        with pytest.raises(InvalidInput, match="step_output"):
            await runs.cas_complete_step_and_record_output(run.run_id, "f", F0, F1, "k", {1, 2})
        assert await store.get_run(run.run_id) == run

    async def test_grant_body_frame_start_does_not_duplicate_ledger_entry(self, store):
        """grant_body_frame_start appends its ledger entry only if the same (loop, iteration,
        frame) is not recorded yet (same key as upsert_loop_snapshot)."""
        run = await _fixture_run(store)
        runs = store.mob("m").runs
        await runs.upsert_loop_snapshot(run.run_id, "l", L0, E)
        assert await runs.cas_grant_body_frame_start(
            run.run_id, "l", L0, L1, "f2", F1, E, expected_run_state=R0, next_run_state=R1
        )
        assert (await runs.get_run(run.run_id)).loop_iteration_ledger == (E,)

    async def test_a_loop_lifecycle(self, store):
        """A whole loop, driven the way the flow engine does: start, request a body frame,
        start it, complete a step in it, complete it, complete the loop."""
        runs = store.mob("m").runs
        run = await new_run(store, status="running", flow_state=S("Running", step=0), frames={"root": F0})
        rid, flow = run.run_id, [S("Running", step=i) for i in range(6)]
        ls = [LoopSnapshot(S("Loop", stage=s)) for s in ("idle", "requested", "body", "done")]
        entry = LoopIterationLedgerEntry(loop_instance_id="li", iteration=0, frame_id="body0")
        body = [FrameSnapshot(S("Running")), FrameSnapshot(S("Completed"))]
        assert await runs.cas_start_loop(rid, "li", flow[0], flow[1], "root", F0, F1, ls[0])
        assert await runs.cas_loop_request_body_frame(rid, "li", ls[0], ls[1], flow[1], flow[2])
        assert await runs.cas_grant_body_frame_start(rid, "li", ls[1], ls[2], "body0", body[0], entry, flow[2], flow[3])
        assert await runs.cas_complete_step_and_record_output(rid, "body0", body[0], body[0], "s", {"ok": 1}, ("LOOP", 0))
        assert await runs.cas_complete_body_frame(rid, "li", ls[2], ls[1], "body0", body[0], body[1], flow[3], flow[4])
        assert await runs.cas_complete_loop(rid, "li", ls[1], ls[3], "root", F1, F0, flow[4], flow[5])
        got = await runs.get_run(rid)
        assert got.flow_state == flow[5]
        assert got.frames == {"root": F0, "body0": body[1]}
        assert got.loops == {"li": ls[3]}
        assert got.loop_iteration_ledger == (entry,)
        assert got.loop_iteration_outputs == {"LOOP": [{"s": {"ok": 1}}]}
