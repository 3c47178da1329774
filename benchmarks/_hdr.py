"""A small HDR-style latency histogram (log-linear buckets, 3 significant digits).

Values are recorded in seconds and kept as integer nanoseconds. A value ``v`` (ns) falls in
bucket ``(m, s)`` with ``m = max(0, bit_length(v) - 11)`` (the magnitude) and ``s = v >> m``
(the sub-bucket, 11 bits): below 2,048 ns every nanosecond has its own bucket; above it each
power of two is split into 1,024 equal buckets, so a bucket is at most 1/1,024 of its lower
bound wide. Reporting a bucket by its midpoint is therefore within 1/2,048 (~0.05%) of every
value in it: three significant digits from 1 µs up, across the whole range (values above
1 hour are counted as 1 hour; the exact ``max``/``min``/``mean`` are kept on the side).

Counts are sparse (a dict of bucket index -> count), so an empty histogram is tiny and
``merge`` and ``to_json`` cost what the occupied buckets cost.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

_SUB_BITS = 11  # 1,024 sub-buckets per power of two from 2,048 ns: 3 significant digits
_HALF = 1 << (_SUB_BITS - 1)
_MAX_NS = 3_600 * 10**9  # 1 hour
_NS = 1e9


def _index(ns: int) -> int:
    """The bucket index of a value in nanoseconds (monotonic in ``ns``)."""
    m = ns.bit_length() - _SUB_BITS
    if m <= 0:
        return ns
    return (m << (_SUB_BITS - 1)) + (ns >> m)


def _bounds(index: int) -> tuple[int, int]:
    """The lowest and highest nanosecond value of a bucket index."""
    if index < 2 * _HALF:
        return index, index
    m = (index >> (_SUB_BITS - 1)) - 1
    sub = index - (m << (_SUB_BITS - 1))
    return sub << m, ((sub + 1) << m) - 1


class Histogram:
    """Log-linear latency histogram: ``record(seconds)``, ``percentile(q)``, ``merge``."""

    __slots__ = ("_counts", "_n", "_min", "_max", "_sum")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._n = 0
        self._min = 0
        self._max = 0
        self._sum = 0

    @classmethod
    def of(cls, latencies_s: Iterable[float]) -> Histogram:
        h = cls()
        h.record_many(latencies_s)
        return h

    def record(self, seconds: float, count: int = 1) -> None:
        """Count one value (in seconds), ``count`` times."""
        self.record_many([seconds] * count)

    def record_many(self, latencies_s: Iterable[float]) -> None:
        """Count many values (seconds) at once: the cheap way to fill a histogram."""
        ns = [max(0, round(s * _NS)) for s in latencies_s]
        if not ns:
            return
        # min, max and the sum (for the mean) are exact; only the buckets clamp at 1 hour.
        lo, hi = min(ns), max(ns)
        self._min = lo if not self._n else min(self._min, lo)
        self._max = max(self._max, hi)
        self._n += len(ns)
        self._sum += sum(ns)
        counts = self._counts
        if hi > _MAX_NS:
            ns = [min(_MAX_NS, v) for v in ns]
        for i, c in Counter(map(_index, ns)).items():
            counts[i] = counts.get(i, 0) + c

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts to this histogram (in place); returns ``self``."""
        if not other._n:
            return self
        self._min = other._min if not self._n else min(self._min, other._min)
        self._max = max(self._max, other._max)
        self._n += other._n
        self._sum += other._sum
        for i, c in other._counts.items():
            self._counts[i] = self._counts.get(i, 0) + c
        return self

    @property
    def count(self) -> int:
        return self._n

    @property
    def min(self) -> float:
        """The smallest value recorded (seconds, exact to the ns); 0.0 when empty."""
        return self._min / _NS

    @property
    def max(self) -> float:
        """The largest value recorded (seconds, exact to the ns); 0.0 when empty."""
        return self._max / _NS

    @property
    def mean(self) -> float:
        return self._sum / self._n / _NS if self._n else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) in seconds, by nearest rank: the value of rank
        ``ceil(q/100 * count)`` in sorted order (at least rank 1), to 3 significant digits.
        ``percentile(100)`` is the exact max; an empty histogram gives 0.0."""
        if not self._n:
            return 0.0
        if q >= 100:
            return self.max
        rank = max(1, math.ceil(q * self._n / 100 - 1e-9))  # (the 1e-9: 99.9 * 1000 / 100 > 999)
        seen = 0
        for i in sorted(self._counts):
            seen += self._counts[i]
            if seen >= rank:
                lo, hi = _bounds(i)
                mid = (lo + hi) / 2
                return min(max(mid, self._min), self._max) / _NS
        return self.max  # pragma: no cover - rank <= count always stops the loop

    def summary(self) -> dict[str, float]:
        """p50/p90/p99/p99.9/p99.99/max, min and mean, in milliseconds."""
        out = {f"p{q:g}": self.percentile(q) * 1e3 for q in (50, 90, 99, 99.9, 99.99)}
        return {**out, "max": self.max * 1e3, "min": self.min * 1e3, "mean": self.mean * 1e3}

    def to_json(self) -> dict:
        """Compact form: the totals (ns) and the occupied buckets as one flat list of pairs
        ``[gap, count, gap, count, ...]``, where each bucket's index is the previous one's plus
        ``gap`` (the first: 0 plus ``gap``); bucket ``i`` covers the ns values ``_bounds(i)``."""
        flat: list[int] = []
        prev = 0
        for i in sorted(self._counts):
            flat += (i - prev, self._counts[i])
            prev = i
        return {
            "unit": "ns", "sub_bucket_bits": _SUB_BITS, "count": self._n, "min": self._min, "max": self._max,
            "sum": self._sum, "buckets": flat,
        }

    @classmethod
    def from_json(cls, data: dict) -> Histogram:
        """The inverse of :meth:`to_json`."""
        if data.get("sub_bucket_bits", _SUB_BITS) != _SUB_BITS or data.get("unit", "ns") != "ns":
            raise ValueError("histogram layout differs from this version's")
        h = cls()
        flat = data["buckets"]
        index = 0
        for k in range(0, len(flat), 2):
            index += flat[k]
            h._counts[index] = flat[k + 1]
        h._n, h._min, h._max, h._sum = data["count"], data["min"], data["max"], data["sum"]
        return h

    def __repr__(self) -> str:
        return (f"Histogram(count={self._n}, p50={self.percentile(50) * 1e3:.3f}ms, "
                f"p99={self.percentile(99) * 1e3:.3f}ms, max={self.max * 1e3:.3f}ms)")
