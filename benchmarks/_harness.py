"""``mobstore bench``: runs workloads of the registry with their baselines, side by side.

For each workload chosen (none named: the default suite, at sizes that keep the whole run
under two minutes on two cores; ``all``: every workload at its full size) it runs the
workload once, which measures mobstore and its baselines on fresh files in the same process,
prints the table (throughput, p50/p99/p99.9/max latency from an HDR histogram, ratios of
mobstore to each baseline), and at the end writes a JSON file with the settings, the
machine, every result (with its histogram) and the ratios. With ``--plot`` it also runs the
workloads at each worker count of ``--sweep`` and draws throughput and p99 against workers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from mobstore.storage import _wal_batching

from . import _registry, _stats
from ._progress import Progress
from ._stats import Result, ratios

DEFAULT_JSON = "mobstore-bench.json"
DEFAULT_SWEEP = "1,4,16,64"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mobstore bench``."""
    names = ", ".join(_registry.WORKLOADS)
    p.add_argument("workload", nargs="*", metavar="WORKLOAD",
                   help=f"workloads to run: {names}, or all (full sizes); none: the default suite "
                        "(every workload, sized to finish in under 2 minutes on 2 cores)")
    p.add_argument("--workers", type=int, help="concurrent writers (subscribers workload: appenders)")
    p.add_argument("--ops", type=int, help="operations per worker")
    p.add_argument("--mobs", type=int, help="appends workload: mobs the workers write to")
    p.add_argument("--runtimes", type=int, help="boundaries workload: runtimes")
    p.add_argument("--subscribers", type=int, help="subscribers workload: live subscribers")
    p.add_argument("--backlog", type=int, help="subscribers workload: catch-up backlog (events)")
    p.add_argument("--durability", choices=["full", "normal"], help="fsync per commit (full, the default) or not")
    p.add_argument("--group-commit", choices=["on", "off"],
                   help="group commit of the mobstore row (default on); the no-group-commit baseline always runs")
    p.add_argument("--wal-batching", choices=["on", "off"], default="on",
                   help="durable file stores write each commit's WAL frames with one write (on, the "
                        "default, if the C extension was built) or with SQLite's two per page (off): "
                        "for A/B runs; applies to every mobstore row")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run each system N times, in alternating rounds, and report each one's median "
                        "run (cas, appends, boundaries, mixed; default 1): for noisy machines")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a workload-specific option (e.g. -o contended=true for cas); repeatable")
    p.add_argument("--dir", help="where the temp store files go (default: the system temp dir)")
    p.add_argument("--json", default=DEFAULT_JSON, metavar="PATH",
                   help=f"the JSON result file (default: {DEFAULT_JSON} in the current directory)")
    p.add_argument("--plot", metavar="PNG", help="also run a sweep of worker counts and plot throughput and p99")
    p.add_argument("--sweep", default=DEFAULT_SWEEP, metavar="N,N,...",
                   help=f"worker counts of the --plot sweep (default {DEFAULT_SWEEP})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "on", "yes"):
        return True
    if low in ("false", "off", "no"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _given(args: argparse.Namespace) -> dict[str, Any]:
    given: dict[str, Any] = {
        k: getattr(args, k) for k in ("workers", "ops", "mobs", "runtimes", "subscribers", "backlog", "durability")
    }
    given["group_commit"] = None if args.group_commit is None else args.group_commit == "on"
    for item in args.option:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        given[key.strip().replace("-", "_")] = _value(val.strip())
    return given


def _extra_keys(args: argparse.Namespace) -> list[str]:
    return [item.partition("=")[0].strip().replace("-", "_") for item in args.option]


def machine() -> dict[str, Any]:
    """What the figures depend on: interpreter, SQLite builds, CPUs, platform, load."""
    import sqlite3

    import apsw
    import trio

    try:
        from importlib.metadata import version
        mobstore_version = version("mobstore")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        mobstore_version = None
    info: dict[str, Any] = {
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "sqlite_apsw": apsw.sqlite_lib_version(), "apsw": apsw.apsw_version(),
        "sqlite_stdlib": sqlite3.sqlite_version, "trio": trio.__version__, "mobstore": mobstore_version,
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
        # "active" if the WAL batching shim is built and loads (settings.wal_batching says
        # whether the run used it), otherwise why not.
        "wal_batching": _wal_batching.status(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _plan(names: Sequence[str]) -> tuple[list[_registry.Workload], bool, list[str]]:
    """(workloads to run, suite sizes?, names skipped because their module is missing)."""
    if not names:
        chosen, suite = list(_registry.WORKLOADS.values()), True
    elif "all" in names:
        chosen, suite = list(_registry.WORKLOADS.values()), False
    else:
        chosen, suite = [_registry.get(n) for n in dict.fromkeys(names)], False
    explicit = bool(names) and "all" not in names
    missing = [w.name for w in chosen if not w.available()]
    if missing and explicit:
        raise LookupError(f"workload module not installed: {', '.join(missing)}")
    return [w for w in chosen if w.name not in missing], suite, missing


def _dumps(obj: Any, indent: int = 0) -> str:
    """JSON with nested objects indented and lists kept on one line (histograms stay short)."""
    if isinstance(obj, dict) and obj:
        pad = " " * (indent + 2)
        items = [f"{pad}{json.dumps(str(k))}: {_dumps(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list) and any(isinstance(x, dict) for x in obj):
        pad = " " * (indent + 2)
        return "[\n" + ",\n".join(pad + _dumps(x, indent + 2) for x in obj) + "\n" + " " * indent + "]"
    return json.dumps(obj, separators=(",", ":"))


def _used(opts: dict[str, Any], results: Sequence[Result]) -> dict[str, Any]:
    """``opts`` with each size the workload changed (``restart`` caps its workers at its
    mobs) replaced by the value every result row reports having used."""
    used = dict(opts)
    for key in opts:
        values = [r.settings.get(key, used) for r in results]  # `used`: a row without it
        if values and values[0] is not used and all(v == values[0] for v in values):
            used[key] = values[0]
    return used


def _points(results: Sequence[Result], workers: int) -> dict[str, tuple[int, float, float]]:
    # One line per system in the sweep and the plot: a workload's variant rows (cas's
    # contended run) are reported in its tables, not plotted.
    return {r.name: (workers, r.ops_per_s, r.p99_ms) for r in results if "variant" not in r.settings}


def _sweep_table(series: dict[str, list[tuple[int, float, float]]]) -> str:
    """Throughput and p99 of each system at each worker count of the sweep."""
    counts = sorted({p[0] for pts in series.values() for p in pts})
    head = f"{'sweep: ops/s, p99 ms':<30}" + "".join(f"{f'{n} workers':>20}" for n in counts)
    lines = [head]
    for name, pts in series.items():
        by = {p[0]: p for p in pts}
        cells = [f"{f'{by[n][1]:,.0f}/s {by[n][2]:.2f}':>20}" if n in by else f"{'-':>20}" for n in counts]
        lines.append(f"{name:<30}" + "".join(cells))
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> tuple[dict[str, Any], list[_registry.Workload], bool, list[str], list[int]]:
    """Validate the command line before anything runs; raise ValueError/LookupError if wrong."""
    given = _given(args)
    workloads, suite, missing = _plan(args.workload)
    unknown = [k for k in _extra_keys(args) if not any(w.aliases.get(k, k) in w.parameters() for w in workloads)]
    if unknown:
        raise ValueError(f"no chosen workload takes the option(s) {', '.join(unknown)}")
    sweep: list[int] = []
    if args.plot:
        sweep = sorted({int(x) for x in args.sweep.split(",") if x.strip()})
        if not sweep or sweep[0] < 1:
            raise ValueError(f"--sweep {args.sweep!r}: expected positive worker counts")
        if not any(w.sweep and w.workers_option() for w in workloads):
            names = ", ".join(w.name for w in _registry.WORKLOADS.values() if w.sweep)
            raise ValueError(f"--plot needs a workload with a worker sweep ({names})")
    for w in workloads:
        _check_options(w, w.options(given, suite=suite))
    if args.dir is not None and not os.path.isdir(args.dir):
        raise ValueError(f"--dir {args.dir}: no such directory")
    for path in (args.json, args.plot):
        if path:
            _check_writable(path)
    return given, workloads, suite, missing, sweep


#: Integer options for which 0 is a size that makes sense (input ids per boundary, messages
#: per session, events per mob before a restart, backoff seconds); the others count workers,
#: operations, mobs... and must be at least 1.
_ZERO_OK = {"inputs", "messages", "events", "backoff"}


def _check_options(w: _registry.Workload, opts: dict[str, Any]) -> None:
    """Each option's value against the type of its default (a size is a positive integer,
    a switch true or false): a bad value fails here, not with a traceback mid-run."""
    defaults = w.defaults
    for key, value in opts.items():
        default = defaults.get(key)
        where = f"{w.name}: {key}={value!r}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true or false")
        elif isinstance(default, (int, float)):
            kinds = (int,) if isinstance(default, int) else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ValueError(f"{where}: expected {'an integer' if kinds == (int,) else 'a number'}")
            low = 0 if key in _ZERO_OK else 1
            if value < low:
                raise ValueError(f"{where}: must be at least {low}")
        elif key == "durability" and value not in ("full", "normal"):
            raise ValueError(f"{where}: expected full or normal")


def _check_writable(path: str) -> None:
    """Fail now, not after the whole run, if an output file cannot be written (a file
    created by the check is removed again)."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory")
    existed = os.path.exists(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    os.close(fd)
    if not existed:
        os.unlink(path)


def _sweep(w: _registry.Workload, opts: dict[str, Any], results: list[Result], sweep: list[int],
           args: argparse.Namespace, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """Run ``w`` at each worker count of ``sweep`` (reusing ``results``, the run at the main
    count); return the JSON points and, per system, its (workers, ops/s, p99 ms) points."""
    key = w.workers_option()
    assert key is not None
    series: dict[str, list[tuple[int, float, float]]] = {}
    points: list[dict[str, Any]] = []
    for n in sorted({*sweep, opts[key]}):
        if n == opts[key]:
            res = results
        else:
            progress.start(f"{w.name} @ {n} workers", w.phases * (args.repeat if w.repeats else 1))
            res = w.run({**opts, key: n}, directory=args.dir, progress=progress)
            progress.finish()
        rows = [{k: v for k, v in r.to_json().items() if k != "histogram"} for r in res]
        points.append({"workers": n, "results": rows})
        for name, p in _points(res, n).items():
            series.setdefault(name, []).append(p)
    return points, series


def run(args: argparse.Namespace, out=print) -> int:
    """The ``mobstore bench`` command (``out`` prints the report; progress goes to stderr)."""
    # --wal-batching applies to every store the run opens, --repeat to every comparison of
    # systems; both settings are restored after.
    if args.repeat < 1:
        print(f"mobstore bench: --repeat must be 1 or more, got {args.repeat}", file=sys.stderr)
        return 2
    previous = _wal_batching.set_enabled(args.wal_batching == "on")
    repeat = _stats.set_repeat(args.repeat)
    try:
        return _run(args, out)
    finally:
        _wal_batching.set_enabled(previous)
        _stats.set_repeat(repeat)


def _run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    try:
        given, workloads, suite, missing, sweep = _check(args)
    except (LookupError, ValueError) as exc:
        print(f"mobstore bench: {exc}", file=sys.stderr)
        return 2
    if missing:
        print(f"mobstore bench: skipping {', '.join(missing)} (module not installed)", file=sys.stderr)

    plans = [(w, w.options(given, suite=suite)) for w in workloads]
    swept = {w.name for w, o in plans if sweep and w.sweep and w.workers_option()}
    extra = sum(len({*sweep, o[w.workers_option()]}) - 1 for w, o in plans if w.name in swept)
    gc = "on" if given["group_commit"] is not False else "off"
    if args.wal_batching == "off":
        wb = "off"
    else:
        wb = "on" if _wal_batching.vfs_for("full") else f"unavailable ({_wal_batching.status()})"
    out(f"mobstore bench: {', '.join(w.name for w in workloads)}{' (default suite sizes)' if suite else ''}; "
        f"group commit {gc}; WAL batching {wb}; "
        f"{f'median of {args.repeat} runs per system; ' if args.repeat > 1 else ''}"
        f"file stores in {args.dir or 'the system temp dir'}")

    started, t_all = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    report: dict[str, Any] = {
        "format": "mobstore-bench/1", "started": started.isoformat(timespec="seconds"),
        "command": ["mobstore", "bench", *sys.argv[2:]] if sys.argv[1:2] == ["bench"] else None,
        "settings": {"workloads": [w.name for w in workloads], "suite": suite, "skipped": missing,
                     "given": {k: v for k, v in given.items() if v is not None}, "directory": args.dir,
                     "sweep": sweep or None, "wal_batching": args.wal_batching, "repeat": args.repeat},
        "machine": machine(), "workloads": {},
    }
    figure: list[tuple[str, dict[str, list[tuple[int, float, float]]]]] = []
    with Progress(len(plans) + extra, enabled=not args.quiet, refresh=0.5) as progress:
        for w, opts in plans:
            progress.start(w.name, w.phases * (args.repeat if w.repeats else 1))
            t0 = time.perf_counter()
            results = w.run(opts, directory=args.dir, progress=progress)
            took = time.perf_counter() - t0
            opts = _used(opts, results)
            progress.finish(f"done in {took:.1f} s")
            entry: dict[str, Any] = {"title": w.title, "options": opts, "seconds": round(took, 3),
                                     "results": [r.to_json() for r in results]}
            if w.systems and len(results) > 1:
                entry["ratios"] = ratios(results)
            report["workloads"][w.name] = entry
            with progress.suspended():
                settings = " ".join(f"{k}={v}" for k, v in opts.items())
                out(f"\n== {w.name}: {w.title} ({settings}; {took:.1f} s)")
                out(w.render(results))
            if w.name in swept:
                entry["sweep"], series = _sweep(w, opts, results, sweep, args, progress)
                figure.append((f"{w.name}: {w.title}", series))
                with progress.suspended():
                    out(_sweep_table(series))

    report["seconds"] = round(time.perf_counter() - t_all, 3)
    with open(args.json, "w") as f:
        f.write(_dumps(report) + "\n")
    out(f"\nresults written to {args.json} ({report['seconds']:.1f} s in all)")
    if args.plot:
        from ._plot import write_plot

        durability = next((o["durability"] for _, o in plans if o.get("durability")), "full")
        write_plot(args.plot, figure, f"mobstore bench, durability={durability}")
        out(f"plot written to {args.plot}")
    return 0
