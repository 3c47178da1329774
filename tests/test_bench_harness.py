"""The `mobstore bench` harness: HDR histogram, results, progress display, PNG plot, CLI."""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobstore.actors._cli import main
from mobstore.benchmarks import _registry
from mobstore.benchmarks._hdr import Histogram
from mobstore.benchmarks._plot import BACKGROUND, COLOURS, encode_png, write_plot
from mobstore.benchmarks._progress import Progress
from mobstore.benchmarks._stats import Result, ratios, table

# -- the histogram -------------------------------------------------------------------------

latencies = st.lists(st.floats(min_value=1e-6, max_value=3600.0), min_size=1, max_size=300)
quantiles = st.one_of(st.sampled_from([0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]),
                      st.floats(min_value=0.0, max_value=100.0))


def exact_percentile(values: list[float], q: float) -> float:
    """Nearest rank, as the histogram defines it."""
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s) / 100 - 1e-9)) - 1]


@settings(max_examples=200, deadline=None)
@given(latencies, quantiles)
def test_histogram_percentiles_are_within_3_significant_digits(values, q):
    h = Histogram.of(values)
    exact = exact_percentile(values, q)
    assert abs(h.percentile(q) - exact) <= exact * 1e-3 + 1e-9
    assert h.count == len(values)
    assert h.max == pytest.approx(max(values), rel=1e-6, abs=1e-9)
    assert h.min == pytest.approx(min(values), rel=1e-6, abs=1e-9)
    assert h.mean == pytest.approx(sum(values) / len(values), rel=1e-6, abs=1e-9)
    assert h.min <= h.percentile(q) <= h.max


@settings(max_examples=50, deadline=None)
@given(latencies, latencies)
def test_histogram_merge_and_json_round_trip(a, b):
    merged = Histogram.of(a).merge(Histogram.of(b))
    whole = Histogram.of(a + b)
    assert merged.to_json() == whole.to_json()
    back = Histogram.from_json(json.loads(json.dumps(whole.to_json())))
    assert back.summary() == whole.summary() and back.count == len(a) + len(b)


def test_histogram_edges():
    empty = Histogram()
    assert (empty.count, empty.percentile(99), empty.max, empty.mean) == (0, 0.0, 0.0, 0.0)
    assert empty.merge(Histogram()).count == 0
    h = Histogram()
    h.record(7200.0)  # beyond the range: its bucket is the 1 hour one; max and mean stay exact
    h.record(0.0015, count=3)
    assert h.count == 4 and h.max == 7200.0 and h.percentile(50) == pytest.approx(0.0015, rel=1e-3)
    assert h.mean == pytest.approx((7200.0 + 3 * 0.0015) / 4)
    assert h.percentile(99.9) == pytest.approx(3600.0, rel=1e-3)


# -- results and the table -----------------------------------------------------------------


def test_result_of_keeps_its_signature_and_reads_the_histogram():
    lat = [i / 1000 for i in range(1, 1001)]  # 1..1000 ms
    r = Result.of("mobstore", lat, 2.0, workers=4)
    assert (r.ops, r.ops_per_s, r.settings) == (1000, 500.0, {"workers": 4})
    assert r.p50_ms == pytest.approx(500, rel=1e-3) and r.p99_ms == pytest.approx(990, rel=1e-3)
    assert r.p999_ms == pytest.approx(999, rel=1e-3) and r.max_ms == pytest.approx(1000)
    assert Result.from_histogram("x", Histogram.of(lat), 2.0) == Result.of("x", lat, 2.0)
    doc = r.to_json()
    assert {"name", "ops", "seconds", "ops_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "settings"} <= set(doc)
    assert doc["histogram"]["count"] == 1000 and doc["latency_ms"]["p99"] == pytest.approx(990, rel=1e-3)
    json.dumps(doc)
    # the positional constructor (throughput-only rows) still works
    assert Result("catch-up", 10, 1.0, 0.0, 0.0, 0.0, {"backlog": 10}).to_json()["ops_per_s"] == 10.0


def test_table_and_ratios():
    fast = Result.of("mobstore", [0.001] * 100, 1.0)
    slow = Result.of("naive", [0.004] * 100, 4.0)
    assert ratios([fast, slow]) == {
        "naive": {"reference": "mobstore", "throughput": 4.0, "p99": pytest.approx(0.25, rel=1e-3)}}
    text = table([fast, slow])
    assert "p99.9 ms" in text and "ratio mobstore / naive: 4.0x throughput, p99 latency 0.25x" in text
    # rows of several scenarios: compared within their scenario
    rows = [Result.of(f"{s}: {sc}", [0.001 * (1 + k)] * 10, 1.0, scenario=sc)
            for sc in ("crash", "reopen") for k, s in enumerate(("mobstore", "naive"))]
    assert {k: v["reference"] for k, v in ratios(rows).items()} == {
        "naive: crash": "mobstore: crash", "naive: reopen": "mobstore: reopen"}


# -- the progress display ------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_tty_redraws_one_line():
    now = [0.0]
    out = _Tty()
    with Progress(2, stream=out, clock=lambda: now[0]) as p:
        p.start("appends", phases=2)
        p("mobstore ...")  # the plain-callable protocol of the workloads
        now[0] = 65.0
        p.phase("naive ...")
        p.advance(10)
        p.advance(5)
        assert p.ops == 15 and p.fraction == 0.25
        assert p.line().startswith("[######..................] 0/2  25% 1:05, 15 ops  appends: naive ...")
        with p.suspended():
            out.write("TABLE\n")
        p.finish()
        assert p.fraction == 0.5
    text = out.getvalue()
    assert "\n" not in text.replace("TABLE\n", "")  # redrawn in place, never a new line
    assert text.count("\r[") >= 4 and "appends: mobstore ..." in text
    assert text.rstrip(" ").endswith("\r")  # erased at the end: the terminal is left clean
    assert "\rTABLE\n\r[" in text.replace(" ", "")  # cleared for the table, redrawn after


def test_progress_off_a_tty_prints_plain_lines_and_quiet_prints_nothing():
    out = io.StringIO()
    p = Progress(1, stream=out)
    p.start("cas", phases=3)
    p("mobstore CAS ...")
    p.advance()
    p.finish("done in 1.0 s")
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    assert lines[0].endswith("cas: mobstore CAS ...") and lines[1].startswith("[" + "#" * 24 + "] 1/1 100%")
    quiet = io.StringIO()
    q = Progress(1, stream=quiet, enabled=False, tty=True)
    q.start("x")
    q("phase")
    q.finish()
    q.close()
    assert quiet.getvalue() == ""


# -- the PNG -------------------------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Parse a PNG of ours: check the signature and every CRC; return width, height, pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds, idat, ihdr = 8, [], b"", b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        kinds.append(kind)
        idat += body if kind == b"IDAT" else b""
        ihdr = body if kind == b"IHDR" else ihdr
        pos += 12 + n
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = zlib.decompress(idat)
    assert len(raw) == h * (1 + 3 * w)
    rows = [raw[y * (1 + 3 * w):(y + 1) * (1 + 3 * w)] for y in range(h)]
    assert all(r[0] == 0 for r in rows)  # filter type 0
    return w, h, b"".join(r[1:] for r in rows)


def colours_in(w: int, h: int, px: bytes) -> set[tuple[int, int, int]]:
    return {tuple(px[i:i + 3]) for i in range(0, len(px), 3)}


def test_png_encoder_round_trips_pixels():
    px = bytes(range(256)) * 3 * 2  # 2 rows of 4 x 64... any bytes of the right size
    w, h, got = read_png(encode_png(64, 8, px[:64 * 8 * 3]))
    assert (w, h, got) == (64, 8, px[:64 * 8 * 3])
    with pytest.raises(ValueError):
        encode_png(2, 2, b"\x00" * 5)


def test_plot_is_a_valid_png_with_coloured_lines(tmp_path):
    rows = [("appends", {"mobstore": [(1, 2000.0, 0.6), (4, 7000.0, 0.8), (64, 40000.0, 3.0)],
                         "mobstore, no group commit": [(1, 1900.0, 0.7), (4, 5000.0, 1.0), (64, 5200.0, 15.0)],
                         "naive sqlite3 threads": [(1, 3000.0, 0.3), (4, 5500.0, 2.0), (64, 6000.0, 2500.0)]})]
    path = tmp_path / "p.png"
    write_plot(str(path), rows, "mobstore bench")
    w, h, px = read_png(path.read_bytes())
    assert w >= 800 and h >= 300
    found = colours_in(w, h, px)
    assert BACKGROUND in found and set(COLOURS[:3]) <= found
    assert all(c != BACKGROUND for c in COLOURS)


# -- the registry and the command line -----------------------------------------------------


def test_registry_maps_options_and_tolerates_missing_modules():
    subs = _registry.get("subscribers")
    opts = subs.options({"workers": 3, "mobs": 9, "ops": None}, suite=True)
    assert opts["appenders"] == 3 and "mobs" not in opts and opts["ops"] == subs.defaults["ops"]
    assert opts["backlog"] == subs.suite["backlog"]
    assert _registry.get("boundaries").options({}, suite=False)["ops"] == 200
    ghost = _registry.Workload("ghost", "not there", "no_such_workload_module")
    assert not ghost.available()
    with pytest.raises(LookupError):
        _registry.get("nope")


def test_bench_cli_writes_json_and_plot(tmp_path, capsys):
    js, png = tmp_path / "r.json", tmp_path / "p.png"
    rc = main(["bench", "appends", "--workers", "4", "--ops", "10", "--mobs", "2", "--durability", "normal",
               "--dir", str(tmp_path), "--json", str(js), "--plot", str(png), "--sweep", "1,2", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ratio mobstore / naive sqlite3 threads" in text and "sweep: ops/s, p99 ms" in text
    doc = json.loads(js.read_text())
    assert doc["format"] == "mobstore-bench/1" and doc["settings"]["workloads"] == ["appends"]
    assert {"python", "sqlite_apsw", "sqlite_stdlib", "cpu_count", "platform", "wal_batching"} <= set(doc["machine"])
    assert doc["machine"]["wal_batching"] == "active"
    entry = doc["workloads"]["appends"]
    assert entry["options"] == {"workers": 4, "ops": 10, "mobs": 2, "durability": "normal", "group_commit": True}
    results = entry["results"]
    assert [r["name"] for r in results] == ["mobstore", "mobstore, no group commit", "naive sqlite3 threads"]
    for r in results:
        assert r["ops"] == 40 and r["histogram"]["count"] == 40
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"] == r["max_ms"]
    assert set(entry["ratios"]) == {"mobstore, no group commit", "naive sqlite3 threads"}
    assert [p["workers"] for p in entry["sweep"]] == [1, 2, 4]
    w, h, px = read_png(png.read_bytes())
    assert set(COLOURS[:3]) <= colours_in(w, h, px)


def test_bench_cli_default_json_path_group_commit_off_and_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["bench", "boundaries", "--workers", "2", "--ops", "3", "--runtimes", "2", "--durability", "normal",
               "--group-commit", "off", "--quiet"])
    assert rc == 0
    doc = json.loads((tmp_path / "mobstore-bench.json").read_text())
    first = doc["workloads"]["boundaries"]["results"][0]
    assert first["name"] == "mobstore (group commit off)" and first["settings"]["group_commit"] is False
    capsys.readouterr()
    assert main(["bench", "nope", "--quiet"]) == 2
    assert main(["bench", "subscribers", "--plot", str(tmp_path / "x.png"), "--quiet"]) == 2
    assert main(["bench", "appends", "-o", "novalue", "--quiet"]) == 2
    assert main(["bench", "appends", "-o", "contended=true", "--quiet"]) == 2  # only cas takes it
    assert "unknown workload 'nope'" in capsys.readouterr().err


def test_bench_cli_default_suite_tiny(tmp_path, capsys):
    """No workload named: every workload of the suite runs (tiny sizes here), in one JSON file."""
    js = tmp_path / "r.json"
    rc = main(["bench", "--workers", "2", "--ops", "3", "--mobs", "2", "--runtimes", "2", "--subscribers", "2",
               "--backlog", "1000", "-o", "events=20", "-o", "reopens=2", "--durability", "normal",
               "--dir", str(tmp_path), "--json", str(js), "--quiet"])
    assert rc == 0
    doc = json.loads(js.read_text())
    available = [w.name for w in _registry.WORKLOADS.values() if w.available()]
    assert list(doc["workloads"]) == available and doc["settings"]["suite"] is True
    assert {"appends", "boundaries", "subscribers"} <= set(available)
    missing = set(_registry.WORKLOADS) - set(available)
    assert missing <= {"cas", "restart", "mixed"}  # (modules written separately; skipped while missing)
    assert doc["settings"]["skipped"] == sorted(missing, key=list(_registry.WORKLOADS).index)
    for name in available:
        entry = doc["workloads"][name]
        assert entry["results"] and all(r["ops"] > 0 for r in entry["results"]), name
        if name != "subscribers":
            assert entry["results"][0]["name"].startswith("mobstore") and entry["ratios"], name
    if "restart" in available:
        assert doc["workloads"]["restart"]["options"]["events"] == 20
        assert doc["workloads"]["restart"]["ratios"]["naive sqlite3 threads: reopen"]["reference"] == "mobstore: reopen"


def test_bench_cli_passes_workload_options(tmp_path, capsys):
    """`-o KEY=VALUE` reaches the workload's run(): cas with its contended rows, whose
    ratios compare them with each other (not with the uncontended mobstore row)."""
    js = tmp_path / "r.json"
    rc = main(["bench", "cas", "--workers", "2", "--ops", "3", "-o", "contended=true", "-o", "contended-ops=2",
               "--durability", "normal", "--dir", str(tmp_path), "--json", str(js), "--quiet"])
    assert rc == 0
    entry = json.loads(js.read_text())["workloads"]["cas"]
    assert entry["options"]["contended"] is True and entry["options"]["contended_ops"] == 2
    assert len(entry["results"]) == 5 and entry["results"][0]["name"] == "mobstore"
    assert entry["ratios"]["naive sqlite3 threads, contended"]["reference"] == "mobstore, contended"
    assert entry["ratios"]["naive sqlite3 threads"]["reference"] == "mobstore"
    assert "mobstore, contended" not in entry["ratios"]


@pytest.mark.parametrize("flag, used", [("on", True), ("off", False)])
def test_bench_wal_batching_switch(tmp_path, capsys, flag, used):
    """--wal-batching on|off decides for every mobstore row of the run (an A/B switch), is
    recorded in the JSON, and is restored afterwards."""
    from mobstore.storage import _wal_batching

    js = tmp_path / "r.json"
    rc = main(["bench", "appends", "--workers", "2", "--ops", "5", "--mobs", "2", "--wal-batching", flag,
               "--dir", str(tmp_path), "--json", str(js), "--quiet"])
    assert rc == 0
    assert f"WAL batching {flag};" in capsys.readouterr().out
    doc = json.loads(js.read_text())
    assert doc["settings"]["wal_batching"] == flag
    rows = {r["name"]: r["settings"] for r in doc["workloads"]["appends"]["results"]}
    assert rows["mobstore"]["wal_batching"] is used
    assert rows["mobstore, no group commit"]["wal_batching"] is used
    assert rows["mobstore"]["checkpoints"] == 0  # 10 appends never fill the WAL to a checkpoint
    assert _wal_batching.vfs_for("full") == _wal_batching.VFS_NAME  # switched back on



def test_bench_repeat_reports_each_systems_median_run(tmp_path, capsys):
    """--repeat N runs the systems N times in rounds; each row is that system's median run
    (by throughput), lists every run's ops/s, and the setting is restored afterwards."""
    from mobstore.benchmarks import _stats

    js = tmp_path / "r.json"
    rc = main(["bench", "appends", "--workers", "2", "--ops", "4", "--mobs", "2", "--repeat", "3",
               "--dir", str(tmp_path), "--json", str(js), "--quiet"])
    assert rc == 0
    assert "median of 3 runs per system" in capsys.readouterr().out
    doc = json.loads(js.read_text())
    assert doc["settings"]["repeat"] == 3
    rows = doc["workloads"]["appends"]["results"]
    assert [r["name"] for r in rows] == ["mobstore", "mobstore, no group commit", "naive sqlite3 threads"]
    for r in rows:
        runs = r["settings"]["runs_ops_per_s"]
        assert r["settings"]["repeat"] == 3 and len(runs) == 3
        assert round(r["ops_per_s"], 1) == sorted(runs)[1]
    assert _stats._repeat == 1  # restored


def test_bench_repeat_must_be_positive(tmp_path, capsys):
    rc = main(["bench", "appends", "--repeat", "0", "--dir", str(tmp_path), "--json", str(tmp_path / "r.json"), "-q"])
    assert rc == 2
    assert "--repeat must be 1 or more, got 0" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_median_run_keeps_the_middle_runs_latencies():
    """The median run by throughput is kept whole (its latencies with it); the lower middle
    for an even count."""
    from mobstore.benchmarks._stats import Result, _median_run

    runs = [Result(f"r{i}", 100, s, p50, p50, p50) for i, (s, p50) in enumerate([(1.0, 5.0), (4.0, 1.0), (2.0, 3.0)])]
    got = _median_run(runs)
    assert (got.seconds, got.p50_ms) == (2.0, 3.0)
    assert got.settings == {"repeat": 3, "runs_ops_per_s": [100.0, 25.0, 50.0]}
    assert _median_run(runs[:2]).seconds == 4.0  # 25/s and 100/s: the lower middle


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cas", "--workers", "-1"], "cas: workers=-1: must be at least 1"),
        (["cas", "--ops", "0"], "cas: ops=0: must be at least 1"),
        (["appends", "--mobs", "0"], "appends: mobs=0: must be at least 1"),
        (["boundaries", "--runtimes", "0"], "boundaries: runtimes=0: must be at least 1"),
        (["restart", "--mobs", "0"], "restart: mobs=0: must be at least 1"),
        (["subscribers", "--subscribers", "0"], "subscribers: subscribers=0: must be at least 1"),
        (["subscribers", "--workers", "0"], "subscribers: appenders=0: must be at least 1"),
        (["subscribers", "--backlog", "0"], "subscribers: backlog=0: must be at least 1"),
        (["cas", "-o", "contended=maybe"], "cas: contended='maybe': expected true or false"),
        (["cas", "-o", "contended_ops=1.5"], "cas: contended_ops=1.5: expected an integer"),
        (["cas", "-o", "durability=fast"], "cas: durability='fast': expected full or normal"),
        (["cas", "--dir", "/nonexistent-dir"], "--dir /nonexistent-dir: no such directory"),
    ],
)
def test_bench_refuses_bad_sizes_before_running(tmp_path, capsys, argv, message):
    """Exit 2 with one line naming the option, nothing run and no file written (before:
    tables of 0 ops/s, ZeroDivisionError tracebacks, or a hang for the subscribers)."""
    js = tmp_path / "r.json"
    assert main(["bench", *argv, "--json", str(js), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"mobstore bench: {message}", err
    assert not js.exists()


def test_bench_checks_output_paths_before_running(tmp_path, capsys):
    """An output path that cannot be written fails at once, not after the run."""
    assert main(["bench", "cas", "--json", str(tmp_path), "-q"]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err
    (tmp_path / "ro").mkdir(mode=0o500)
    target = tmp_path / "ro" / "r.json"
    if os.access(tmp_path / "ro", os.W_OK):  # root ignores the mode: use a missing parent
        target = pathlib.Path("/proc/mobstore-nope/r.json")
    assert main(["bench", "cas", "--json", str(target), "-q"]) == 2
    assert f"{target}: cannot be written" in capsys.readouterr().err
    assert main(["bench", "cas", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path), "-q"]) == 2
    assert not (tmp_path / "r.json").exists()  # the check leaves no file behind


def test_bench_subscribers_backlog_below_one_batch(tmp_path, capsys):
    """A backlog that is not a multiple of the 1,000-event batch (it used to hang)."""
    js = tmp_path / "r.json"
    rc = main(["bench", "subscribers", "--workers", "2", "--ops", "3", "--subscribers", "2", "--backlog", "10",
               "--dir", str(tmp_path), "--json", str(js), "-q"])
    assert rc == 0
    rows = json.loads(js.read_text())["workloads"]["subscribers"]["results"]
    assert [r["ops"] for r in rows[1:]] == [10, 10]


def test_json_options_are_the_sizes_actually_used(tmp_path, capsys):
    """restart caps its workers at its mobs; the JSON's options (and the header line) say
    what ran, not what was asked."""
    js = tmp_path / "r.json"
    rc = main(["bench", "restart", "--workers", "3", "--mobs", "2", "-o", "events=5", "-o", "reopens=1", "--ops", "2",
               "--durability", "normal", "--dir", str(tmp_path), "--json", str(js), "--quiet"])
    assert rc == 0
    entry = json.loads(js.read_text())["workloads"]["restart"]
    assert entry["options"]["workers"] == 2
    assert {r["settings"]["workers"] for r in entry["results"] if "workers" in r["settings"]} == {2}
    assert "workers=2" in capsys.readouterr().out
