"""kill -9 tests of *your* application: your workload in a child, your checks in the parent.

Write the workload as an importable async function that acknowledges what it committed::

    # myapp/chaos.py
    async def orders(store, ack, seed):
        log, n = store.mob("orders").events, 0
        while True:
            ev = await log.append(NewMobEvent("order_placed", {"n": n}))
            ack({"cursor": ev.cursor, "n": n})      # one JSON object per acknowledged commit
            n += 1

and check the reopened store against the acks::

    async def test_orders_survive_kill9(tmp_path):
        async def check(store, acks):
            events = {e.cursor: e.payload for e in await store.mob("orders").events.replay_all()}
            for a in acks:
                assert events[a["cursor"]] == {"n": a["n"]}

        verdict = await kill9_app(tmp_path / "app.db", "myapp.chaos:orders", check, seed=1)
        assert verdict.ok, verdict.problems

The child runs ``python -m mobstore.actors.testing._workload`` with your function, so it must
be importable there (on ``sys.path``/``PYTHONPATH``: pytest's ``rootdir`` usually is).
"""

from __future__ import annotations

import importlib
import os
import random
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from .._store import Store, open_store
from ._harness import run_child
from ._sweep import integrity

Check = Callable[[Store, list[dict[str, Any]]], Awaitable[None]]


@attrs.frozen
class AppVerdict:
    """The outcome of :func:`kill9_app`: what the child did and what the checks found."""

    acks: tuple[dict[str, Any], ...]
    killed_after: int  #: acks read when SIGKILL was sent (-1: the child ended by itself)
    returncode: int
    problems: tuple[str, ...]  #: failed checks, integrity complaints, a failed child
    stderr: str

    @property
    def ok(self) -> bool:
        return not self.problems


async def kill9_app(
    path: str | os.PathLike[str],
    workload: str,
    check: Check,
    *,
    seed: int = 0,
    durability: str = "full",
    kill_after: int | None = None,
    max_kill_after: int = 100,
    kill_delay: float | None = None,
    timeout: float = 60.0,
    **open_options: Any,
) -> AppVerdict:
    """Run ``workload`` (``"module:function"``, called as ``await fn(store, ack, seed)`` in a
    child that opened ``path``), SIGKILL it after ``kill_after`` acks (default: seeded, 1 to
    ``max_kill_after``) plus a seeded delay, reopen ``path`` here and ``await check(store,
    acks)``. An ``AssertionError`` from ``check``, a failed ``integrity_check`` or a child
    that died by itself are the verdict's problems. Call it again on the same path to crash
    the same file again (pass the acks of earlier rounds along in your own check)."""
    rng = random.Random(f"{seed}:app")
    if kill_after is None:
        kill_after = rng.randint(1, max_kill_after)
    delay = rng.random() * 0.004 if kill_delay is None else kill_delay
    cfg = {"path": os.fspath(path), "seed": seed, "durability": durability, "app": workload, "open": open_options}
    child = await trio.to_thread.run_sync(partial(run_child, cfg, kill_after=kill_after, kill_delay=delay, timeout=timeout))
    problems = []
    if child.timed_out:
        problems.append("the child hung (timeout)")
    elif child.returncode not in (0, -signal.SIGKILL):
        problems.append(f"the child exited with {child.returncode}: {child.stderr.strip()[-500:]}")
    acks = list(child.acks)
    async with open_store(path, durability=durability, **open_options) as store:
        try:
            await check(store, acks)
        except AssertionError as exc:
            problems.append(f"check failed: {exc}")
        if (status := await integrity(store)) != "ok":
            problems.append(f"integrity_check: {status}")
    return AppVerdict(tuple(acks), child.killed_after, child.returncode, tuple(problems), child.stderr)


async def run_app(cfg: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """The child side: open the store and run the user's workload function."""
    module, _, name = cfg["app"].partition(":")
    fn = getattr(importlib.import_module(module), name)
    opts = {"durability": cfg.get("durability", "full"), **cfg.get("open", {})}
    async with open_store(cfg["path"], **opts) as store:
        await fn(store, emit, cfg.get("seed", 0))
