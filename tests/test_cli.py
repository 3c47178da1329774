"""The command line: the demo verifies itself; bench runs end to end (tiny sizes)."""

from __future__ import annotations

import json

import pytest
import trio

from mobstore.actors._cli import main


def test_bench_appends_writes_json(tmp_path, capsys):
    """`mobstore bench appends` prints the table with both ratios and writes the JSON results."""
    rc = main(["bench", "appends", "--workers", "4", "--ops", "20", "--mobs", "2", "--durability", "normal",
               "--dir", str(tmp_path), "--json", str(tmp_path / "r.json"), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ratio mobstore / naive sqlite3 threads" in text
    rows = json.loads((tmp_path / "r.json").read_text())["workloads"]["appends"]["results"]
    assert [r["name"] for r in rows] == ["mobstore", "mobstore, no group commit", "naive sqlite3 threads"]
    assert all(r["ops"] == 80 for r in rows)


def test_bench_subscribers(tmp_path, capsys):
    """`mobstore bench subscribers` reports latency percentiles and catch-up rates."""
    rc = main(["bench", "subscribers", "--workers", "4", "--ops", "10", "--subscribers", "2",
               "--backlog", "2000", "--durability", "normal", "--dir", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "p99" in text and "durable consumer catch-up: 2,000 events" in text


def test_bench_boundaries(tmp_path, capsys):
    """`mobstore bench boundaries` runs the three boundary workloads side by side."""
    rc = main(["bench", "boundaries", "--workers", "4", "--ops", "5", "--runtimes", "2",
               "--durability", "normal", "--dir", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert "ratio mobstore / naive sqlite3 threads" in capsys.readouterr().out


def test_inspect_shows_what_the_demo_wrote_and_never_writes(tmp_path, capsys):
    """`mobstore inspect` on the demo's store shows its mobs, events, consumer, spec, runs,
    labels, config and runtimes, in text and JSON, and leaves the file byte for byte as it
    was. (Runs in depth, --run, limits, undecodable rows: tests/test_inspect.py.)"""
    import hashlib

    path = tmp_path / "demo.db"
    assert main(["demo", "--path", str(path), "--mobs", "2", "--agents", "2", "--events", "50",
                 "--durability", "normal"]) == 0
    assert "demo passed" in capsys.readouterr().out
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    # 2 agents x 50 events + flow_started + flow_completed; the projector bumped the spec once per event
    assert "mob mob-0: last cursor 102, 102 events retained, spec revision 103, 1 runs" in text
    assert "consumer projector: cursor 102, lag 0" in text
    assert 'labels (mob): {"epoch":"2","phase":"completed","team":"team-mob-0"}' in text
    assert "flow review: completed" in text
    assert "realm config: generation 3" in text
    assert "mob-1/a1: state idle, 2 input states, 2 receipts" in text
    assert main(["inspect", str(path), "--json", "--tail", "2", "--mob", "mob-1"]) == 0
    info = json.loads(capsys.readouterr().out)
    [m] = info["mobs"]
    assert (m["mob_id"], m["last_cursor"], [e["cursor"] for e in m["tail"]]) == ("mob-1", 102, [101, 102])
    assert m["tail"][-1]["kind"] == "flow_completed"
    assert m["consumers"] == [{"name": "projector", "cursor": 102, "lag": 0, "stale": False}]
    [run] = m["runs"]
    assert (run["flow_id"], run["status"]) == ("review", "completed") and run["completed_at"]
    assert m["labels"][run["run_id"]] == {"flow": "review", "status": "completed"}
    assert info["config"]["generation"] == 3 and info["config"]["config"]["demo"]["finished"] is True
    # --mob shows the runtimes linked to the mob's runs (by receipts), and how many the realm has
    assert [(r["runtime_id"], r["state"], r["receipts"], r["input_states"]) for r in info["runtimes"]] == [
        (f"mob-1/a{k}", "idle", 2, 2) for k in range(2)
    ]
    assert (info["runtimes_scope"]["scope"], info["runtimes_scope"]["realm_total"]) == ("mob", 4)
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()} == before
    assert main(["inspect", str(tmp_path / "missing.db")]) == 2


async def test_inspect_reads_a_store_that_is_open(tmp_path):
    """inspect works beside the owning store (it reads the WAL; it takes no lock)."""
    from mobstore.actors import NewMobEvent, open_store
    from mobstore.storage._inspect import inspect_store

    async with open_store(tmp_path / "s.db", durability="normal") as store:
        await store.mob("m").events.append_batch([NewMobEvent("k") for _ in range(3)])
        info = await trio.to_thread.run_sync(inspect_store, tmp_path / "s.db")
        assert [(m["mob_id"], m["last_cursor"]) for m in info["mobs"]] == [("m", 3)]
        await store.mob("m").events.append(NewMobEvent("k"))


def test_chaos_cli(capsys):
    """`mobstore chaos` runs the kill -9 loop and prints a passing verdict table."""
    assert main(["chaos", "--iterations", "2", "--seed", "3", "--durability", "normal"]) == 0
    out = capsys.readouterr().out
    assert "every acknowledged commit present" in out and "verdict: PASS" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chaos", "--iterations", "0"], "'0' must be 1 or more"),
        (["chaos", "--iterations", "-2"], "'-2' is not a count"),
        (["inspect", "x.db", "--tail", "-1"], "'-1' is not a count"),
    ],
)
def test_cli_refuses_bad_counts(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_chaos_refuses_an_existing_store(tmp_path, capsys):
    """The kill -9 loop writes its own mobs: never into a file that exists."""
    p = tmp_path / "mine.db"
    p.write_bytes(b"precious")
    assert main(["chaos", "--iterations", "1", "--path", str(p)]) == 2
    assert "exists" in capsys.readouterr().err
    assert p.read_bytes() == b"precious"
