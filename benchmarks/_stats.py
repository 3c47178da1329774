"""Latency statistics and the result table of a benchmark run.

A :class:`Result` is one system's measurement in a workload: throughput, and per-operation
latency percentiles computed from an HDR-style histogram (:mod:`._hdr`, 3 significant
digits, nearest-rank percentiles). By convention a workload returns its results with the
system under test (mobstore) first and the baselines after it; :func:`table` and
:func:`ratios` compare the first row with each of the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

import attrs

from ._hdr import Histogram


@attrs.frozen
class Result:
    """One system's measurement: throughput and per-operation latency (milliseconds).

    ``hist`` (when the result came from latencies) holds the full distribution; results made
    without one (e.g. pure throughput rows) report zero latencies."""

    name: str
    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    settings: dict = attrs.field(factory=dict)
    p999_ms: float = 0.0
    hist: Histogram | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @classmethod
    def of(cls, name: str, latencies_s: Sequence[float], seconds: float, **settings: object) -> Result:
        """A result from raw per-operation latencies (seconds); ``ops`` is their number."""
        return cls.from_histogram(name, Histogram.of(latencies_s), seconds, **settings)

    @classmethod
    def from_histogram(cls, name: str, hist: Histogram, seconds: float, **settings: object) -> Result:
        """A result from a filled histogram (e.g. merged from per-worker histograms)."""
        ms = lambda q: hist.percentile(q) * 1e3  # noqa: E731
        return cls(name, hist.count, seconds, ms(50), ms(99), hist.max * 1e3, dict(settings), ms(99.9), hist)

    def to_json(self) -> dict:
        out = {
            "name": self.name, "ops": self.ops, "seconds": self.seconds, "ops_per_s": self.ops_per_s,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "p999_ms": self.p999_ms, "max_ms": self.max_ms,
            "settings": self.settings,
        }
        if self.hist is not None:
            out["latency_ms"] = self.hist.summary()
            out["histogram"] = self.hist.to_json()
        return out


def ratios(results: Sequence[Result]) -> dict[str, dict]:
    """The first result against each other one, keyed by the other's name: throughput ratio
    (higher is better for the first), p99 latency ratio (lower is better; ``None`` where a
    side has no figure) and ``reference``, the first result's name.

    Results that carry ``settings["scenario"]`` are compared within their scenario only
    (the first result of each scenario against the others of it)."""
    groups: dict[object, list[Result]] = {}
    for r in results:
        groups.setdefault(r.settings.get("scenario"), []).append(r)
    out: dict[str, dict] = {}
    for first, *rest in groups.values():
        for b in rest:
            out[b.name] = {
                "reference": first.name,
                "throughput": first.ops_per_s / b.ops_per_s if b.ops_per_s and first.ops_per_s else None,
                "p99": first.p99_ms / b.p99_ms if b.p99_ms and first.p99_ms else None,
            }
    return out


def table(results: Sequence[Result], baseline: str | None = None) -> str:
    """A plain-text table with throughput, p50/p99/p99.9/max latency, then the ratios of the
    first row to each baseline (or only to ``baseline``, if given)."""
    head = f"{'system':<34} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<34} {r.ops_per_s:>10,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.p999_ms:>9.2f} {r.max_ms:>8.2f}"
        )
    for name, rr in ratios(results).items():
        if baseline is not None and name != baseline or rr["throughput"] is None:
            continue
        p99 = f", p99 latency {rr['p99']:.2f}x" if rr["p99"] is not None else ""
        lines.append(f"ratio {rr['reference']} / {name}: {rr['throughput']:.1f}x throughput{p99}")
    return "\n".join(lines)


def run_threads(worker: Callable[[int], None], workers: int) -> float:
    """Run ``worker(i)`` on ``workers`` threads at once; return the wall-clock seconds."""
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t0


# -- the naive baseline's connections ----------------------------------------------------


def naive_create(path: str, schema: str) -> sqlite3.Connection:
    """A new naive-baseline file: WAL, ``schema`` applied; returns the (setup) connection,
    for the caller to fill, commit and close."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(schema)
    return con


def naive_digest(messages: list) -> str:
    """The conversation digest a naive program computes (the formula mobstore's
    ``SessionDelta`` uses): SHA-256 of the messages' compact JSON."""
    return hashlib.sha256(json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def naive_connect(path: str, durability: str) -> sqlite3.Connection:
    """A naive worker's connection: autocommit (explicit ``BEGIN IMMEDIATE``), the
    durability's ``synchronous`` setting, a 30 s busy timeout, usable from its thread."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    return con


async def run_tasks(worker: Callable[[int], Awaitable[None]], workers: int) -> float:
    """Run ``worker(i)`` as ``workers`` trio tasks at once; return the wall-clock seconds."""
    import trio

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(workers):
            nursery.start_soon(worker, i)
    return time.perf_counter() - t0


_repeat = 1  # rounds per run_systems call (mobstore bench --repeat)


def set_repeat(n: int) -> int:
    """Run every system ``n`` times from now on (in alternating rounds) and keep each
    system's median run; returns the previous setting (``mobstore bench --repeat``)."""
    global _repeat
    if type(n) is not int or n < 1:
        raise ValueError(f"repeat must be a positive int, got {n!r}")
    previous, _repeat = _repeat, n
    return previous


def run_systems(
    directory: str,
    progress: Callable[[str], None],
    group_commit: bool,
    mobstore: Callable[[str, bool], Result],
    naive: Callable[[str], Result],
    what: str = "",
) -> list[Result]:
    """Measure one workload on the three systems, each on a fresh file in ``directory``:
    mobstore with ``group_commit`` as given (named ``mobstore (group commit off)`` when
    off), mobstore without group commit (the baseline row, always), then the naive program.
    ``mobstore(path, group_commit)`` and ``naive(path)`` run the workload.

    With :func:`set_repeat` ``n > 1`` the three run ``n`` times in rounds (mobstore, the
    baseline, naive; again), so that a machine's slow minutes fall on every system alike;
    each row is then that system's median run by throughput (its latencies are that run's),
    and its settings list every run's ops/s."""
    rounds: list[list[Result]] = []
    for i in range(_repeat):
        tag = f"-r{i}" if _repeat > 1 else ""
        rnd = f" (run {i + 1} of {_repeat})" if _repeat > 1 else ""
        results = []
        for k, group in enumerate((group_commit, False)):
            progress(f"mobstore{what} (group commit {'on' if group else 'off'}){rnd} ...")
            r = mobstore(os.path.join(directory, f"mobstore-{k}{tag}.db"), group)
            results.append(r if k or group else attrs.evolve(r, name="mobstore (group commit off)"))
        progress(f"naive sqlite3 threads{what}{rnd} ...")
        results.append(naive(os.path.join(directory, f"naive{tag}.db")))
        rounds.append(results)
    if _repeat == 1:
        return rounds[0]
    return [_median_run([rnd[j] for rnd in rounds]) for j in range(len(rounds[0]))]


def _median_run(runs: list[Result]) -> Result:
    ranked = sorted(runs, key=lambda r: r.ops_per_s)
    mid = ranked[(len(ranked) - 1) // 2]  # the lower middle for an even count
    every = [round(r.ops_per_s, 1) for r in runs]
    return attrs.evolve(mid, settings={**mid.settings, "repeat": len(runs), "runs_ops_per_s": every})
