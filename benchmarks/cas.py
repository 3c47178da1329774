"""CAS contention on one run: many tasks moving the frames of one flow run by compare-and-swap.

Workload: one mob, one flow run (``mob.runs.create_run``, then ``pending -> running``), and
``workers`` trio tasks. Task i owns frame ``frame-i`` of that run: it inserts it (untimed
setup, ``expected=None``), then drives it through ``ops`` transitions with
``mob.runs.cas_frame_state(run_id, frame_id, expected, next)``, where ``expected`` is the
state it wrote last and ``next`` a new kernel state built in the timed loop: phase
``Ready``/``Running``/``Waiting`` in turn, fields ``node`` (a string), ``step`` (the
transition number) and ``attempt`` (a u64), about 140 bytes of canonical JSON. A CAS that
returns False is a bug in the workload and raises; after the timed loop the run is read back
and every frame must hold the state its task wrote last. Every request goes to the same mob
actor and touches the same run. Measured in one run, on fresh files, in this order:

1. ``mobstore``: group commit on (the default; with ``group_commit=False`` off, and named
   ``mobstore (group commit off)``).
2. ``mobstore, no group commit``: the same store, one transaction (one fsync) per CAS.
3. ``naive sqlite3 threads``: stdlib ``sqlite3``, ``workers`` threads, a ``frames`` table
   keyed by ``(run_id, frame_id)`` with a ``state TEXT`` column; one CAS = ``BEGIN
   IMMEDIATE``, ``SELECT state``, compare with the expected text, ``UPDATE``, ``COMMIT``; WAL,
   the same synchronous setting, busy timeout 30 s.

Only successful CASes count as operations (``workers * ops`` per row). Each row reports
throughput and per-CAS latency (median, p99, max).

``contended=True`` adds two rows, not the headline: ``workers`` tasks race on one shared
frame holding a counter, each until it has won ``contended_ops`` CASes; a loser re-reads the
frame (mobstore: ``mob.runs.get_run``; naive: the ``SELECT`` inside its transaction) and
retries. Latency there is per successful CAS, retries included. :func:`render` prints
them in a table of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence

import trio

from mobstore.actors import KU64, FrameSnapshot, KernelState, KString, MobRun, open_store

from ._stats import Result, naive_connect, naive_create, run_systems, run_tasks, run_threads, table

DEFAULTS = {"workers": 64, "ops": 500, "durability": "full", "contended": False, "contended_ops": 20}
_PHASES = ("Ready", "Running", "Waiting")
_MOB = "mob-cas"


def _state(worker: int, step: int) -> FrameSnapshot:
    """The frame state task ``worker`` writes at transition ``step``."""
    fields = {"node": KString(f"node-{worker}"), "step": KU64(step), "attempt": KU64(step // 3)}
    return FrameSnapshot(KernelState(_PHASES[step % 3], fields))


def _text(worker: int, step: int) -> str:
    """The naive baseline's state text: the same content as plain JSON."""
    fields = {"node": f"node-{worker}", "step": step, "attempt": step // 3}
    return json.dumps({"phase": _PHASES[step % 3], "fields": fields}, separators=(",", ":"))


def final_states(workers: int, ops: int) -> dict[str, FrameSnapshot]:
    """The frames a completed uncontended run leaves behind (for tests)."""
    return {f"frame-{i}": _state(i, ops) for i in range(workers)}


async def _mobstore(path: str, workers: int, ops: int, durability: str, group_commit: bool) -> Result:
    lat: list[float] = []
    clock = time.perf_counter
    async with open_store(path, durability=durability, group_commit=group_commit) as store:
        runs = store.mob(_MOB).runs
        run = await runs.create_run(MobRun.pending(mob_id=_MOB, flow_id="bench"))
        rid = run.run_id
        await runs.cas_run_status(rid, "pending", "running")
        async with trio.open_nursery() as nursery:
            for i in range(workers):
                nursery.start_soon(runs.cas_frame_state, rid, f"frame-{i}", None, _state(i, 0))

        async def worker(i: int) -> None:
            fid, cas, record = f"frame-{i}", runs.cas_frame_state, lat.append
            cur = _state(i, 0)
            for j in range(1, ops + 1):
                t = clock()
                nxt = _state(i, j)
                if not await cas(rid, fid, cur, nxt):
                    raise AssertionError(f"CAS of {fid} at step {j} lost: nobody else writes this frame")
                record(clock() - t)
                cur = nxt

        stats0 = store.statistics().committer
        seconds = await run_tasks(worker, workers)
        stats = store.statistics().committer
        got = await runs.get_run(rid)
        if got is None or got.frames != final_states(workers, ops):
            raise AssertionError("the frames read back differ from the states the tasks wrote")
    batches = stats.batches - stats0.batches
    name = "mobstore" if group_commit else "mobstore, no group commit"
    return Result.of(
        name, lat, seconds, workers=workers, ops=ops, durability=durability, group_commit=group_commit,
        mean_batch=round((stats.requests - stats0.requests) / batches, 1) if batches else 0.0,
        commits=stats.commits - stats0.commits,
    )


_NAIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, mob_id TEXT, status TEXT);
CREATE TABLE IF NOT EXISTS frames (run_id TEXT, frame_id TEXT, state TEXT, PRIMARY KEY (run_id, frame_id));
"""


def _naive_setup(path: str, rows: list[tuple[str, str]]) -> str:
    rid = str(uuid.uuid4())
    con = naive_create(path, _NAIVE_SCHEMA)
    con.execute("INSERT INTO runs VALUES (?, ?, 'running')", (rid, _MOB))
    con.executemany("INSERT INTO frames VALUES (?, ?, ?)", [(rid, f, s) for f, s in rows])
    con.commit()
    con.close()
    return rid



def _naive(path: str, workers: int, ops: int, durability: str) -> Result:
    rid = _naive_setup(path, [(f"frame-{i}", _text(i, 0)) for i in range(workers)])
    lat: list[list[float]] = [[] for _ in range(workers)]

    def worker(i: int) -> None:
        con, fid, record = naive_connect(path, durability), f"frame-{i}", lat[i].append
        cur = _text(i, 0)
        for j in range(1, ops + 1):
            t = time.perf_counter()
            nxt = _text(i, j)
            con.execute("BEGIN IMMEDIATE")
            (state,) = con.execute("SELECT state FROM frames WHERE run_id = ? AND frame_id = ?", (rid, fid)).fetchone()
            if state != cur:
                con.execute("ROLLBACK")
                raise AssertionError(f"CAS of {fid} at step {j} lost: nobody else writes this frame")
            con.execute("UPDATE frames SET state = ? WHERE run_id = ? AND frame_id = ?", (nxt, rid, fid))
            con.execute("COMMIT")
            record(time.perf_counter() - t)
            cur = nxt
        con.close()

    seconds = run_threads(worker, workers)
    return Result.of(
        "naive sqlite3 threads", [x for w in lat for x in w], seconds, workers=workers, ops=ops, durability=durability,
    )


# -- the contended variant: one shared frame, read-retry loops --------------------------------


def _counter(n: int) -> FrameSnapshot:
    return FrameSnapshot(KernelState("Counting", {"n": KU64(n)}))


async def _mobstore_contended(path: str, workers: int, ops: int, durability: str) -> Result:
    lat: list[float] = []
    clock = time.perf_counter
    retries = 0
    async with open_store(path, durability=durability) as store:
        runs = store.mob(_MOB).runs
        rid = (await runs.create_run(MobRun.pending(mob_id=_MOB, flow_id="bench"))).run_id
        await runs.cas_frame_state(rid, "shared", None, _counter(0))

        async def worker() -> None:
            nonlocal retries
            cur = _counter(0)
            for _ in range(ops):
                t = clock()
                while True:
                    n = cur.kernel_state.fields["n"].value  # type: ignore[attr-defined]
                    nxt = _counter(n + 1)
                    if await runs.cas_frame_state(rid, "shared", cur, nxt):
                        break
                    retries += 1
                    cur = (await runs.get_run(rid)).frames["shared"]  # type: ignore[union-attr]
                lat.append(clock() - t)
                cur = nxt

        seconds = await run_tasks(lambda _i: worker(), workers)
    return Result.of("mobstore, contended", lat, seconds, variant="contended", scenario="contended", workers=workers, ops=ops,
                     durability=durability, retries=retries)


def _naive_contended(path: str, workers: int, ops: int, durability: str) -> Result:
    text = lambda n: json.dumps({"phase": "Counting", "fields": {"n": n}}, separators=(",", ":"))  # noqa: E731
    rid = _naive_setup(path, [("shared", text(0))])
    lat: list[list[float]] = [[] for _ in range(workers)]
    retries = [0] * workers

    def worker(i: int) -> None:
        con, n = naive_connect(path, durability), 0
        for _ in range(ops):
            t = time.perf_counter()
            while True:
                con.execute("BEGIN IMMEDIATE")
                (state,) = con.execute("SELECT state FROM frames WHERE run_id = ? AND frame_id = 'shared'", (rid,)).fetchone()
                if state == text(n):
                    con.execute("UPDATE frames SET state = ? WHERE run_id = ? AND frame_id = 'shared'", (text(n + 1), rid))
                    con.execute("COMMIT")
                    break
                con.execute("ROLLBACK")
                retries[i] += 1
                n = json.loads(state)["fields"]["n"]  # the re-read
            lat[i].append(time.perf_counter() - t)
            n += 1
        con.close()

    seconds = run_threads(worker, workers)
    return Result.of(
        "naive sqlite3 threads, contended", [x for w in lat for x in w], seconds,
        variant="contended", scenario="contended", workers=workers, ops=ops, durability=durability, retries=sum(retries),
    )


def run(
    *,
    workers: int = 64,
    ops: int = 500,
    durability: str = "full",
    contended: bool = False,
    contended_ops: int = 20,
    directory: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    group_commit: bool = True,
) -> list[Result]:
    """Run the workloads on fresh files in ``directory`` (a temp dir by default).

    Returns mobstore (group commit as given; named ``mobstore (group commit off)`` when off),
    ``mobstore, no group commit``, the naive baseline, and with ``contended`` the two
    contended rows.
    """
    with tempfile.TemporaryDirectory(dir=directory, prefix="mobstore-bench-") as d:
        results = run_systems(
            d, progress, group_commit,
            lambda path, group: trio.run(_mobstore, path, workers, ops, durability, group),
            lambda path: _naive(path, workers, ops, durability),
            " CAS",
        )
        if contended:
            progress("mobstore CAS, contended ...")
            path = os.path.join(d, "contended.db")
            results.append(trio.run(_mobstore_contended, path, workers, contended_ops, durability))
            progress("naive sqlite3 threads CAS, contended ...")
            results.append(_naive_contended(os.path.join(d, "naive-contended.db"), workers, contended_ops, durability))
    return results


def render(results: Sequence[Result]) -> str:
    """The headline table, then (with ``contended``) the contended rows in a table of their
    own, so each is compared only with its own kind."""
    head = [r for r in results if r.settings.get("variant") != "contended"]
    rest = [r for r in results if r.settings.get("variant") == "contended"]
    out = table(head)
    if rest:
        out += f"\n\ncontended: {rest[0].settings['workers']} tasks race on one shared frame (read-retry)\n{table(rest)}"
    return out


def main() -> None:  # pragma: no cover - `python -m mobstore.benchmarks.cas`
    parser = argparse.ArgumentParser(prog="python -m mobstore.benchmarks.cas", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=DEFAULTS["workers"])
    parser.add_argument("--ops", type=int, default=DEFAULTS["ops"])
    parser.add_argument("--durability", choices=["full", "normal"], default=DEFAULTS["durability"])
    parser.add_argument("--contended", action="store_true", help="also race on one shared frame")
    parser.add_argument("--contended-ops", type=int, default=DEFAULTS["contended_ops"])
    parser.add_argument("--no-group-commit", action="store_true")
    args = parser.parse_args()
    results = run(
        workers=args.workers, ops=args.ops, durability=args.durability, contended=args.contended,
        contended_ops=args.contended_ops, group_commit=not args.no_group_commit, progress=print,
    )
    print(render(results))


if __name__ == "__main__":  # pragma: no cover
    main()
