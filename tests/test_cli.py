"""The command line: the demo verifies itself; bench runs end to end (tiny sizes)."""

from __future__ import annotations

import json

import trio

from mobstore.actors._cli import main
from mobstore.actors._demo import run_demo


def test_demo_passes_its_own_verification(tmp_path):
    """The demo (small) crashes an actor and a consumer, reopens, and every check passes."""
    out: list[str] = []
    report = trio.run(
        lambda: run_demo(str(tmp_path / "demo.db"), mobs=4, agents_per_mob=2, events_per_agent=20,
                         durability="normal", out=out.append)
    )
    assert report.ok, "".join(out)
    assert report.acknowledged == 160 and report.restarts >= 1
    assert [name for name, _, _ in report.checks][-2:] == [
        "the projection holds every event of its mob exactly once",
        "the consumer resumes after reopen at its persisted cursor",
    ]
    assert "demo passed" in "".join(out)


def test_bench_appends_writes_json(tmp_path, capsys):
    """`mobstore bench` prints the table with both ratios and writes the JSON results."""
    rc = main(["bench", "--workers", "4", "--ops", "20", "--mobs", "2", "--durability", "normal",
               "--dir", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ratio mobstore / naive sqlite3 threads" in text
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["name"] for r in rows] == ["mobstore", "mobstore, no group commit", "naive sqlite3 threads"]
    assert all(r["ops"] == 80 for r in rows)


def test_bench_subscribers(tmp_path, capsys):
    """`mobstore bench subscribers` reports latency percentiles and catch-up rates."""
    rc = main(["bench", "subscribers", "--workers", "4", "--ops", "10", "--subscribers", "2",
               "--backlog", "2000", "--durability", "normal", "--dir", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "p99" in text and "durable consumer catch-up: 2,000 events" in text


def test_bench_boundaries(tmp_path, capsys):
    """`mobstore bench boundaries` runs the three boundary workloads side by side."""
    rc = main(["bench", "boundaries", "--workers", "4", "--ops", "5", "--runtimes", "2",
               "--durability", "normal", "--dir", str(tmp_path)])
    assert rc == 0
    assert "ratio mobstore / naive sqlite3 threads" in capsys.readouterr().out


def test_inspect_shows_what_the_demo_wrote_and_never_writes(tmp_path, capsys):
    """`mobstore inspect` on the demo's store shows its mobs, events, consumer and spec, in
    text and JSON, and leaves the file byte for byte as it was."""
    import hashlib

    path = tmp_path / "demo.db"
    trio.run(lambda: run_demo(str(path), mobs=2, agents_per_mob=2, events_per_agent=5, durability="normal",
                              out=lambda s: None))
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "mob mob-0: last cursor 10" in text and "consumer projector: cursor 10, lag 0" in text
    assert main(["inspect", str(path), "--json", "--tail", "2", "--mob", "mob-1"]) == 0
    info = json.loads(capsys.readouterr().out)
    [m] = info["mobs"]
    assert (m["mob_id"], m["last_cursor"], [e["cursor"] for e in m["tail"]]) == ("mob-1", 10, [9, 10])
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
