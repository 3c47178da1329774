"""The ``mobstore`` command line: ``demo``, ``bench``, ``inspect``, ``chaos``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    import trio

    from ._demo import DemoError, run_demo

    try:
        report = trio.run(
            lambda: run_demo(
                args.path, mobs=args.mobs, agents_per_mob=args.agents, events_per_agent=args.events,
                durability=args.durability,
            )
        )
    except DemoError as exc:
        print(f"mobstore demo: {exc}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


def _bench(args: argparse.Namespace) -> int:
    from mobstore.benchmarks._harness import run

    return run(args)


def _inspect(args: argparse.Namespace) -> int:
    from mobstore.storage import MobStoreError
    from mobstore.storage._inspect import Limits, inspect_store, render

    given = {k: (None if v == "all" else v) for k in ("runs", "frames", "ledger", "runtimes")
             if (v := getattr(args, k)) is not None}
    try:
        info = inspect_store(args.path, tail=args.tail, mob=args.mob, run=args.run,
                             limits=Limits.for_mode(args.run is not None, **given))
    except MobStoreError as exc:
        print(f"mobstore inspect: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(info, indent=2, ensure_ascii=False, allow_nan=False) if args.json else render(info), flush=True)
    except BrokenPipeError:  # `mobstore inspect ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _count(text: str) -> int:
    """A non-negative count option."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return n


def _positive(text: str) -> int:
    """A positive count option."""
    n = _count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return n


def _inspect_limit(text: str) -> int | str:
    """A list limit of `mobstore inspect`: a count (0: counts only) or `all`."""
    if text == "all":
        return text
    try:
        return _count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...) or 'all'") from None


def _chaos(args: argparse.Namespace) -> int:
    from mobstore.actors.testing import run_chaos

    if args.path is not None and os.path.exists(args.path) and os.path.getsize(args.path) > 0:
        # The loop writes its own mobs and checks them: never into somebody's store.
        print(f"mobstore chaos: {args.path} exists; the loop needs a new store file: pass a new --path", file=sys.stderr)
        return 2
    report = run_chaos(args.iterations, args.seed, args.durability, progress=print, path=args.path)
    print(report.table())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mobstore", description="mobstore: a durable state store for multi-agent runtimes")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run a multi-agent flow workload with crashes and a close-and-reopen midway, and verify every invariant",
    )
    demo.add_argument("--path", help="a new store file, kept for `mobstore inspect` (default: a new file in a temp folder)")
    demo.add_argument("--mobs", type=int, default=8, help="mobs, each with one flow run and one durable consumer")
    demo.add_argument("--agents", type=int, default=4, help="agents (concurrent tasks, each with a runtime) per mob")
    demo.add_argument("--events", type=int, default=250,
                      help="events per agent, at least 7 (one loop iteration per 25 events)")
    demo.add_argument("--durability", choices=["full", "normal"], default="full")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser(
        "bench", help="contention benchmarks: mobstore beside its baselines (throughput, latency, ratios)",
        description="Runs workloads with mobstore and its baselines (stdlib sqlite3 threads, one transaction per "
                    "operation; mobstore without group commit) side by side, prints throughput, p50/p99/p99.9/max "
                    "latency and ratios, and writes a JSON result file (and, with --plot, a PNG).",
    )
    from mobstore.benchmarks._harness import add_arguments as _bench_arguments

    _bench_arguments(bench)
    bench.set_defaults(func=_bench)

    insp = sub.add_parser(
        "inspect", help="a read-only look into a store file (never writes)",
        description="Shows mobs (event tail, consumers and lag, labels, spec), their runs (flow state, frames and "
                    "loops by state, ledgers, step outputs), realm profiles and config, and runtimes (input states, "
                    "boundary receipts per run, session snapshot). Lists are bounded (counts cover everything); "
                    "--run RUN_ID shows one run in full. Opens the file read-only: it never writes.",
    )
    insp.add_argument("path", help="the store file")
    insp.add_argument("--tail", type=_count, default=5, help="newest events to show per mob")
    insp.add_argument("--mob", help="show only this mob, and the runtimes linked to its runs")
    insp.add_argument("--run", metavar="RUN_ID", help="show this run in full (every frame, loop, ledger entry and output, "
                                                      "and its runtimes' receipts) instead of the overview")
    insp.add_argument("--runs", type=_inspect_limit, metavar="N", help="newest runs to show per mob (default 10; 'all')")
    insp.add_argument("--frames", type=_inspect_limit, metavar="N",
                      help="frames and loops to show per run: the first and last few by id (default 4, all with --run)")
    insp.add_argument("--ledger", type=_inspect_limit, metavar="N",
                      help="newest entries to show per ledger (default 3, all with --run)")
    insp.add_argument("--runtimes", type=_inspect_limit, metavar="N", help="runtimes to show, by id (default 20; 'all')")
    insp.add_argument("--json", action="store_true", help="machine-readable output (the same limits apply)")
    insp.set_defaults(func=_inspect)

    chaos = sub.add_parser("chaos", help="kill -9 loop: a child writes, gets SIGKILLed, the store is verified")
    chaos.add_argument("--iterations", type=_positive, default=200)
    chaos.add_argument("--seed", type=int, default=0)
    chaos.add_argument("--durability", choices=["full", "normal"], default="full")
    chaos.add_argument("--path", help="store file (default: a temp file, removed if every check passes)")
    chaos.set_defaults(func=_chaos)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
