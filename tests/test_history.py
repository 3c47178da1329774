"""The history checker: the WGL linearizability search on hand-made histories (known good
and known bad ones), event-log prefix consistency, and real concurrent histories recorded
against the store (spec and profile revisions, config generations, run status), with crash
points making some calls fail."""

from __future__ import annotations

import random
import uuid

import pytest
import trio

from mobstore.actors import MobRun, NewMobEvent, Profile, open_store
from mobstore.actors.testing import (
    CrashPoints,
    GenerationRegister,
    History,
    RevisionRegister,
    RunStatusRegister,
    check_event_log,
    check_history,
    check_linearizable,
)


def seq(h: History, key: str, f: str, arg, result, status: str = "ok"):
    """A sequential operation: invoked and completed at once."""
    op = h.invoke(key, f, arg)
    h.complete(op, status, result)
    return op


class TestRevisionRegister:
    def test_a_sequential_history_is_linearizable(self):
        h = History()
        seq(h, "s", "put", 0, 1)
        seq(h, "s", "put", 1, 2)
        seq(h, "s", "put", 1, ("conflict", 2), "fail")
        seq(h, "s", "read", None, 2)
        seq(h, "s", "delete", 2, True)
        seq(h, "s", "read", None, None)
        seq(h, "s", "put", 0, 3)  # revisions never restart
        result = check_linearizable(h.ops, RevisionRegister)
        assert result.ok and result.order == tuple(range(7))

    def test_two_winners_of_one_cas_are_rejected(self):
        """Two concurrent puts expecting revision 1 cannot both succeed."""
        h = History()
        seq(h, "s", "put", 0, 1)
        a = h.invoke("s", "put", 1)
        b = h.invoke("s", "put", 1)
        h.complete(a, "ok", 2)
        h.complete(b, "ok", 2)
        assert not check_linearizable(h.ops, RevisionRegister).ok

    def test_concurrent_cas_with_one_winner_is_accepted(self):
        h = History()
        seq(h, "s", "put", 0, 1)
        a = h.invoke("s", "put", 1)
        b = h.invoke("s", "put", 1)
        h.complete(b, "fail", ("conflict", 2))  # b lost to a, which is still in flight
        h.complete(a, "ok", 2)
        assert check_linearizable(h.ops, RevisionRegister).ok

    def test_a_stale_read_after_a_completed_write_is_rejected(self):
        h = History()
        seq(h, "s", "put", 0, 1)
        seq(h, "s", "put", 1, 2)
        seq(h, "s", "read", None, 1)
        assert not check_linearizable(h.ops, RevisionRegister).ok

    def test_a_read_concurrent_with_a_write_may_see_either(self):
        for seen in (1, 2):
            h = History()
            seq(h, "s", "put", 0, 1)
            w = h.invoke("s", "put", 1)
            r = h.invoke("s", "read", None)
            h.complete(r, "ok", seen)
            h.complete(w, "ok", 2)
            assert check_linearizable(h.ops, RevisionRegister).ok

    def test_a_conflict_must_report_the_actual_revision(self):
        h = History()
        seq(h, "s", "put", 0, 1)
        seq(h, "s", "put", 5, ("conflict", 7), "fail")
        assert not check_linearizable(h.ops, RevisionRegister).ok

    def test_an_unknown_outcome_may_or_may_not_have_happened(self):
        """An ``info`` put is either applied (then a later read sees 2) or not (1)."""
        for seen in (1, 2):
            h = History()
            seq(h, "s", "put", 0, 1)
            op = h.invoke("s", "put", 1)
            h.complete(op, "info", ("error", "WriteFailed"))
            seq(h, "s", "read", None, seen)
            assert check_linearizable(h.ops, RevisionRegister).ok
        h = History()
        seq(h, "s", "put", 0, 1)
        op = h.invoke("s", "put", 1)
        h.complete(op, "info")
        seq(h, "s", "read", None, 3)  # no order explains 3
        assert not check_linearizable(h.ops, RevisionRegister).ok

    def test_void_calls_are_left_out(self):
        """A cancelled call or ActorCrashed wrote nothing and observed nothing."""
        h = History()
        op = h.invoke("s", "put", 0)
        h.complete(op, "void", ("cancelled",))
        seq(h, "s", "read", None, None)
        assert check_linearizable(h.ops, RevisionRegister).ok

    def test_profiles(self):
        h = History()
        seq(h, "p", "create", None, 1)
        seq(h, "p", "create", None, ("conflict", 1), "fail")
        seq(h, "p", "update", 1, 2)
        seq(h, "p", "delete_profile", 2, 2)
        seq(h, "p", "update", 2, ("not_found",), "fail")
        seq(h, "p", "create", None, 3)
        assert check_linearizable(h.ops, RevisionRegister).ok


class TestOtherRegisters:
    def test_generations(self):
        h = History()
        seq(h, "c", "set", None, 1)
        a, b = h.invoke("c", "patch", 1), h.invoke("c", "patch", 1)
        h.complete(a, "ok", 2)
        h.complete(b, "fail", ("conflict", 2))
        seq(h, "c", "read", None, 2)
        assert check_linearizable(h.ops, GenerationRegister).ok
        seq(h, "c", "read", None, 1)  # went backwards
        assert not check_linearizable(h.ops, GenerationRegister).ok

    def test_run_status_has_one_winner(self):
        h = History()
        a, b = h.invoke("r", "cas", ("pending", "running")), h.invoke("r", "cas", ("pending", "canceled"))
        h.complete(a, "ok", True)
        h.complete(b, "ok", True)
        assert not check_linearizable(h.ops, RunStatusRegister).ok

    def test_check_history_picks_models_by_key_prefix(self):
        h = History()
        seq(h, "spec:a", "put", 0, 1)
        seq(h, "config", "set", None, 1)
        results = check_history(h, {"spec:": RevisionRegister, "config": GenerationRegister})
        assert sorted(r.key for r in results) == ["config", "spec:a"] and all(r.ok for r in results)
        with pytest.raises(ValueError):
            check_history(h, {"spec:": RevisionRegister})


class TestEventLog:
    def test_prefix_reads_are_consistent(self):
        h = History()
        seq(h, "m", "append", None, [(1, "a")])
        r = h.invoke("m", "read", None)
        seq(h, "m", "append", None, [(2, "b"), (3, "c")])
        h.complete(r, "ok", [(1, "a"), (2, "b"), (3, "c")])  # concurrent: may see it
        seq(h, "m", "read", None, [(1, "a"), (2, "b"), (3, "c")])
        assert check_event_log(h.ops, [(1, "a"), (2, "b"), (3, "c")]) == []

    def test_violations_are_named(self):
        h = History()
        seq(h, "m", "append", None, [(1, "a")])
        seq(h, "m", "append", None, [(2, "b")])
        seq(h, "m", "read", None, [(1, "a")])  # misses an acknowledged append
        seq(h, "m", "read", None, [(2, "b")])  # a hole: not a prefix
        seq(h, "m", "append", None, [(1, "x")])  # a cursor reused, against real time
        problems = check_event_log(h.ops, [(1, "a"), (2, "b")])
        text = "\n".join(problems)
        assert "misses" in text and "not a prefix" in text and "real-time" in text and "changed" in text


async def test_concurrent_store_histories_are_linearizable():
    """Eight tasks hammer one spec, one profile, the config and one run's status with CAS
    calls of random expectations and reads, while a crash hook fails some of them with
    ActorCrashed; every key's history is linearizable and the event log prefix-consistent."""
    rng = random.Random(5)
    h = History()
    hook = CrashPoints(seed=3, probability=0.05, max_crashes=4)
    run_id = str(uuid.uuid4())
    async with open_store(crash_hook=hook, backoff_base=0, max_restarts=10) as store:
        mob = store.mob("m")
        await mob.runs.create_run(MobRun(run_id=run_id, mob_id="m", flow_id="f"))
        await store.profiles.create("p", Profile("x"))
        log_ops = []

        async def worker(w: int):
            for _ in range(12):
                await trio.lowlevel.checkpoint()
                choice = rng.randrange(7)
                if choice == 0:
                    exp = rng.choice([None, 0, 1, 2, 3])
                    await h.call("spec", "put", exp, lambda: mob.spec.put_spec({"w": w}, revision=exp))
                elif choice == 1:
                    await h.call("spec", "read", None, _spec_rev(mob))
                elif choice == 2:
                    exp = rng.choice([1, 2, 3])
                    await h.call("profile", "update", exp,
                                 _rev(lambda: store.profiles.update("p", Profile(f"w{w}"), exp)))
                elif choice == 3:
                    exp = rng.choice([None, 0, 1, 2])
                    await h.call("config", "patch", exp,
                                 _gen(lambda: store.config.patch({"w": {"n": w}}, expected_generation=exp)))
                elif choice == 4:
                    pair = rng.choice([("pending", "running"), ("running", "completed"), ("pending", "canceled")])
                    await h.call("run", "cas", pair, lambda: mob.runs.cas_run_status(run_id, *pair))
                elif choice == 5:
                    log_ops.append(await _append(h, mob, w))
                else:
                    await h.call("log", "read", None, _read_log(mob))

        async with trio.open_nursery() as nursery:
            for w in range(8):
                nursery.start_soon(worker, w)
        final = [(e.cursor, e.payload) for e in await mob.events.replay_all()]
    seq_ops = [op for op in h.ops if op.key != "log"]
    history = History()
    history.ops = seq_ops
    models = {"spec": RevisionRegister, "profile": RevisionRegister, "config": GenerationRegister,
              "run": RunStatusRegister}
    inits = {"profile": (1, True)}
    for key, ops in history.by_key().items():
        result = check_linearizable(ops, models[key], key=key, init=inits.get(key))
        assert result.ok, key
    assert check_event_log([op for op in h.ops if op.key == "log"], final) == []
    assert len(h.ops) == 8 * 12
    assert hook.fired and any(op.status == "void" for op in h.ops)  # some calls crashed
    overlapping = sum(1 for a in h.ops for b in h.ops if a.invoke < b.invoke < a.complete)
    assert overlapping > 50  # the history is really concurrent


def _spec_rev(mob):
    async def read():
        got = await mob.spec.get_spec()
        return None if got is None else got[1]

    return read


def _rev(fn):
    async def call():
        return (await fn()).revision

    return call


def _gen(fn):
    async def call():
        return (await fn()).generation

    return call


def _read_log(mob):
    async def read():
        return [(e.cursor, e.payload) for e in await mob.events.replay_all()]

    return read


async def _append(h: History, mob, w: int):
    async def append():
        e = await mob.events.append(NewMobEvent("w", {"w": w}))
        return [(e.cursor, e.payload)]

    return await h.call("log", "append", None, append)
