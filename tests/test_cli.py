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
