"""kill -9 during multi-part runtime and config writes: never half-visible.

A child process writes in a loop (``durability="full"``), printing each acknowledged write;
the test kills it with SIGKILL after some acknowledgements, reopens the file and checks that
every acknowledged write survived and the last write is either wholly there or wholly not:

* config: the stored config's ``n`` always equals the generation (config and generation are
  one row, one statement);
* lifecycle: the runtime state and every input state come from the same commit;
* boundary: receipts are gapless and the snapshot and every input state carry the last
  receipt's sequence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import trio

from mobstore.actors import open_store

CHILD = r"""
import sys, uuid
from datetime import datetime, timezone
import trio
from mobstore.actors import InputState, SessionDelta, open_store

path, mode = sys.argv[1], sys.argv[2]
IDS = [str(uuid.UUID(int=i + 1)) for i in range(16)]
RUN = str(uuid.UUID(int=999))
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

async def main():
    async with open_store(path, durability="full") as s:
        rt = s.runtime("rt")
        k = 0
        while True:
            k += 1
            if mode == "config":
                k = (await s.config.set({"n": k, "pad": "x" * 3000}, k - 1)).generation
            elif mode == "lifecycle":
                states = [InputState(input_id=i, attempt_count=k, created_at=T0) for i in IDS]
                await rt.atomic_lifecycle_commit(("idle", "running")[k % 2], states)
            else:
                seq = k - 1
                states = [InputState(input_id=i, attempt_count=seq, created_at=T0) for i in IDS]
                d = SessionDelta.from_session({"messages": [{"k": seq}], "k": seq, "pad": "y" * 3000})
                r = await rt.commit_session_boundary(d, RUN, "run_checkpoint", IDS, states)
                assert r.sequence == seq
            print(k, flush=True)

trio.run(main)
"""

ACKS = 25


def crash(path: str, mode: str) -> int:
    """Run the child until it acknowledged ACKS writes, kill -9 it; return the last ack."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    last = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            last = int(line)
            if last >= ACKS:
                break
        else:
            pytest.fail(f"child exited early: {child.wait()} {child.stderr.read() if child.stderr else ''}")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        for f in (child.stdout, child.stderr):
            if f is not None:
                f.close()
    return last


@pytest.mark.parametrize("mode", ["config", "lifecycle", "boundary"])
def test_kill_9_never_leaves_a_half_write(tmp_path, mode):
    """After kill -9 mid-loop, every acknowledged write is there and the newest write is
    whole or absent."""
    path = str(tmp_path / "store.db")
    acked = crash(path, mode)

    async def check() -> None:
        async with open_store(path) as s:
            rt = s.runtime("rt")
            if mode == "config":
                snap = await s.config.get()
                assert snap.config["n"] == snap.generation >= acked
            elif mode == "lifecycle":
                states = await rt.load_input_states()
                counts = {st.attempt_count for st in states}
                assert len(states) == 16 and len(counts) == 1
                [k] = counts
                assert k >= acked
                assert (await rt.load_runtime_state()).value == ("idle", "running")[k % 2]
            else:
                run = str(uuid.UUID(int=999))
                receipts = await rt.load_boundary_receipts(run)
                assert [r.sequence for r in receipts] == list(range(len(receipts)))
                last = receipts[-1].sequence
                assert last + 1 >= acked
                assert json.loads(await rt.load_session_snapshot())["k"] == last
                states = await rt.load_input_states()
                assert {(st.attempt_count, st.last_boundary_sequence) for st in states} == {(last, last)}

    trio.run(check)
