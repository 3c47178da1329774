"""``mobstore chaos``: the kill -9 loop with a verdict table.

Every iteration starts a child that continues the seeded workload on the same store file
(events and batches, the run CAS family with its frame and loop wrappers, atomic
``mob.commit`` batches, specs, realm profiles, the realm config, runtime session boundaries,
and an exactly-once durable consumer), kills it with SIGKILL at a seeded moment, reopens the
file and checks it against every commit acknowledged in all iterations so far
(:class:`~._harness.Kill9Harness`). The report counts lost and torn commits: both must be 0.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable

import attrs

from ._harness import Kill9Harness, Verdict


@attrs.frozen
class ChaosReport:
    """The outcome of :func:`run_chaos`."""

    iterations: int
    seed: int
    durability: str
    path: str  #: the store file (kept when something failed)
    verdicts: tuple[Verdict, ...]
    seconds: float
    kept: bool = True  #: False when a temporary store was removed after a pass

    @property
    def ok(self) -> bool:
        """True if every iteration's verdict is ok (nothing lost, torn or out of order)."""
        return all(v.ok for v in self.verdicts)

    @property
    def acked(self) -> int:
        """Commits acknowledged by the children, over all iterations."""
        return sum(v.acked for v in self.verdicts)

    @property
    def lost(self) -> int:
        """Acknowledged commits missing after a reopen, over all iterations (0 when ok)."""
        return sum(len(v.lost) for v in self.verdicts)

    @property
    def torn(self) -> int:
        """Multi-part commits seen half-applied, over all iterations (0 when ok)."""
        return sum(len(v.torn) for v in self.verdicts)

    def table(self) -> str:
        """The verdict table (plain text)."""
        return render_table(self)


def _row(check: str, failures: int, n: int, note: str = "") -> str:
    verdict = "PASS" if failures == 0 else "FAIL"
    return f"  {check:<44} {n - failures:>5}/{n:<5} {verdict:<5} {note}".rstrip()


def render_table(report: ChaosReport) -> str:
    vs = report.verdicts
    n = len(vs)
    outcomes = Counter(v.outcome.split(":")[0] for v in vs)
    lines = [
        f"mobstore chaos: {n} iterations, seed {report.seed}, durability {report.durability}, "
        f"{report.seconds:.1f} s",
        f"  store: {report.path}" + ("" if report.kept else " (temporary, removed)"),
        "  child outcomes: " + ", ".join(f"{k} {c}" for k, c in sorted(outcomes.items())),
        f"  acknowledged commits: {report.acked}",
        "",
        f"  {'check':<44} {'passed':>11} verdict",
        _row("every acknowledged commit present", sum(1 for v in vs if v.lost), n, f"lost: {report.lost}"),
        _row("no multi-part commit half-visible", sum(1 for v in vs if v.torn), n, f"torn: {report.torn}"),
        _row("monotonic, no duplicates, nothing backwards", sum(1 for v in vs if v.order), n),
        _row("PRAGMA integrity_check ok", sum(1 for v in vs if v.integrity != "ok"), n),
        _row("child ran until killed (no crash, no hang)", sum(1 for v in vs if v.outcome.startswith("failed")), n),
    ]
    bad = [v for v in vs if not v.ok]
    if bad:
        lines += ["", "  failed iterations:"]
        for v in bad[:20]:
            lines.append(f"    #{v.iteration}: {v.summary()}")
    lines += ["", f"  verdict: {'PASS' if report.ok else 'FAIL'}: {report.lost} lost, {report.torn} torn"]
    return "\n".join(lines)


def run_chaos(
    iterations: int = 200,
    seed: int = 0,
    durability: str = "full",
    progress: Callable[[str], None] | None = print,
    *,
    path: str | None = None,
    max_kill_after: int = 120,
    timeout: float = 60.0,
) -> ChaosReport:
    """Run the kill -9 loop ``iterations`` times on one store file and return the report.

    Args:
        iterations: child processes to start and kill.
        seed: seeds the workload and the kill moments (a run is replayable by its seed).
        durability: ``"full"`` or ``"normal"``; kill -9 must lose nothing with either.
        progress: called with one line per iteration (``None``: silent).
        path: the store file; default: a new temporary directory, removed afterwards
            unless something failed.
        max_kill_after: each kill lands after 1..max_kill_after acknowledged commits of the
            iteration, plus a seeded delay of up to 4 ms.
        timeout: seconds before a hung child counts as a failure.

    Returns:
        A :class:`ChaosReport`; ``report.table()`` renders the verdict table, ``report.ok``
        says whether every check passed.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations!r}")
    tmp = None
    if path is None:
        tmp = tempfile.mkdtemp(prefix="mobstore-chaos-")
        path = os.path.join(tmp, "chaos.db")
    harness = Kill9Harness(path, seed=seed, durability=durability, max_kill_after=max_kill_after, timeout=timeout)
    started = time.monotonic()
    verdicts = []
    width = len(str(iterations))
    for i in range(iterations):
        v = harness.run_once()
        verdicts.append(v)
        if progress is not None:
            progress(f"[{i + 1:>{width}}/{iterations}] {v.summary()} ({v.seconds:.2f} s)")
    report = ChaosReport(iterations, seed, durability, path, tuple(verdicts), time.monotonic() - started)
    if tmp is not None and report.ok:
        shutil.rmtree(tmp, ignore_errors=True)
        report = attrs.evolve(report, kept=False)
    return report
