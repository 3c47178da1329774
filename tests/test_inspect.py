"""`mobstore inspect` beyond the overview of test_cli.py: runs (flow state, frames and loops
by state, ledgers, outputs) and runtimes (receipt ranges, snapshots, input states) agree with
what the demo acknowledged; `--run` gives one run in full; list limits hold; `--mob`
scopes runtimes; an undecodable row is a marker, not a failure; and nothing ever writes."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections import Counter

import pytest
import trio

from mobstore.actors import FailureLedgerEntry, FrameSnapshot, KernelState, MobRun, Profile, StepLedgerEntry, open_store
from mobstore.actors._cli import main
from mobstore.actors._demo import run_demo
from mobstore.storage._inspect import Limits, inspect_store, render
from mobstore.storage._inspect_decode import UNDECODABLE


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's store (2 mobs x 2 agents x 50 events) and its ledger of acknowledged writes."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    out: list[str] = []
    report = trio.run(lambda: run_demo(str(path), mobs=2, agents_per_mob=2, events_per_agent=50,
                                       durability="normal", out=out.append))
    assert report.ok, "".join(out)
    return path, report.ledger


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def _cli_json(capsys, *args):
    assert main(["inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _cli_text(capsys, *args):
    assert main(["inspect", *map(str, args)]) == 0
    return capsys.readouterr().out


def test_runs_and_runtimes_match_what_the_demo_wrote(demo, capsys):
    path, ledger = demo
    info = _cli_json(capsys, path, "--frames", "all", "--ledger", "all")
    assert info["undecodable"] == []
    for m in info["mobs"]:
        mob = m["mob_id"]
        [run] = m["runs"]
        assert (m["runs_total"], m["runs_by_status"], m["runs_omitted"]) == (1, {"completed": 1}, 0)
        assert run["run_id"] == ledger.run_ids[mob]
        status, flow_state = ledger.run_status[mob]
        assert run["status"] == status and run["flow_state"]["state"] == flow_state.to_json()
        assert run["flow_state"]["display"] == "Completed(agents=2)"
        assert run["activation_params"] == {"agents": 2, "iterations": ledger.plan.iterations}
        frames, loops = ledger.frames[mob], ledger.loops[mob]
        assert run["frames"]["total"] == len(frames) == 2 + 2 * ledger.plan.iterations
        assert run["frames"]["by_phase"] == dict(Counter(f.kernel_state.phase for f in frames.values()))
        assert {f["frame_id"]: f["state"] for f in run["frames"]["items"]} == {
            k: f.kernel_state.to_json() for k, f in frames.items()
        }
        assert run["loops"]["by_phase"] == dict(Counter(lp.kernel_state.phase for lp in loops.values())) == {"Done": 2}
        steps = ledger.steps[mob]
        assert run["step_ledger"]["total"] == len(steps)
        assert run["step_ledger"]["by_status"] == dict(Counter(s.status.value for s in steps))
        # (the order of acknowledgements within one group commit may differ from seq order)
        items = run["step_ledger"]["items"]
        assert [e["seq"] for e in items] == sorted(e["seq"] for e in items)
        key = lambda t: json.dumps(t, sort_keys=True)  # noqa: E731
        assert sorted(([e["step_id"], e["meerkat_id"], e["status"], e["output"]] for e in items), key=key) == sorted(
            ([s.step_id, s.meerkat_id, s.status.value, s.output] for s in steps), key=key
        )
        assert run["loop_ledger"]["total"] == len(ledger.loop_entries[mob])
        assert sorted((e["loop_instance_id"], e["iteration"], e["frame_id"]) for e in run["loop_ledger"]["items"]) == sorted(
            (e.loop_instance_id, e.iteration, e.frame_id) for e in ledger.loop_entries[mob]
        )
        assert run["failure_ledger"] == {"total": 0, "items": [], "omitted": 0}
        n_out = sum(len(per_i) for per_loop in ledger.outputs[mob].values() for per_i in per_loop.values())
        assert run["outputs"] == {"total": n_out, "root": 0, "loops": 2, "loop_iterations": 2 * ledger.plan.iterations}
        assert m["spec"]["keys"] == ["id", "flow", "projection"] and m["spec"]["bytes"] > 0
    assert info["runtimes_scope"] == {"scope": "realm", "realm_total": 4, "in_scope": 4, "omitted": 0}
    for rt in info["runtimes"]:
        receipts = ledger.receipts[rt["runtime_id"]]
        [per_run] = rt["receipt_runs"]
        assert per_run["run_id"] == receipts[0].run_id and per_run["mob_id"] == rt["runtime_id"].split("/")[0]
        assert (per_run["receipts"], per_run["first_sequence"], per_run["last_sequence"], per_run["contiguous"]) == (
            len(receipts), 0, len(receipts) - 1, True
        )
        assert per_run["last_boundary"]["digest"] == receipts[-1].conversation_digest
        assert per_run["last_boundary"]["boundary"] == receipts[-1].boundary.value
        assert rt["last_boundary"] == per_run["last_boundary"]
        digest, count = ledger.sessions[rt["runtime_id"]]
        assert rt["snapshot_messages"] == count and receipts[-1].conversation_digest == digest
        assert rt["input_states_by_state"] == {"applied": len(ledger.inputs[rt["runtime_id"]])}

    text = _cli_text(capsys, path)
    assert "flow state Completed(agents=2); params {\"agents\":2,\"iterations\":2}" in text
    assert "frames 6: Completed 4, Done 2" in text and "loops 2: Done 2" in text
    assert "step ledger 8: completed 4, dispatched 4; last 3 shown" in text
    assert "loop ledger 4; last 3 shown" in text and "failure ledger 0" in text
    assert "step outputs 4 (root 0; 2 loops, 4 iterations)" in text
    assert "spec: 399 B, keys id, flow, projection" in text
    assert "runtimes: 4 (realm-wide: runtime ids are not keyed by mob)" in text
    assert text.count("receipts 0..1 (2, contiguous), last run_checkpoint digest ") == 4
    assert "realm profiles: none" in text


def test_run_shows_one_run_in_full(demo, capsys):
    path, ledger = demo
    run_id = ledger.run_ids["mob-1"]
    info = _cli_json(capsys, path, "--run", run_id)
    assert "mobs" not in info
    run = info["run"]
    assert (run["run_id"], run["mob_id"], run["labels"]) == (run_id, "mob-1", {"flow": "review", "status": "completed"})
    assert run["frames"]["omitted"] == 0 and len(run["frames"]["items"]) == 6 and run["frames"]["gap_after"] is None
    assert len(run["step_ledger"]["items"]) == len(ledger.steps["mob-1"]) and run["step_ledger"]["omitted"] == 0
    assert len(run["loop_ledger"]["items"]) == len(ledger.loop_entries["mob-1"])
    assert {(o["loop_id"], o["iteration"], o["step_id"]): o["output"] for o in run["outputs"]["items"]} == {
        (loop, i, step): out
        for loop, per_loop in ledger.outputs["mob-1"].items()
        for i, per_i in per_loop.items()
        for step, out in per_i.items()
    }
    scope = info["runtimes_scope"]
    assert (scope["scope"], scope["in_scope"], scope["realm_total"]) == ("run", 2, 4)
    for rt in info["runtimes"]:
        assert rt["runtime_id"].startswith("mob-1/")
        assert [(r["sequence"], r["digest"]) for r in rt["receipts_of_run"]] == [
            (r.sequence, r.conversation_digest) for r in ledger.receipts[rt["runtime_id"]]
        ]
        assert [len(r["contributing"]) for r in rt["receipts_of_run"]] == [1, 1]

    text = _cli_text(capsys, path, "--run", run_id)
    assert f"run {run_id} of mob mob-1, flow review: completed, created " in text
    assert "labels {\"flow\":\"review\",\"status\":\"completed\"}" in text
    assert "    a1/iter-1  Completed(calls=" in text and "more" not in text
    assert "#0    run_start       digest " in text
    assert f"runtimes linked to run {run_id} by " in text and ": 2 of 4 in the realm" in text
    # limits still apply when given
    info = _cli_json(capsys, path, "--run", run_id, "--frames", "2", "--ledger", "1")
    assert [f["frame_id"] for f in info["run"]["frames"]["items"]] == ["a0", "a1/iter-1"]
    assert len(info["run"]["step_ledger"]["items"]) == 1 and info["run"]["step_ledger"]["omitted"] == 7
    assert len(info["run"]["outputs"]["items"]) == 1 and info["run"]["outputs"]["omitted"] == 3
    assert [len(rt["receipts_of_run"]) for rt in info["runtimes"]] == [1, 1]
    # an unknown run, or a run of another mob, is an error
    assert main(["inspect", str(path), "--run", "no-such-run"]) == 2
    assert main(["inspect", str(path), "--run", run_id, "--mob", "mob-0"]) == 2
    assert "not found" in capsys.readouterr().err


def test_limits_bound_every_list(demo, capsys):
    path, ledger = demo
    info = _cli_json(capsys, path, "--frames", "3", "--ledger", "1", "--runtimes", "1", "--tail", "2")
    assert info["limits"] == {"tail": 2, "runs": 10, "frames": 3, "ledger": 1, "runtimes": 1}
    run = info["mobs"][0]["runs"][0]
    ids = sorted(ledger.frames["mob-0"])
    frames = run["frames"]
    assert [f["frame_id"] for f in frames["items"]] == ids[:2] + ids[-1:]
    assert (frames["total"], frames["omitted"], frames["gap_after"]) == (6, 3, 2)
    assert sum(frames["by_phase"].values()) == 6  # counts still cover every frame
    assert [e["seq"] for e in run["step_ledger"]["items"]] == [8] and run["step_ledger"]["omitted"] == 7
    assert len(info["runtimes"]) == 1 and info["runtimes_scope"]["omitted"] == 3
    assert [len(m["tail"]) for m in info["mobs"]] == [2, 2]
    info = _cli_json(capsys, path, "--runs", "0", "--frames", "0")
    assert all(m["runs"] == [] and m["runs_total"] == 1 and m["runs_omitted"] == 1 for m in info["mobs"])
    assert all(rt["receipt_runs"] == [] and rt["receipt_runs_total"] == 1 for rt in info["runtimes"])
    text = _cli_text(capsys, path, "--frames", "3", "--runs", "1", "--runtimes", "1")
    assert "      ... 3 more\n" in text and "first 1 by id shown" in text


def test_bad_limit_is_a_usage_error(demo, capsys):
    path, _ = demo
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(path), "--frames", "-1"])
    assert exc.value.code == 2 and "is not a count" in capsys.readouterr().err


def test_mob_scopes_runtimes_through_their_runs(demo, capsys):
    path, _ = demo
    info = _cli_json(capsys, path, "--mob", "mob-1")
    assert [m["mob_id"] for m in info["mobs"]] == ["mob-1"]
    assert [rt["runtime_id"] for rt in info["runtimes"]] == ["mob-1/a0", "mob-1/a1"]
    assert info["runtimes_scope"]["scope"] == "mob" and info["runtimes_scope"]["realm_total"] == 4
    text = _cli_text(capsys, path, "--mob", "mob-1")
    assert "runtimes linked to mob mob-1 by boundary receipts or input states" in text
    assert ": 2 of 4 in the realm" in text and "mob-0/a0" not in text


def _doctor(src, folder):
    """A copy of ``src`` with garbage in a frame, a loop, an event, a label, an input state,
    a snapshot and a spec (through the stdlib sqlite3 module, not mobstore)."""
    folder.mkdir()
    path = folder / "doctored.db"
    shutil.copy(src, path)
    db = sqlite3.connect(path)
    with db:
        run_id = db.execute("SELECT run_id FROM runs WHERE mob_id = 'mob-0'").fetchone()[0]
        db.execute("UPDATE run_frames SET state = '{not json' WHERE run_id = ? AND frame_id = 'a0'", (run_id,))
        db.execute("UPDATE run_loops SET state = '{\"phase\": 3}' WHERE run_id = ? AND loop_instance_id = 'a1/loop'", (run_id,))
        db.execute("UPDATE mob_events SET payload = x'ff00' WHERE mob_id = 'mob-0' AND cursor = 102")
        db.execute("UPDATE mob_labels SET labels = 'nope' WHERE mob_id = 'mob-0' AND run_id = ''")
        db.execute("UPDATE runtime_input_states SET state = '[' WHERE rowid = (SELECT min(rowid) FROM runtime_input_states"
                   " WHERE runtime_id = 'mob-0/a0')")
        db.execute("UPDATE runtime_snapshots SET snapshot = x'00ff' WHERE runtime_id = 'mob-0/a1'")
        db.execute("UPDATE mob_specs SET definition = '{' WHERE mob_id = 'mob-1'")
    db.close()
    return path, run_id


def test_an_undecodable_row_is_a_marker_not_a_failure(demo, tmp_path, capsys):
    src, ledger = demo
    path, run_id = _doctor(src, tmp_path / "doctored")
    before = _digests(path.parent)
    info = _cli_json(capsys, path, "--frames", "all")
    # every value shown that cannot be decoded (input states are counted by state, not shown)
    assert len(info["undecodable"]) == 6
    m0 = info["mobs"][0]
    frames = m0["runs"][0]["frames"]
    [bad] = [f for f in frames["items"] if f["frame_id"] == "a0"]
    assert bad["phase"] is None and bad["display"] is None
    assert bad["state"][UNDECODABLE].startswith(f"frame 'a0' of run {run_id}: not JSON")
    assert frames["by_phase"] == {"Completed": 4, "<undecodable>": 1, "Done": 1}
    assert m0["runs"][0]["loops"]["by_phase"] == {"<undecodable>": 1, "Done": 1}
    good = [f for f in frames["items"] if f["frame_id"] != "a0"]
    assert all(f["phase"] for f in good) and len(good) == 5  # the rest decode as before
    assert UNDECODABLE in m0["tail"][-1]["payload"] and UNDECODABLE in m0["labels"]["(mob)"]
    assert UNDECODABLE in info["mobs"][1]["spec"]["keys"]
    rts = {rt["runtime_id"]: rt for rt in info["runtimes"]}
    assert rts["mob-0/a0"]["input_states_by_state"] == {"<undecodable>": 1, "applied": 1}
    assert UNDECODABLE in rts["mob-0/a1"]["snapshot_messages"]
    assert info["mobs"][1]["runs"][0]["frames"]["by_phase"] == {"Completed": 4, "Done": 2}  # untouched

    text = _cli_text(capsys, path)
    assert f"a0         <undecodable: frame 'a0' of run {run_id}: not JSON" in text
    assert "frames 6: Completed 4, <undecodable> 1, Done 1" in text
    assert "undecodable values: 6" in text
    detail = _cli_text(capsys, path, "--run", run_id)
    assert "<undecodable: frame 'a0'" in detail and "<undecodable: loop 'a1/loop'" in detail
    assert _digests(path.parent) == before


def test_never_writes_whatever_the_options(demo, tmp_path, capsys):
    """The demo store and a doctored copy are byte-identical (and gain no files) after every
    kind of inspect."""
    src, ledger = demo
    doctored, _ = _doctor(src, tmp_path / "d")
    for path in (src, doctored):
        before = _digests(path.parent)
        run_id = ledger.run_ids["mob-0"]
        for args in ([], ["--json"], ["--mob", "mob-0", "--tail", "50"], ["--run", run_id], ["--run", run_id, "--json"],
                     ["--runs", "all", "--frames", "all", "--ledger", "all", "--runtimes", "all", "--json"],
                     ["--runs", "0", "--frames", "0", "--ledger", "0", "--runtimes", "0"]):
            assert main(["inspect", str(path), *args]) == 0
        assert main(["inspect", str(path), "--run", "missing"]) == 2
        capsys.readouterr()
        assert _digests(path.parent) == before


def test_profiles_failures_root_outputs_and_many_frames(tmp_path):
    """A hand-made store: realm profiles (one deleted), a deleted spec, a run with 40 frames
    in three phases, a failure entry and a root output; and several runs for --runs."""
    path = tmp_path / "s.db"

    async def write():
        async with open_store(path, durability="normal") as store:
            await store.profiles.create("worker", Profile("claude-sonnet", skills=["review"]))
            p = await store.profiles.create("gone", Profile("m"))
            await store.profiles.delete("gone", expected_revision=p.revision)
            mob = store.mob("m")
            await mob.spec.put_spec({"a": 1})
            await mob.spec.delete_spec()
            runs = mob.runs
            run_ids = []
            for _ in range(3):
                run = await runs.create_run(MobRun.pending(mob_id="m", flow_id="f", activation_params={"x": [1, 2]}))
                run_ids.append(run.run_id)
            rid = run_ids[-1]
            for i in range(40):
                phase = ("Running", "Waiting", "Done")[i % 3]
                frame = FrameSnapshot(KernelState(phase, {"i": i, "tags": frozenset({"b", "a"})}))
                await runs.cas_frame_state(rid, f"f{i:02}", None, frame)
            assert await runs.cas_complete_step_and_record_output(rid, "f39", frame, frame, "s", {"root": True})
            await runs.append_step_entry(rid, StepLedgerEntry(step_id="s", meerkat_id="k", status="failed"))
            await runs.put_step_output(rid, "s", {"ok": False})
            await runs.append_failure_entry(rid, FailureLedgerEntry(step_id="__flow__", reason="boom"))
            return run_ids

    run_ids = trio.run(write)
    info = inspect_store(path, limits=Limits(runs=2, frames=4))
    assert [p["name"] for p in info["profiles"]] == ["worker"] and info["profiles_deleted"] == 1
    [p] = info["profiles"]
    assert p["model"] == "claude-sonnet" and "skills" in p["keys"] and p["bytes"] > 0 and p["created_at"]
    [m] = info["mobs"]
    assert m["spec"]["deleted"] and m["spec_revision"] is None
    assert (m["runs_total"], m["runs_omitted"], m["runs_by_status"]) == (3, 1, {"pending": 3})
    assert [r["run_id"] for r in m["runs"]] == run_ids[1:]  # the newest 2, in creation order
    run = m["runs"][-1]
    assert run["frames"]["by_phase"] == {"Running": 14, "Done": 13, "Waiting": 13}
    assert [f["frame_id"] for f in run["frames"]["items"]] == ["f00", "f01", "f38", "f39"]
    assert run["frames"]["items"][0]["display"] == 'Running(i=0, tags={"a", "b"})'
    assert run["failure_ledger"]["total"] == 1 and run["failure_ledger"]["items"][0]["reason"] == "boom"
    assert run["step_ledger"]["items"][0]["output"] == {"ok": False}
    assert run["outputs"] == {"total": 1, "root": 1, "loops": 0, "loop_iterations": 0}
    assert info["runtimes"] == [] and info["runtimes_scope"]["realm_total"] == 0
    assert "realm config: generation 0  (never set)" in render(info)
    text = render(info)
    assert "realm profiles: (1 deleted)" in text
    assert "worker: model claude-sonnet, revision 1, " in text
    assert "spec: deleted (revisions continue after 1)" in text
    assert "runs: 3 (pending 3); newest 2 shown (--runs)" in text
    assert "frames 40: Running 14, Done 13, Waiting 13\n" in text and "      ... 36 more\n" in text
    assert "failure ledger 1\n      #1     __flow__  boom" in text
    detail = inspect_store(path, run=run_ids[-1])
    assert len(detail["run"]["frames"]["items"]) == 40
    assert detail["run"]["outputs"]["items"] == [{"loop_id": None, "iteration": None, "step_id": "s", "output": {"root": True}}]
    assert "    root s: {\"root\":true}" in render(detail)


async def _small_store(path):
    from mobstore.actors import NewMobEvent

    async with open_store(path) as store:
        mob = store.mob("m")
        await mob.events.append_batch([NewMobEvent("k", {"i": i}) for i in range(3)])
        await mob.labels.set({"scope": "mob"})
        await mob.labels.set({"scope": "run"}, run_id="(mob)")  # label run ids are free text
        await mob.labels.set({"scope": "other run"}, run_id="(run (mob))")
        await mob.cursors.set(2, "behind")
        await mob.cursors.set(100, "far")  # past the head: this consumer will refuse to start
        await mob.cursors.set(1, "damaged")
        run = await mob.runs.create_run(MobRun.pending(mob_id="m", flow_id="f"))
    return run.run_id


def test_damaged_and_edge_rows_never_crash_or_mislead(tmp_path, capsys):
    """A cursor stored as text, a payload with NaN, a cursor past the head, a label run id
    spelled "(mob)", an upper-case --run: a marker or the right answer, never a traceback
    or a stale consumer shown as caught up; the --json report stays strict JSON."""
    path = tmp_path / "s.db"
    run_id = trio.run(_small_store, path)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE mob_cursors SET cursor = 'abc' WHERE name = 'damaged'")
        db.execute("""UPDATE mob_events SET payload = '{"v": NaN}' WHERE cursor = 3""")
    db.close()
    assert main(["inspect", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    info = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    m = info["mobs"][0]
    consumers = {c["name"]: c for c in m["consumers"]}
    assert consumers["behind"] == {"name": "behind", "cursor": 2, "lag": 1, "stale": False}
    assert consumers["far"] == {"name": "far", "cursor": 100, "lag": None, "stale": True}
    assert UNDECODABLE in consumers["damaged"]["cursor"]
    assert UNDECODABLE in m["tail"][-1]["payload"]
    assert m["labels"] == {
        "(mob)": {"scope": "mob"}, "(run (mob))": {"scope": "run"}, "(run (run (mob)))": {"scope": "other run"},
    }
    text = _cli_text(capsys, path)
    assert "consumer far: cursor 100, STALE: past the last cursor (3)" in text
    assert main(["inspect", str(path), "--run", str(run_id).upper()]) == 0
    assert str(run_id) in capsys.readouterr().out


def test_text_that_is_not_utf8_is_one_line_not_a_traceback(tmp_path, capsys):
    """A TEXT value that is not UTF-8 cannot be fetched at all: inspect says the file is
    damaged (exit 2), and the store's reads raise DecodeError, not UnicodeDecodeError."""
    from mobstore.actors import DecodeError

    path = tmp_path / "s.db"
    trio.run(_small_store, path)
    db = sqlite3.connect(path)
    with db:
        db.execute("""UPDATE mob_events SET payload = CAST(X'7B2278223A22FF227D' AS TEXT) WHERE cursor = 2""")
    db.close()
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not UTF-8" in err and "damaged" in err and "\n" not in err

    async def read() -> None:
        async with open_store(path) as store:
            with pytest.raises(DecodeError, match="not UTF-8"):
                await store.mob("m").events.replay_all()

    trio.run(read)
