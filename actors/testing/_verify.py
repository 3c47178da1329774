"""Checks a store file after a crash against what the workload's child acknowledged.

Three kinds of check, all synchronous (no trio: the parent of a kill -9 harness is plain
code):

* **acknowledged** (:func:`ack_present`): every commit the child reported is there
  (events with their cursors and payloads, spec and profile revisions, config generations,
  run steps, boundary receipts with their digests). Revisions and steps are "at least"
  facts: a later commit may have moved them on.
* **consistent** (:func:`check_state`): nothing is half-visible and nothing is out of order,
  judged from the state alone: event cursors contiguous from 1 with the head equal to the
  last cursor; each writer's ticks in order, no duplicates; every spec revision has exactly
  one ``spec_committed`` event (the atomic batch); every run equals the reference run of the
  step its flow state names (:func:`reference_runs`: the same moves applied to an in-memory
  store) and has a ``flow_completed`` event iff it completed; profile content matches its
  revision, config content its generation; boundary receipts 0..n without holes, the
  session snapshot and the input state written with the latest of them; the exactly-once
  consumer projected every tick up to its cursor exactly once and nothing after;
  ``PRAGMA integrity_check`` is ``ok``.
* **monotonic** (:func:`check_progress`): against the previous check of the same file,
  nothing went backwards: every event seen before is still there unchanged, revisions,
  generations, run steps, receipt counts and the consumer cursor never decrease.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from typing import Any

import attrs

from mobstore.storage import (
    Atomic,
    Database,
    MobEvent,
    MobRun,
    _config,
    _cursors,
    _events,
    _profiles,
    _run_reads,
    _runtime_store,
    _specs,
)

from .._mob_commands import MobCommands
from ._workload import CONSUMER, CONSUMER_MOB, LAST_STEP, MOBS, PROFILES, RUNTIME, new_run, run_step, step_parts

_REF_MOB, _REF_RUN = "ref", "00000000-0000-4000-8000-000000000000"


@attrs.frozen
class StoreState:
    """Everything the checks look at, read from one store file in one go."""

    events: dict[str, list[MobEvent]]
    heads: dict[str, int]
    specs: dict[str, int]  #: mob -> spec revision (0 = none)
    spec_n: dict[str, Any]  #: mob -> the stored definition's "n"
    runs: dict[str, MobRun]
    profiles: dict[str, tuple[int, str]]  #: name -> (revision, model)
    config: tuple[dict[str, Any], int]
    receipts: dict[str, list[Any]]  #: run id -> receipts by sequence
    snapshot: dict[str, Any] | None
    inputs: list[Any]
    consumer: int | None
    integrity: str
    by_cursor: dict[str, dict[int, MobEvent]] = attrs.field(factory=dict)  #: mob -> cursor -> event


def load_state(path: str) -> StoreState:
    """Open ``path`` (running SQLite's crash recovery), read the state, close it."""
    db = Database.open(path, readers=1)
    try:
        def read(conn: Any) -> StoreState:
            events = {m: _events.replay_all(conn, m) for m in MOBS}
            heads = {m: _events.last_cursor(conn, m) for m in MOBS}
            specs, spec_n = {}, {}
            for m in MOBS:
                got = _specs.get_spec(conn, m)
                specs[m] = got[1] if got else 0
                spec_n[m] = got[0].get("n") if got else None
            runs = {r.run_id: r for m in MOBS for r in _run_reads.list_runs(conn, m, None)}
            profiles = {}
            for name in PROFILES:
                p = _profiles.get_profile(conn, name)
                if p is not None:
                    profiles[name] = (p.revision, p.profile.model)
            rows = conn.execute("SELECT DISTINCT run_id FROM runtime_receipts WHERE runtime_id = ?", (RUNTIME,))
            receipts = {r[0]: _runtime_store.load_boundary_receipts(conn, RUNTIME, r[0]) for r in rows.fetchall()}
            snap = _runtime_store.load_session_snapshot(conn, RUNTIME)
            return StoreState(
                events, heads, specs, spec_n, runs, profiles,
                _config.get_config(conn, "{}"),
                receipts,
                None if snap is None else json.loads(snap),
                _runtime_store.load_input_states(conn, RUNTIME),
                _cursors.get_cursor(conn, CONSUMER_MOB, CONSUMER),
                "",
            )

        state = db.read(read)
        with db.writer() as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        integrity = "ok" if rows == ["ok"] and not fk else "; ".join(map(str, rows + fk))[:500]
        by_cursor = {m: {e.cursor: e for e in evs} for m, evs in state.events.items()}
        return attrs.evolve(state, integrity=integrity, by_cursor=by_cursor)
    finally:
        db.close()


class _Unit:
    def __init__(self, commands: tuple[Any, ...]) -> None:
        self.commands = commands
        self.results: list[Any] | None = None
        self.error: BaseException | None = None


@functools.lru_cache(maxsize=1)
def reference_runs() -> tuple[MobRun, ...]:
    """The chaos run after each step 0..LAST_STEP, from the same moves applied one by one to
    a private in-memory store (run id and mob normalised, ``completed_at`` cleared)."""
    db = Database.open(None)
    try:
        cmd = MobCommands(_REF_MOB)
        out = []
        for k in range(LAST_STEP + 1):
            if k == 0:
                cmds: tuple[Any, ...] = (cmd.create_run(new_run(_REF_MOB, _REF_RUN)),)
            else:
                kind, parts = step_parts(k, _REF_RUN)
                built = tuple(getattr(cmd, m)(*a) for m, a in parts)
                cmds = (Atomic(_REF_MOB, built),) if kind == "commit" else built
            unit = _Unit(cmds)
            db.apply([unit])
            if unit.error is not None:
                raise unit.error
            out.append(_normal(db.read(_run_reads.get_run, _REF_RUN, None)))
        return tuple(out)
    finally:
        db.close()


def _normal(run: MobRun) -> MobRun:
    return attrs.evolve(run, run_id=_REF_RUN, mob_id=_REF_MOB, completed_at=None)


# -- acknowledged ---------------------------------------------------------------------------


def ack_present(state: StoreState, ack: dict[str, Any]) -> bool:
    """Whether the acknowledged commit ``ack`` (one line of the child) is in ``state``."""
    k = ack["k"]
    if k == "ev":
        by = state.by_cursor[ack["mob"]]
        return all(
            c in by and by[c].kind == "tick" and by[c].payload == {"it": ack["it"], "n": n}
            for c, n in zip(ack["c"], ack["n"])
        )
    if k == "spec":
        ev = state.by_cursor[ack["mob"]].get(ack["c"])
        ok_ev = ev is not None and ev.kind == "spec_committed" and ev.payload == {"rev": ack["rev"]}
        return state.specs[ack["mob"]] >= ack["rev"] and ok_ev
    if k == "run":
        run = state.runs.get(ack["run"])
        if run is None or run.mob_id != ack["mob"] or run_step(run) < ack["step"]:
            return False
        if "c" in ack:
            ev = state.by_cursor[ack["mob"]].get(ack["c"])
            return ev is not None and ev.kind == "flow_completed" and ev.payload == {"run": ack["run"]}
        return True
    if k == "profile":
        return state.profiles.get(ack["name"], (0, ""))[0] >= ack["rev"]
    if k == "config":
        return state.config[1] >= ack["gen"]
    if k == "receipt":
        got = state.receipts.get(ack["run"], [])
        return any(r.sequence == ack["seq"] and r.conversation_digest == ack["digest"] for r in got)
    raise ValueError(f"unknown ack kind {k!r}")


def describe(ack: dict[str, Any]) -> str:
    """A short name of an acknowledged commit, for reports."""
    k = ack["k"]
    if k == "ev":
        return f"{ack['mob']} events {ack['c']}"
    if k == "spec":
        return f"{ack['mob']} spec rev {ack['rev']} (+event {ack['c']})"
    if k == "run":
        return f"{ack['mob']} run {ack['run'][:8]} step {ack['step']}"
    if k == "profile":
        return f"profile {ack['name']} rev {ack['rev']}"
    if k == "config":
        return f"config gen {ack['gen']}"
    return f"receipt {ack['run'][:8]}#{ack['seq']}"


# -- consistent -----------------------------------------------------------------------------


def check_state(state: StoreState) -> tuple[list[str], list[str]]:
    """``(torn, order)``: half-visible commits and ordering violations found in ``state``."""
    torn: list[str] = []
    order: list[str] = []
    ref = reference_runs()
    for m in MOBS:
        evs = state.events[m]
        cursors = [e.cursor for e in evs]
        if cursors != list(range(1, len(evs) + 1)):
            order.append(f"{m}: cursors are not 1..{len(evs)} without gaps or duplicates")
        if state.heads[m] != len(evs):
            torn.append(f"{m}: head {state.heads[m]} but the last event is {len(evs)}")
        ticks = [(e.payload["it"], e.payload["n"]) for e in evs if e.kind == "tick"]
        if ticks != sorted(set(ticks)):
            order.append(f"{m}: tick events out of order or duplicated")
        revs = [e.payload["rev"] for e in evs if e.kind == "spec_committed"]
        if revs != list(range(1, state.specs[m] + 1)):
            torn.append(f"{m}: spec at revision {state.specs[m]} but spec_committed events {revs[-5:]}")
        elif state.specs[m] and state.spec_n[m] != state.specs[m]:
            torn.append(f"{m}: spec revision {state.specs[m]} holds the definition of {state.spec_n[m]}")
        done = Counter(e.payload["run"] for e in evs if e.kind == "flow_completed")
        for run in (r for r in state.runs.values() if r.mob_id == m):
            k = run_step(run)
            if not 0 <= k <= LAST_STEP or _normal(run) != ref[k]:
                torn.append(f"{m}: run {run.run_id[:8]} is not the reference run of step {k}")
            if (run.completed_at is not None) != run.status.is_terminal:
                torn.append(f"{m}: run {run.run_id[:8]} completed_at does not match its status")
            if done[run.run_id] != (1 if k == LAST_STEP else 0):
                torn.append(f"{m}: run {run.run_id[:8]} at step {k} has {done[run.run_id]} flow_completed events")
    for name, (rev, model) in state.profiles.items():
        if model != f"model-{rev}":
            torn.append(f"profile {name} revision {rev} holds {model!r}")
    cfg, gen = state.config
    if cfg.get("chaos", {}).get("n", 0) != gen:
        torn.append(f"config generation {gen} holds {cfg.get('chaos')}")
    torn += _check_runtime(state, order)
    torn += _check_consumer(state)
    return torn, order


def _check_runtime(state: StoreState, order: list[str]) -> list[str]:
    torn = []
    for run, receipts in state.receipts.items():
        seqs = [r.sequence for r in receipts]
        if seqs != list(range(len(seqs))):
            order.append(f"receipts of run {run[:8]}: sequences {seqs[:10]} are not 0..n")
    snap = state.snapshot
    if snap is None:
        return torn if not state.receipts else [*torn, "receipts without a session snapshot"]
    run, seq = snap["run"], snap["next"]
    mine = state.receipts.get(run, [])
    if not mine or mine[-1].sequence != seq:
        torn.append(f"session snapshot of receipt {run[:8]}#{seq} but the last receipt is {mine[-1].sequence if mine else None}")
    stamped = [i.last_boundary_sequence for i in state.inputs if i.last_run_id == run]
    if stamped != [seq]:
        torn.append(f"input states of run {run[:8]} stamped {stamped}, the snapshot is of receipt #{seq}")
    return torn


def _check_consumer(state: StoreState) -> list[str]:
    evs = state.events[CONSUMER_MOB]
    cur = state.consumer or 0
    ticks = {e.cursor for e in evs if e.kind == "tick"}
    projected = Counter(e.payload["of"] for e in evs if e.kind == "projected")
    bad = [c for c in sorted(ticks) if projected[c] != (1 if c <= cur else 0)]
    stray = [c for c in projected if c not in ticks]
    out = []
    if bad:
        c = bad[0]
        out.append(f"consumer {CONSUMER} at {cur}: tick {c} projected {projected[c]} times ({len(bad)} such ticks)")
    if stray:
        out.append(f"consumer {CONSUMER}: projections of non-ticks {stray[:5]}")
    return out


# -- monotonic ------------------------------------------------------------------------------


def check_progress(before: StoreState | None, after: StoreState) -> list[str]:
    """What went backwards between two checks of the same file (``[]`` if nothing)."""
    if before is None:
        return []
    out = []
    for m in MOBS:
        old, new = before.events[m], after.events[m]
        if new[: len(old)] != old:
            out.append(f"{m}: events seen before changed or vanished ({len(old)} before, {len(new)} now)")
        if after.heads[m] < before.heads[m] or after.specs[m] < before.specs[m]:
            out.append(f"{m}: head or spec revision went backwards")
    for rid, run in before.runs.items():
        now = after.runs.get(rid)
        if now is None or run_step(now) < run_step(run):
            out.append(f"run {rid[:8]}: step went backwards or the run vanished")
    for name, (rev, _) in before.profiles.items():
        if after.profiles.get(name, (0, ""))[0] < rev:
            out.append(f"profile {name}: revision went backwards")
    if after.config[1] < before.config[1]:
        out.append("config generation went backwards")
    for rid, receipts in before.receipts.items():
        if len(after.receipts.get(rid, [])) < len(receipts):
            out.append(f"receipts of run {rid[:8]} vanished")
    if (after.consumer or 0) < (before.consumer or 0):
        out.append(f"consumer {CONSUMER} cursor went backwards")
    return out
