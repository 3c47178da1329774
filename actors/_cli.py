"""The ``mobstore`` command line: ``demo``, ``bench``, ``inspect``, ``chaos``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    import trio

    from ._demo import run_demo

    report = trio.run(
        lambda: run_demo(
            args.path, mobs=args.mobs, agents_per_mob=args.agents, events_per_agent=args.events,
            durability=args.durability,
        )
    )
    return 0 if report.ok else 1


def _bench(args: argparse.Namespace) -> int:
    from mobstore.benchmarks import appends, boundaries, subscribers
    from mobstore.benchmarks._stats import table

    progress = lambda m: print("  running", m, flush=True)  # noqa: E731
    if args.workload == "appends":
        print(
            f"mobstore bench appends: {args.workers} workers x {args.ops} appends over {args.mobs} mobs, "
            f"durability={args.durability}, file stores in a temp dir"
        )
        results = appends.run(
            workers=args.workers, ops=args.ops, mobs=args.mobs, durability=args.durability,
            directory=args.dir, progress=progress,
        )
        print(table(results))
    elif args.workload == "boundaries":
        ops = args.ops if args.ops != 500 else 200
        print(
            f"mobstore bench boundaries: {args.workers} workers x {ops} session boundaries over {args.runtimes} runtimes, "
            f"durability={args.durability}, file stores in a temp dir"
        )
        results = boundaries.run(
            workers=args.workers, ops=ops, runtimes=args.runtimes, durability=args.durability,
            directory=args.dir, progress=progress,
        )
        print(table(results))
    else:
        print(f"mobstore bench subscribers: durability={args.durability}, file stores in a temp dir")
        results = subscribers.run(
            appenders=args.workers, ops=args.ops if args.ops != 500 else 100, subscribers=args.subscribers,
            backlog=args.backlog, durability=args.durability, directory=args.dir, progress=progress,
        )
        print(subscribers.render(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.to_json() for r in results], f, indent=2)
        print(f"results written to {args.json}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from mobstore.storage import MobStoreError
    from mobstore.storage._inspect import inspect_store, render

    try:
        info = inspect_store(args.path, tail=args.tail, mob=args.mob)
    except MobStoreError as exc:
        print(f"mobstore inspect: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else render(info))
    return 0


def _chaos(args: argparse.Namespace) -> int:
    from mobstore.actors.testing import run_chaos

    report = run_chaos(args.iterations, args.seed, args.durability, progress=print, path=args.path)
    print(report.table())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mobstore", description="mobstore: a durable state store for multi-agent runtimes")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a multi-agent workload with a crash and a restart, and verify it")
    demo.add_argument("--path", help="store file (default: a new file in a temp folder)")
    demo.add_argument("--mobs", type=int, default=8)
    demo.add_argument("--agents", type=int, default=4, help="agents (concurrent tasks) per mob")
    demo.add_argument("--events", type=int, default=250, help="events per agent")
    demo.add_argument("--durability", choices=["full", "normal"], default="full")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="benchmarks: durable appends vs baselines; subscriber latency and catch-up")
    bench.add_argument("workload", nargs="?", choices=["appends", "boundaries", "subscribers"], default="appends")
    bench.add_argument("--workers", type=int, default=64, help="concurrent writers (appenders)")
    bench.add_argument("--ops", type=int, default=500, help="operations per worker (boundaries: 200, subscribers: 100)")
    bench.add_argument("--runtimes", type=int, default=16, help="boundaries workload: runtimes")
    bench.add_argument("--subscribers", type=int, default=8, help="subscribers workload: live subscribers")
    bench.add_argument("--backlog", type=int, default=1_000_000, help="subscribers workload: catch-up backlog")
    bench.add_argument("--mobs", type=int, default=16)
    bench.add_argument("--durability", choices=["full", "normal"], default="full")
    bench.add_argument("--dir", help="where the temp store files go (default: the system temp dir)")
    bench.add_argument("--json", help="also write the results to this JSON file")
    bench.set_defaults(func=_bench)

    insp = sub.add_parser("inspect", help="a read-only look into a store file (never writes)")
    insp.add_argument("path", help="the store file")
    insp.add_argument("--tail", type=int, default=5, help="newest events to show per mob")
    insp.add_argument("--mob", help="show only this mob")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    insp.set_defaults(func=_inspect)

    chaos = sub.add_parser("chaos", help="kill -9 loop: a child writes, gets SIGKILLed, the store is verified")
    chaos.add_argument("--iterations", type=int, default=200)
    chaos.add_argument("--seed", type=int, default=0)
    chaos.add_argument("--durability", choices=["full", "normal"], default="full")
    chaos.add_argument("--path", help="store file (default: a temp file, removed if every check passes)")
    chaos.set_defaults(func=_chaos)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
