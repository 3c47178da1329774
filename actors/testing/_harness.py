"""The kill -9 and power-loss restart harnesses: a child process, a pipe of acks, a verdict.

Theory of operation
-------------------
A *child* process (``python -m mobstore.actors.testing._workload``) opens the store and runs
the seeded workload; after each call returns it writes one line of JSON describing that
acknowledged commit to its stdout, a pipe to the parent. The parent reads the lines as they
come. For kill -9 it sends ``SIGKILL`` at a seeded moment (after a seeded number of acks plus
a seeded sub-millisecond-to-milliseconds delay, so the kill lands anywhere: between commits,
inside a group commit, inside an fsync), then drains the pipe: whatever line the child wrote
before it died is an acknowledged commit. For power loss the child itself ends at the chosen
sync or write (``PowerLossVFS``), with unsynced writes applied as written, dropped or garbage.

The parent then reopens the file with the real VFS (SQLite's recovery runs) and checks it
(``_verify``): every acknowledged commit is there (with ``durability="normal"`` and power
loss: the survivors are a prefix of the acknowledged ones), nothing is half-visible or out
of order, nothing went backwards since the previous check of the same file, and
``PRAGMA integrity_check`` is ok. The result is a :class:`Verdict`.

Why a separate interpreter and not ``os.fork``: the parent is often a pytest process with
threads (trio's thread cache, a committer of another test); a forked child inherits their
locks in whatever state they were. A fresh interpreter costs ~0.25 s and is exactly what a
user's deployment looks like after a crash.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from mobstore.storage import Database

from ._powerloss import POWER_LOSS_EXIT
from ._verify import StoreState, ack_present, check_progress, check_state, describe, load_state

WORKLOAD_MODULE = "mobstore.actors.testing._workload"


@attrs.frozen
class Verdict:
    """The outcome of one crash-and-reopen iteration.

    Attributes:
        iteration, seed, durability: what ran.
        outcome: ``"killed"`` (SIGKILL landed), ``"power loss"``, ``"finished"`` (the child
            completed before the crash point) or ``"failed: ..."`` (the child died by itself or
            hung: a bug in the store or the workload; see ``detail``).
        acked: commits the child acknowledged in this iteration.
        killed_after: acks the parent had read when it sent SIGKILL (-1: not killed).
        lost: acknowledged commits missing after the reopen (with ``normal`` and power loss:
            survivors that are not a prefix of the acknowledged ones).
        torn: multi-part commits seen half-applied (or parts out of step).
        order: cursors, revisions, sequences out of order, duplicated, or gone backwards.
        integrity: ``"ok"`` or what ``PRAGMA integrity_check`` / opening the file said.
        survivors: acknowledged commits present after the reopen.
        seconds: wall time of the iteration.
        detail: the child's stderr tail when it failed.
    """

    iteration: int
    seed: int
    durability: str
    outcome: str
    acked: int
    killed_after: int
    lost: tuple[str, ...]
    torn: tuple[str, ...]
    order: tuple[str, ...]
    integrity: str
    survivors: int
    seconds: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when nothing was lost, torn or out of order, the file is intact, and the child
        did not fail by itself."""
        return (
            not self.lost and not self.torn and not self.order and self.integrity == "ok"
            and not self.outcome.startswith("failed")
        )

    def summary(self) -> str:
        """One line: how the child ended, acked and surviving commits, and ok or the
        first problems found."""
        problems = [*self.lost[:2], *self.torn[:2], *self.order[:2]]
        if self.integrity != "ok":
            problems.append(f"integrity: {self.integrity}")
        if self.outcome.startswith("failed"):
            problems.append(self.detail.strip().splitlines()[-1] if self.detail.strip() else self.outcome)
        status = "ok" if self.ok else "FAIL " + "; ".join(problems)
        return f"{self.outcome}, {self.acked} acked, {self.survivors} survived: {status}"


@attrs.frozen
class ChildRun:
    """What a child did: its acks (parsed lines), how it ended, its final ``done`` line."""

    acks: tuple[dict[str, Any], ...]
    returncode: int
    killed_after: int
    done: dict[str, Any] | None
    stderr: str
    timed_out: bool


def run_child(
    cfg: dict[str, Any],
    *,
    kill_after: int | None = None,
    kill_delay: float = 0.0,
    timeout: float = 60.0,
    on_ack: Callable[[dict[str, Any]], None] | None = None,
) -> ChildRun:
    """Run the workload child with ``cfg``; SIGKILL it ``kill_delay`` seconds after its
    ``kill_after``-th ack (never, if ``None``). Blocks until it ended and its pipe is drained."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKLOAD_MODULE, json.dumps(cfg)],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},  # the parent's imports
        )
        timed_out = threading.Event()

        def watchdog() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, watchdog)
        timer.start()
        acks: list[dict[str, Any]] = []
        done = None
        killed_after = -1
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if not raw.endswith(b"\n"):
                    break  # a torn last line cannot happen (one write < PIPE_BUF), but be safe
                record = json.loads(raw)
                if record.get("k") == "done":
                    done = record
                    continue
                acks.append(record)
                if on_ack is not None:
                    on_ack(record)
                if kill_after is not None and killed_after < 0 and len(acks) >= kill_after:
                    if kill_delay:
                        time.sleep(kill_delay)
                    killed_after = len(acks)
                    proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-4000:]
    return ChildRun(tuple(acks), rc, killed_after, done, stderr, timed_out.is_set())


def _outcome(child: ChildRun, expected_rc: int) -> str:
    if child.timed_out:
        return "failed: the child hung (timeout)"
    if child.returncode == expected_rc and (expected_rc != 0 or child.done is not None):
        return {-signal.SIGKILL: "killed", POWER_LOSS_EXIT: "power loss"}.get(expected_rc, "finished")
    if child.returncode == 0 and child.done is not None:
        return "finished"
    return f"failed: the child exited with {child.returncode}"


def _verdict(
    *, iteration: int, seed: int, durability: str, outcome: str, child: ChildRun, all_acks: list[dict[str, Any]],
    state: StoreState | None, previous: StoreState | None, prefix: bool, started: float, open_error: str = "",
) -> Verdict:
    if state is None:
        return Verdict(iteration, seed, durability, outcome, len(child.acks), child.killed_after, (), (), (),
                       open_error or "could not open", 0, time.monotonic() - started, child.stderr)
    present = [ack_present(state, a) for a in all_acks]
    if prefix:  # survivors must be a prefix of the acknowledged commits
        n = present.index(False) if False in present else len(present)
        lost = [f"{describe(a)} survived although {describe(all_acks[n])} before it did not"
                for a, p in zip(all_acks[n:], present[n:]) if p]
    else:
        lost = [describe(a) for a, p in zip(all_acks, present) if not p]
    torn, order = check_state(state)
    order += check_progress(previous, state)
    detail = child.stderr if outcome.startswith("failed") else ""
    return Verdict(iteration, seed, durability, outcome, len(child.acks), child.killed_after, tuple(lost), tuple(torn),
                   tuple(order), state.integrity, sum(present), time.monotonic() - started, detail)


def _load(path: str) -> tuple[StoreState | None, str]:
    try:
        return load_state(path), ""
    except Exception as exc:  # noqa: BLE001 - the verdict reports it
        return None, f"reopen failed: {type(exc).__name__}: {exc}"


class Kill9Harness:
    """The kill -9 loop on one store file: each :meth:`run_once` starts a child that
    continues the workload where the file stands, kills it at a seeded moment, reopens and
    checks everything acknowledged in *all* iterations so far.

    Args:
        path: the store file (created on the first iteration).
        seed: seeds the workload and the kill moments.
        durability: ``"full"`` or ``"normal"`` (kill -9 must lose nothing with either).
        max_kill_after: the kill lands after 1..max_kill_after acks of an iteration.
        max_delay: plus up to this many seconds.
        timeout: seconds before a hung child is killed and the iteration failed.
    """

    def __init__(self, path: str, *, seed: int = 0, durability: str = "full", max_kill_after: int = 120,
                 max_delay: float = 0.004, timeout: float = 60.0) -> None:
        self.path = os.fspath(path)
        self.seed = seed
        self.durability = durability
        self.max_kill_after = max_kill_after
        self.max_delay = max_delay
        self.timeout = timeout
        self.iteration = 0
        self.acks: list[dict[str, Any]] = []
        self.previous: StoreState | None = None

    def run_once(self) -> Verdict:
        """One iteration: run, kill, reopen, check. Returns its verdict."""
        started = time.monotonic()
        it, self.iteration = self.iteration, self.iteration + 1
        rng = random.Random(f"{self.seed}:{it}:kill")
        kill_after = rng.randint(1, self.max_kill_after)
        delay = rng.random() * self.max_delay
        cfg = {"path": self.path, "seed": self.seed, "iteration": it, "durability": self.durability,
               "mode": "chaos", "max_ops": 20 * self.max_kill_after + 1000}
        child = run_child(cfg, kill_after=kill_after, kill_delay=delay, timeout=self.timeout)
        self.acks += child.acks
        return self._check(it, _outcome(child, -signal.SIGKILL), child, started)

    def check(self) -> Verdict:
        """Check the file again against every acknowledged commit, without running a child
        (after you changed the file by hand, say)."""
        child = ChildRun((), 0, -1, None, "", False)
        return self._check(self.iteration - 1, "checked", child, time.monotonic())

    def _check(self, it: int, outcome: str, child: ChildRun, started: float) -> Verdict:
        state, err = _load(self.path)
        verdict = _verdict(iteration=it, seed=self.seed, durability=self.durability, outcome=outcome, child=child,
                           all_acks=self.acks, state=state, previous=self.previous, prefix=False, started=started,
                           open_error=err)
        if state is not None:
            self.previous = state
        return verdict


def kill9_once(path: str, *, seed: int = 0, iteration: int = 0, durability: str = "full", **options: Any) -> Verdict:
    """One kill -9 iteration on ``path`` (see :class:`Kill9Harness`); checks the acks of this
    iteration only. Returns the :class:`Verdict`."""
    h = Kill9Harness(path, seed=seed, durability=durability, **options)
    h.iteration = iteration
    return h.run_once()


def count_io(
    path: str, *, durability: str = "full", ops: int = 18, seed: int = 0, wal_batching: bool = False,
    checkpoint_frames: int | None = None,
) -> dict[str, int]:
    """Run the scripted workload on a fresh ``path`` through the power-loss VFS without a
    crash; return ``{"syncs": n, "writes": m}`` it saw (from registration to close).
    ``wal_batching`` and ``checkpoint_frames`` as in :func:`power_loss_once`."""
    if wal_batching and durability != "full":
        raise ValueError("wal_batching needs durability='full' (the shim is only safe when every commit is synced)")
    cfg = {"path": os.fspath(path), "seed": seed, "durability": durability, "mode": "script", "ops": ops,
           "power_loss": {"crash_at": None, "wal_batching": wal_batching}, "checkpoint_frames": checkpoint_frames}
    child = run_child(cfg)
    if child.done is None:
        raise RuntimeError(f"the scripted workload failed (rc={child.returncode}): {child.stderr[-2000:]}")
    return {"syncs": child.done["syncs"], "writes": child.done["writes"], "acks": len(child.acks)}


def power_loss_once(
    path: str, *, crash_at: tuple[str, int] | None, durability: str = "full", ops: int = 18, seed: int = 0,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0), at_end: bool = False, prepare: bool = False,
    timeout: float = 60.0, wal_batching: bool = False, checkpoint_frames: int | None = None,
) -> Verdict:
    """Run the scripted workload on a fresh ``path`` and cut the power at ``crash_at``
    (``("sync", n)`` / ``("write", n)``; or after the last ack with ``at_end``); reopen with
    the real VFS and check. With ``durability="full"`` every acknowledged commit must be
    there; with ``"normal"`` the survivors must be a prefix of the acknowledged commits.

    ``prepare`` creates (and checkpoints) the empty store first, so the crash points cover
    the workload only: with ``normal`` a store whose schema was never checkpointed loses
    everything, which is a (trivial) prefix.

    ``wal_batching`` routes the store through the WAL batching shim (``storage/_walbatch.c``)
    stacked over the power-loss VFS: the WAL then reaches the "disk" as one write per
    commit, and the cut keeps, drops or garbles that write as a whole. ``checkpoint_frames``
    makes the store checkpoint its WAL that often (in frames; 1,000 by default), so that a
    short script cuts the power in and around checkpoints too."""
    if wal_batching and durability != "full":
        raise ValueError("wal_batching needs durability='full' (the shim is only safe when every commit is synced)")
    started = time.monotonic()
    if prepare:
        Database.open(path).close()
    cfg = {"path": os.fspath(path), "seed": seed, "durability": durability, "mode": "script", "ops": ops,
           "power_loss": {"crash_at": crash_at, "seed": seed, "weights": weights, "wal_batching": wal_batching},
           "power_loss_at_end": at_end, "checkpoint_frames": checkpoint_frames}
    child = run_child(cfg, timeout=timeout)
    if os.path.exists(path):
        state, err = _load(path)
    else:  # the power went out before the file was created: nothing to check, if nothing was acked
        state, err = None, "" if child.returncode == POWER_LOSS_EXIT and not child.acks else "no store file"
    outcome = _outcome(child, POWER_LOSS_EXIT)
    if state is None and not err:
        return Verdict(0, seed, durability, outcome, 0, -1, (), (), (), "ok", 0, time.monotonic() - started)
    return _verdict(iteration=0, seed=seed, durability=durability, outcome=outcome, child=child,
                    all_acks=list(child.acks), state=state, previous=None, prefix=durability == "normal",
                    started=started, open_error=err)
