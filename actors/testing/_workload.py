"""The seeded workload that the kill -9 and power-loss harnesses run in a child process.

Run as ``python -m mobstore.actors.testing._workload '<json config>'``. Every acknowledged
commit is reported on stdout as one line of JSON, written with one ``os.write`` after the
call returned (so a line the parent reads is a commit the store acknowledged; a line is
never torn, lines are shorter than ``PIPE_BUF``).

What it writes, by *writer* (each entity has exactly one writer, so its history is a chain
the verifier can check; every writer resumes from the stored state, so iterations of the
chaos loop continue one another on the same file):

* ``events``: per mob, ``tick`` events, one at a time or in batches (``ev`` acks).
* ``spec``: per mob, ``mob.commit(put_spec(rev r), append(spec_committed r))`` (``spec``).
* ``runs``: per mob, runs driven through :data:`RUN_STEPS`: the frame and loop CAS wrappers
  and three ``mob.commit`` batches; the flow state's phase names the step (``run``).
* ``profiles``: realm profiles ``p0``, ``p1`` created, then updated by revision CAS.
* ``config``: ``config.patch({"chaos": {"n": g + 1}}, expected_generation=g)``.
* ``runtime``: ``commit_session_boundary`` on runtime ``rt-0`` (``receipt``).
* a durable, exactly-once consumer ``proj`` on mob ``chaos-0`` that appends one
  ``projected`` event per ``tick``, in the same commit as its cursor (chaos mode only).

``mode="chaos"`` runs the writers concurrently until ``max_ops`` acks (the parent kills it
long before); ``mode="script"`` runs ``ops`` operations one at a time, round robin, which is
deterministic down to the number of writes and syncs (the power-loss sweep needs that).
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from datetime import datetime, timezone
from typing import Any

import trio

from mobstore.storage import (
    FrameSnapshot,
    InputLifecycleState,
    InputState,
    KernelState,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    NewMobEvent,
    Profile,
    RunApplyBoundary,
    SessionDelta,
    StepLedgerEntry,
)

from .._store import open_store

MOBS = ("chaos-0", "chaos-1", "chaos-2")
PROFILES = ("p0", "p1")
RUNTIME = "rt-0"
CONSUMER = "proj"
CONSUMER_MOB = MOBS[0]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
DONE = {"k": "done"}


def R(k: int) -> KernelState:  # noqa: N802 - reads like a constructor
    """The flow state of a chaos run at step ``k``: the phase names the step."""
    return KernelState(f"step-{k}")


def run_step(run: MobRun) -> int:
    """The step a chaos run is at (from its flow state's phase)."""
    return int(run.flow_state.phase.removeprefix("step-"))


def _frame(tag: str, k: int) -> FrameSnapshot:
    return FrameSnapshot(KernelState(tag, {"v": k}))


def _loop(k: int) -> LoopSnapshot:
    return LoopSnapshot(KernelState("loop", {"v": k}))


def new_run(mob_id: str, run_id: str) -> MobRun:
    return MobRun(run_id=run_id, mob_id=mob_id, flow_id="chaos", status="pending", flow_state=R(0), created_at=T0)


F, B, L = (lambda k: _frame("root", k)), (lambda k: _frame("body", k)), _loop
#: The moves of a chaos run, step k (1-based) taking it from R(k-1) to R(k). Each is one
#: handle call ``(method, args)`` or an atomic batch ``("commit", [(method, args), ...])``;
#: every one of them changes several parts of the run at once, so a torn commit shows.
RUN_STEPS: list[Any] = [
    None,  # step 0: create_run
    ("commit", [
        ("cas_run_status", ("pending", "running")),
        ("cas_flow_state", (R(0), R(1))),
        ("cas_frame_state", ("root", None, F(0))),
    ]),
    ("cas_grant_node_slot", (R(1), R(2), "root", F(0), F(1))),
    ("cas_start_loop", ("L", R(2), R(3), "root", F(1), F(2), L(0))),
    ("cas_loop_request_body_frame", ("L", L(0), L(1), R(3), R(4))),
    ("cas_grant_body_frame_start", (
        "L", L(1), L(2), "b0", B(0), LoopIterationLedgerEntry(loop_instance_id="L", iteration=0, frame_id="b0"),
        R(4), R(5),
    )),
    ("commit", [
        ("cas_complete_step_and_record_output", ("b0", B(0), B(1), "s", {"ok": True}, ("L", 0))),
        ("cas_flow_state", (R(5), R(6))),
        ("append_step_entry", (StepLedgerEntry(step_id="s", meerkat_id="k", status="completed", timestamp=T0),)),
    ]),
    ("cas_complete_body_frame", ("L", L(2), L(3), "b0", B(1), B(2), R(6), R(7))),
    ("cas_complete_loop", ("L", L(3), L(4), "root", F(2), F(3), R(7), R(8))),
    ("commit", [
        ("cas_run_snapshot", ("running", R(8), "completed", R(9))),
        ("append", None),  # the flow_completed event, built per run
    ]),
]
LAST_STEP = len(RUN_STEPS) - 1


def step_parts(k: int, run_id: str) -> tuple[str, list[tuple[str, tuple[Any, ...]]]]:
    """Step ``k`` of run ``run_id`` as ``(kind, [(method, args)])``; kind is ``"call"`` or
    ``"commit"``. Run methods get the run id as their first argument."""
    name, args = RUN_STEPS[k]
    parts = args if name == "commit" else [(name, args)]
    out = []
    for method, a in parts:
        if method == "append":
            out.append((method, (NewMobEvent("flow_completed", {"run": run_id}),)))
        else:
            out.append((method, (run_id, *a)))
    return ("commit" if name == "commit" else "call"), out


class Workload:
    """The writers of one child run (see the module docstring)."""

    def __init__(self, store: Any, cfg: dict[str, Any], emit: Any) -> None:
        self.store = store
        self.seed = cfg.get("seed", 0)
        self.it = cfg.get("iteration", 0)
        self.emit = emit
        self.rng = random.Random(f"{self.seed}:{self.it}")

    def rng_for(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.it}:{name}")

    def writers(self) -> list[Any]:
        """One async generator per writer; each ``anext`` performs one acknowledged op."""
        gens = []
        for m in MOBS:
            gens += [self.events(m), self.spec(m), self.runs(m)]
        gens += [self.profiles(), self.config(), self.runtime()]
        return gens

    # -- writers ----------------------------------------------------------------------------

    async def events(self, mob_id: str) -> Any:
        log, rng, n = self.store.mob(mob_id).events, self.rng_for(f"ev:{mob_id}"), 0
        while True:
            size = 1 if rng.random() < 0.6 else rng.randint(2, 4)
            news = [NewMobEvent("tick", {"it": self.it, "n": n + i}) for i in range(size)]
            evs = [await log.append(news[0])] if size == 1 else await log.append_batch(news)
            self.emit({"k": "ev", "mob": mob_id, "c": [e.cursor for e in evs], "it": self.it, "n": [n + i for i in range(size)]})
            n += size
            yield

    async def spec(self, mob_id: str) -> Any:
        mob = self.store.mob(mob_id)
        got = await mob.spec.get_spec()
        rev = got[1] if got else 0
        while True:
            res = await mob.commit(
                mob.cmd.put_spec({"n": rev + 1}, revision=rev),
                mob.cmd.append(NewMobEvent("spec_committed", {"rev": rev + 1})),
            )
            if not res.ok:
                raise AssertionError(f"spec commit of {mob_id} lost its CAS at {rev}: {res}")
            rev = res.results[0]
            self.emit({"k": "spec", "mob": mob_id, "rev": rev, "c": res.results[1].cursor})
            yield

    async def runs(self, mob_id: str) -> Any:
        mob, rng = self.store.mob(mob_id), self.rng_for(f"runs:{mob_id}")
        todo = [(r.run_id, run_step(r)) for r in await mob.runs.list_runs("chaos") if run_step(r) < LAST_STEP]
        while True:
            if todo:
                run_id, k = todo.pop(0)
            else:
                run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                await mob.runs.create_run(new_run(mob_id, run_id))
                self.emit({"k": "run", "mob": mob_id, "run": run_id, "step": 0})
                yield
                k = 0
            for step in range(k + 1, LAST_STEP + 1):
                kind, parts = step_parts(step, run_id)
                ack: dict[str, Any] = {"k": "run", "mob": mob_id, "run": run_id, "step": step}
                if kind == "commit":
                    res = await mob.commit(*[getattr(mob.cmd, m)(*a) for m, a in parts])
                    ok = res.ok
                    if ok and parts[-1][0] == "append":
                        ack["c"] = res.results[-1].cursor
                else:
                    ((method, args),) = parts
                    ok = await getattr(mob.runs, method)(*args)
                if ok is not True:
                    raise AssertionError(f"run {run_id} step {step} lost its CAS: {ok}")
                self.emit(ack)
                yield

    async def profiles(self) -> Any:
        realm = self.store.profiles
        while True:
            for name in PROFILES:
                cur = await realm.get(name)
                if cur is None:
                    stored = await realm.create(name, Profile("model-1"))
                else:
                    stored = await realm.update(name, Profile(f"model-{cur.revision + 1}"), cur.revision)
                self.emit({"k": "profile", "name": name, "rev": stored.revision})
                yield

    async def config(self) -> Any:
        cfg = self.store.config
        gen = (await cfg.get()).generation
        while True:
            snap = await cfg.patch({"chaos": {"n": gen + 1}}, expected_generation=gen)
            gen = snap.generation
            self.emit({"k": "config", "gen": gen})
            yield

    async def runtime(self) -> Any:
        rt, rng = self.store.runtime(RUNTIME), self.rng_for("runtime")
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        input_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        seq = -1
        while True:
            session = {"version": 1, "id": "s", "run": run_id, "next": seq + 1,
                       "messages": [{"role": "user", "n": i} for i in range(min(seq + 2, 4))]}
            state = InputState(input_id=input_id, current_state=InputLifecycleState.ACCEPTED, created_at=T0)
            receipt = await rt.commit_session_boundary(
                SessionDelta.from_session(session), run_id, RunApplyBoundary.RUN_START, [input_id], [state]
            )
            seq = receipt.sequence
            self.emit({"k": "receipt", "run": run_id, "seq": seq, "digest": receipt.conversation_digest})
            yield

    async def consumer(self) -> Any:
        mob = self.store.mob(CONSUMER_MOB)

        def project(ev: Any) -> Any:
            if ev.kind != "tick":
                return None
            return [mob.cmd.append(NewMobEvent("projected", {"of": ev.cursor}))]

        return mob.consume(CONSUMER, project)


async def _drive(gen: Any, budget: list[int]) -> None:
    while budget[0] > 0:
        budget[0] -= 1
        await gen.__anext__()


async def run_workload(cfg: dict[str, Any], emit: Any, vfs: Any = None, vfs_name: str | None = None) -> None:
    """Open the store of ``cfg["path"]`` and run the workload (see the module docstring).
    ``vfs_name`` routes the store through another VFS stacked over ``vfs``."""
    opts = {"durability": cfg.get("durability", "full"), "backoff_base": 0.001, "idle_timeout": None}
    if vfs is not None:
        opts["vfs"] = vfs_name or vfs.vfs_name
    async with open_store(cfg["path"], **opts) as store:
        wl = Workload(store, cfg, emit)
        gens = wl.writers()
        if cfg.get("mode", "chaos") == "script":
            for i in range(cfg.get("ops", 20)):
                await gens[i % len(gens)].__anext__()
            if vfs is not None and cfg.get("power_loss_at_end"):
                vfs.power_loss()
        else:
            if cfg.get("consumer", True):
                await wl.consumer()
            budget = [cfg.get("max_ops", 5000)]
            async with trio.open_nursery() as nursery:
                for g in gens:
                    nursery.start_soon(_drive, g, budget)
    if vfs is not None:
        vfs.flush_all()


def main(argv: list[str] | None = None) -> None:
    cfg = json.loads((argv if argv is not None else sys.argv[1:])[0])
    out = sys.stdout.fileno()

    def emit(record: dict[str, Any]) -> None:
        os.write(out, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    if cfg.get("app"):  # a user's workload (kill9_app)
        from ._appcrash import run_app

        trio.run(run_app, cfg, emit)
        emit(dict(DONE))
        return
    if cfg.get("checkpoint_frames"):
        # Checkpoint the WAL this often (frames) instead of every 1,000: crash tests of a
        # short script then cut the power or kill the process in and around checkpoints.
        from mobstore.storage import _checkpoint

        _checkpoint.CHECKPOINT_FRAMES = int(cfg["checkpoint_frames"])
    vfs = None
    if cfg.get("power_loss"):
        from ._powerloss import PowerLossVFS

        pl = cfg["power_loss"]
        crash_at = tuple(pl["crash_at"]) if pl.get("crash_at") else None
        vfs = PowerLossVFS(seed=pl.get("seed", 0), crash_at=crash_at, weights=tuple(pl.get("weights", (1, 1, 1))))
    vfs_name = None
    if vfs is not None and cfg["power_loss"].get("wal_batching"):
        # The store's connections go through the WAL batching shim, stacked over the
        # power-loss VFS: a cut then sees the shim's writes (one per commit), as a disk would.
        from mobstore.storage import _wal_batching

        vfs_name = f"{vfs.vfs_name}-walbatch"
        _wal_batching.stack(vfs_name, vfs.vfs_name)
    trio.run(run_workload, cfg, emit, vfs, vfs_name)
    done = dict(DONE)
    if vfs is not None:
        done.update(syncs=vfs.syncs, writes=vfs.writes)
    emit(done)


if __name__ == "__main__":
    main()
