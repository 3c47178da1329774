"""Latency statistics and the result table of a benchmark run."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence

import attrs


@attrs.frozen
class Result:
    """One workload's measurement: throughput and per-operation latency (milliseconds)."""

    name: str
    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    settings: dict = attrs.field(factory=dict)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @classmethod
    def of(cls, name: str, latencies_s: Sequence[float], seconds: float, **settings: object) -> Result:
        lat = sorted(latencies_s)
        if not lat:
            return cls(name, 0, seconds, 0.0, 0.0, 0.0, dict(settings))
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return cls(name, len(lat), seconds, statistics.median(lat) * 1e3, p99 * 1e3, lat[-1] * 1e3, dict(settings))

    def to_json(self) -> dict:
        return {**attrs.asdict(self), "ops_per_s": self.ops_per_s}


def table(results: Sequence[Result], baseline: str | None = None) -> str:
    """A plain-text table with throughput, p50/p99/max latency and ratios to each baseline."""
    by = {r.name: r for r in results}
    base_names = [n for n in by if n != results[0].name]
    head = f"{'workload':<34} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.name:<34} {r.ops_per_s:>10,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.max_ms:>8.2f}")
    first = results[0]
    for n in base_names:
        b = by[n]
        if b.ops_per_s:
            lines.append(f"ratio {first.name} / {n}: {first.ops_per_s / b.ops_per_s:.1f}x")
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
