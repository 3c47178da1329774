"""Subscriber benchmarks: append-to-delivery latency, and consumer catch-up throughput.

1. ``latency``: ``appenders`` trio tasks append ``ops`` events each to one mob of a file store
   (durability as given) while ``subscribers`` tasks follow it with ``mob.events.subscribe``.
   Each event carries the ``perf_counter`` taken just before its ``append`` call; a subscriber
   records ``now - that`` on receipt. Reported: p50/p99/max over every (event, subscriber)
   pair, and the append throughput.
2. ``catch-up``: a backlog of ``backlog`` events is written with ``append_batch`` (1,000 per
   call), then a durable consumer with a no-op handler (at-least-once: cursor persisted every
   256 events and on catching up) reads it from the beginning. Reported: events/s until it has
   handled the last one; also a bare ``subscribe`` reading the same backlog.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import trio

from mobstore.actors import NewMobEvent, open_store

from ._stats import Result

DEFAULTS = {"appenders": 64, "ops": 100, "subscribers": 8, "backlog": 1_000_000, "durability": "full"}


async def _latency(path: str, appenders: int, ops: int, subscribers: int, durability: str,
                   group_commit: bool = True) -> Result:
    total = appenders * ops
    lat: list[float] = []
    clock = time.perf_counter
    async with open_store(path, durability=durability, group_commit=group_commit) as store:
        log = store.mob("bench").events

        async def appender(i: int) -> None:
            for j in range(ops):
                await log.append(NewMobEvent("tick", {"t": clock(), "a": i, "n": j}))

        async def subscriber() -> None:
            got = 0
            async for ev in log.subscribe():
                lat.append(clock() - ev.payload["t"])
                got += 1
                if got == total:
                    return

        t0 = clock()
        async with trio.open_nursery() as n:
            for _ in range(subscribers):
                n.start_soon(subscriber)
            for i in range(appenders):
                n.start_soon(appender, i)
        seconds = clock() - t0
    # (ops of this row = deliveries: events x subscribers)
    return Result.of(
        "append -> subscriber latency", lat, seconds, appenders=appenders, ops=ops,
        subscribers=subscribers, durability=durability, group_commit=group_commit,
    )


async def _catch_up(path: str, backlog: int, durability: str) -> list[Result]:
    clock = time.perf_counter
    async with open_store(path, durability=durability) as store:
        mob = store.mob("backlog")
        batch = [NewMobEvent("tick", {"n": i}) for i in range(1000)]
        for start in range(0, backlog, len(batch)):
            await mob.events.append_batch(batch[: backlog - start])
        head = await mob.events.last_cursor()

        t0 = clock()
        got = 0
        async for ev in mob.events.subscribe():
            got += 1
            if ev.cursor == head:
                break
        sub = Result("subscribe catch-up", got, clock() - t0, 0.0, 0.0, 0.0, {"backlog": head})

        t0 = clock()
        consumer = mob.consume("bench", lambda ev: None)
        await consumer.wait_cursor(head)
        con = Result("durable consumer catch-up", head, clock() - t0, 0.0, 0.0, 0.0, {"backlog": head})
        await consumer.stop()
    return [sub, con]


def run(
    *,
    appenders: int = 64,
    ops: int = 100,
    subscribers: int = 8,
    backlog: int = 1_000_000,
    durability: str = "full",
    directory: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    group_commit: bool = True,
) -> list[Result]:
    """Run the latency workload (``group_commit`` as given), then the catch-up ones."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="mobstore-bench-") as d:
        progress(f"latency: {appenders} appenders x {ops} events, {subscribers} subscribers ...")
        results = [trio.run(_latency, os.path.join(d, "lat.db"), appenders, ops, subscribers, durability, group_commit)]
        progress(f"catch-up from a backlog of {backlog:,} events ...")
        results += trio.run(_catch_up, os.path.join(d, "backlog.db"), backlog, durability)
    return results


def render(results: list[Result]) -> str:
    lat, *rest = results
    lines = [
        f"append -> subscriber latency ({lat.settings['appenders']} appenders, {lat.settings['subscribers']} subscribers, "
        f"durability={lat.settings['durability']}): p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, "
        f"max {lat.max_ms:.2f} ms over {lat.ops:,} deliveries; {lat.ops / lat.settings['subscribers'] / lat.seconds:,.0f} appends/s",
    ]
    for r in rest:
        lines.append(f"{r.name}: {r.ops:,} events in {r.seconds:.2f} s = {r.ops_per_s:,.0f} events/s")
    return "\n".join(lines)
