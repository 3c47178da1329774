"""Mixed: what a multi-agent runtime does to its store, several kinds of call at once.

Workload: ``workers`` trio tasks over ``mobs`` mobs (task i works in mob ``mob-(i % mobs)``
and runtime ``runtime-(i % mobs)``), each doing ``ops`` operations drawn from ``mix``
(default ``append:60,cas:20,label:10,boundary:5,poll:5``, percent) by a RNG seeded with the
task number, so every system runs exactly the same sequence:

* ``append``: one event (a two-key JSON payload) to the task's mob;
* ``cas``: one ``cas_frame_state`` transition of the task's own frame ``frame-i`` of its
  mob's flow run (one run per mob, created with its frames before the clock starts;
  ``expected`` = the state the task wrote last; a lost CAS raises);
* ``label``: replace the labels of the mob's run (``{"stage": ..., "owner": "worker-i"}``);
* ``boundary``: a session boundary of the task's own run in its runtime: a session of up to
  4 messages, one input state, in one transaction (as in the boundaries workload);
* ``poll``: read the 10 events of the task's mob before its last append (a read, no
  transaction of the writer).

Every operation counts (``workers * ops`` per row); latency is per operation, whatever its
kind. Measured in one run, on fresh files, in this order:

1. ``mobstore``: group commit on (with ``group_commit=False``: off, named ``mobstore (group
   commit off)``).
2. ``mobstore, no group commit``: ``open_store(..., group_commit=False)``.
3. ``naive sqlite3 threads``: stdlib ``sqlite3``, ``workers`` threads, the same tables in
   plain form; every write operation is one ``BEGIN IMMEDIATE`` transaction (append:
   ``MAX(cursor) + 1`` and insert; cas: select, compare, update; label: upsert; boundary:
   ``MAX(sequence) + 1``, receipt insert, snapshot and input-state upserts), a poll is one
   ``SELECT``; WAL, the same synchronous setting, busy timeout 30 s.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import trio

from mobstore.actors import (
    KU64,
    FrameSnapshot,
    InputState,
    KernelState,
    KString,
    MobRun,
    NewMobEvent,
    SessionDelta,
    open_store,
    uuid7,
)

from ._stats import Result, naive_connect, naive_create, naive_digest, run_systems, run_tasks, run_threads, table

DEFAULTS = {"workers": 64, "ops": 300, "mobs": 16, "mix": "append:60,cas:20,label:10,boundary:5,poll:5",
            "durability": "full"}
KINDS = ("append", "cas", "label", "boundary", "poll")
_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def schedule(mix: str, worker: int, ops: int) -> list[str]:
    """The operation kinds task ``worker`` runs, in order (the same for every system).

    Raises:
        ValueError: ``mix`` is not ``kind:weight,...`` over :data:`KINDS`.
    """
    weights: dict[str, float] = {}
    for part in mix.split(","):
        kind, _, weight = part.strip().partition(":")
        if kind not in KINDS or not weight:
            raise ValueError(f"mix {mix!r}: {part!r} is not kind:weight with a kind of {', '.join(KINDS)}")
        weights[kind] = float(weight)
    return random.Random(worker).choices(list(weights), list(weights.values()), k=ops)


def _frame(worker: int, step: int) -> FrameSnapshot:
    fields = {"node": KString(f"node-{worker}"), "step": KU64(step)}
    return FrameSnapshot(KernelState(("Ready", "Running", "Waiting")[step % 3], fields))


def _frame_text(worker: int, step: int) -> str:
    fields = {"node": f"node-{worker}", "step": step}
    return json.dumps({"phase": ("Ready", "Running", "Waiting")[step % 3], "fields": fields}, separators=(",", ":"))


def _session(worker: int, j: int) -> dict[str, Any]:
    msgs = [{"role": "user" if k % 2 == 0 else "assistant", "content": f"message {k} of boundary {j} from worker {worker}"}
            for k in range(min(j + 1, 4))]
    return {"version": 1, "id": f"session-{worker}", "messages": msgs, "metadata": {}}


def _labels(worker: int, j: int) -> dict[str, str]:
    return {"stage": f"stage-{j}", "owner": f"worker-{worker}"}


async def _mobstore(path: str, workers: int, ops: int, mobs: int, mix: str, durability: str,
                    group_commit: bool) -> Result:
    lat: list[float] = []
    clock = time.perf_counter
    async with open_store(path, durability=durability, group_commit=group_commit) as store:
        run_of: dict[int, str] = {}
        for m in range(min(mobs, workers)):
            mob = store.mob(f"mob-{m}")
            run_of[m] = (await mob.runs.create_run(MobRun.pending(mob_id=mob.mob_id, flow_id="mixed"))).run_id
        for i in range(workers):
            await store.mob(f"mob-{i % mobs}").runs.cas_frame_state(run_of[i % mobs], f"frame-{i}", None, _frame(i, 0))

        async def worker(i: int) -> None:
            mob, rt = store.mob(f"mob-{i % mobs}"), store.runtime(f"runtime-{i % mobs}")
            rid, fid, my_run = run_of[i % mobs], f"frame-{i}", uuid.uuid4()
            step, last, record, cur = 0, 0, lat.append, _frame(i, 0)
            for j, kind in enumerate(schedule(mix, i, ops)):
                t = clock()
                if kind == "append":
                    last = (await mob.events.append(NewMobEvent("step_completed", {"worker": i, "n": j}))).cursor
                elif kind == "cas":
                    step += 1
                    nxt = _frame(i, step)
                    if not await mob.runs.cas_frame_state(rid, fid, cur, nxt):
                        raise AssertionError(f"CAS of {fid} lost: nobody else writes this frame")
                    cur = nxt
                elif kind == "label":
                    await mob.labels.set(_labels(i, j), run_id=rid)
                elif kind == "boundary":
                    inp = InputState(input_id=uuid7(), current_state="applied", created_at=_T0)
                    delta = SessionDelta.from_session(_session(i, j))
                    await rt.commit_session_boundary(delta, my_run, "run_checkpoint", [inp.input_id], [inp])
                else:
                    await mob.events.poll(after_cursor=max(0, last - 10), limit=10)
                record(clock() - t)

        s0 = store.statistics().committer
        seconds = await run_tasks(worker, workers)
        s1 = store.statistics().committer
    batches = s1.batches - s0.batches
    return Result.of(
        "mobstore" if group_commit else "mobstore, no group commit", lat, seconds, workers=workers, ops=ops,
        mobs=mobs, mix=mix, durability=durability, group_commit=group_commit,
        mean_batch=round((s1.requests - s0.requests) / batches, 1) if batches else 0.0, commits=s1.commits - s0.commits,
    )


_NAIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (mob_id TEXT, cursor INTEGER, ts REAL, kind TEXT, payload TEXT,
    PRIMARY KEY (mob_id, cursor));
CREATE TABLE IF NOT EXISTS frames (run_id TEXT, frame_id TEXT, state TEXT, PRIMARY KEY (run_id, frame_id));
CREATE TABLE IF NOT EXISTS labels (mob_id TEXT, run_id TEXT, labels TEXT, PRIMARY KEY (mob_id, run_id));
CREATE TABLE IF NOT EXISTS snapshots (runtime_id TEXT PRIMARY KEY, snapshot BLOB);
CREATE TABLE IF NOT EXISTS receipts (runtime_id TEXT, run_id TEXT, sequence INTEGER, receipt TEXT,
    PRIMARY KEY (runtime_id, run_id, sequence));
CREATE TABLE IF NOT EXISTS input_states (runtime_id TEXT, input_id TEXT, state TEXT, PRIMARY KEY (runtime_id, input_id));
"""


def _naive(path: str, workers: int, ops: int, mobs: int, mix: str, durability: str) -> Result:
    runs = {m: str(uuid.uuid4()) for m in range(mobs)}
    setup = naive_create(path, _NAIVE_SCHEMA)
    setup.executemany("INSERT INTO frames VALUES (?, ?, ?)",
                      [(runs[i % mobs], f"frame-{i}", _frame_text(i, 0)) for i in range(workers)])
    setup.commit()
    setup.close()
    lat: list[list[float]] = [[] for _ in range(workers)]

    def worker(i: int) -> None:
        con = naive_connect(path, durability)
        ex, record = con.execute, lat[i].append
        mob, rt, rid, fid = f"mob-{i % mobs}", f"runtime-{i % mobs}", runs[i % mobs], f"frame-{i}"
        my_run, step, last = str(uuid.uuid4()), 0, 0
        for j, kind in enumerate(schedule(mix, i, ops)):
            t = time.perf_counter()
            if kind == "poll":
                ex("SELECT cursor, ts, kind, payload FROM events WHERE mob_id = ? AND cursor > ? ORDER BY cursor LIMIT 10",
                   (mob, max(0, last - 10))).fetchall()
                record(time.perf_counter() - t)
                continue
            ex("BEGIN IMMEDIATE")
            if kind == "append":
                (last,) = ex("SELECT COALESCE(MAX(cursor), 0) + 1 FROM events WHERE mob_id = ?", (mob,)).fetchone()
                ex("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                   (mob, last, time.time(), "step_completed", json.dumps({"worker": i, "n": j})))
            elif kind == "cas":
                (state,) = ex("SELECT state FROM frames WHERE run_id = ? AND frame_id = ?", (rid, fid)).fetchone()
                if state != _frame_text(i, step):
                    ex("ROLLBACK")
                    raise AssertionError(f"CAS of {fid} lost: nobody else writes this frame")
                step += 1
                ex("UPDATE frames SET state = ? WHERE run_id = ? AND frame_id = ?", (_frame_text(i, step), rid, fid))
            elif kind == "label":
                ex("INSERT OR REPLACE INTO labels VALUES (?, ?, ?)", (mob, rid, json.dumps(_labels(i, j), sort_keys=True)))
            else:
                session, inp = _session(i, j), str(uuid7())
                digest = naive_digest(session["messages"])  # as the boundaries baseline does
                (seq,) = ex("SELECT COALESCE(MAX(sequence) + 1, 0) FROM receipts WHERE runtime_id = ? AND run_id = ?",
                            (rt, my_run)).fetchone()
                receipt = {"run_id": my_run, "boundary": "run_checkpoint", "contributing_input_ids": [inp],
                           "conversation_digest": digest, "message_count": len(session["messages"]), "sequence": seq}
                ex("INSERT INTO receipts VALUES (?, ?, ?, ?)", (rt, my_run, seq, json.dumps(receipt)))
                ex("INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (rt, json.dumps(session).encode()))
                ex("INSERT OR REPLACE INTO input_states VALUES (?, ?, ?)",
                   (rt, inp, json.dumps({"input_id": inp, "current_state": "applied", "last_run_id": my_run,
                                         "last_boundary_sequence": seq})))
            ex("COMMIT")
            record(time.perf_counter() - t)
        con.close()

    seconds = run_threads(worker, workers)
    return Result.of("naive sqlite3 threads", [x for w in lat for x in w], seconds,
                     workers=workers, ops=ops, mobs=mobs, mix=mix, durability=durability)


def run(
    *,
    workers: int = 64,
    ops: int = 300,
    mobs: int = 16,
    mix: str = DEFAULTS["mix"],  # type: ignore[assignment]
    durability: str = "full",
    directory: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    group_commit: bool = True,
) -> list[Result]:
    """Run the three systems on fresh files in ``directory`` (a temp dir by default): mobstore
    (group commit as given), ``mobstore, no group commit``, the naive baseline."""
    schedule(mix, 0, 0)  # a bad mix fails before anything runs
    with tempfile.TemporaryDirectory(dir=directory, prefix="mobstore-bench-") as d:
        return run_systems(
            d, progress, group_commit,
            lambda path, group: trio.run(_mobstore, path, workers, ops, mobs, mix, durability, group),
            lambda path: _naive(path, workers, ops, mobs, mix, durability),
            " mixed",
        )


def main() -> None:  # pragma: no cover - `python -m mobstore.benchmarks.mixed`
    parser = argparse.ArgumentParser(prog="python -m mobstore.benchmarks.mixed", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=DEFAULTS["workers"])
    parser.add_argument("--ops", type=int, default=DEFAULTS["ops"])
    parser.add_argument("--mobs", type=int, default=DEFAULTS["mobs"])
    parser.add_argument("--mix", default=DEFAULTS["mix"])
    parser.add_argument("--durability", choices=["full", "normal"], default=DEFAULTS["durability"])
    args = parser.parse_args()
    print(table(run(**vars(args), progress=print)))


if __name__ == "__main__":  # pragma: no cover
    main()
