"""The cas, restart and mixed benchmark workloads at tiny sizes: the shape of their results
(every system present, every operation counted) and, for cas, what the store holds after.
No timing is asserted."""

from __future__ import annotations

import pytest
import trio

from mobstore.actors import open_store
from mobstore.benchmarks import cas, mixed, restart

SYSTEMS = ["mobstore", "mobstore, no group commit", "naive sqlite3 threads"]


def check_rows(results, names, ops):
    assert [r.name for r in results] == names
    for r in results:
        assert r.ops == ops, r.name
        assert r.seconds > 0 and r.ops_per_s > 0
        assert 0 < r.p50_ms <= r.p99_ms <= r.max_ms


class TestCas:
    def test_three_systems_count_every_cas(self, tmp_path):
        """Each system reports workers * ops successful CASes."""
        check_rows(cas.run(workers=4, ops=10, directory=str(tmp_path)), SYSTEMS, 40)

    def test_contended_rows_follow_the_headline(self, tmp_path):
        """``contended`` adds the two shared-frame rows after the three systems."""
        results = cas.run(workers=3, ops=2, contended=True, contended_ops=4, directory=str(tmp_path))
        check_rows(results[:3], SYSTEMS, 6)
        check_rows(results[3:], ["mobstore, contended", "naive sqlite3 threads, contended"], 12)

    def test_group_commit_off_names_the_first_row(self, tmp_path):
        """With group_commit=False the first row says so; the baselines follow."""
        results = cas.run(workers=2, ops=3, group_commit=False, directory=str(tmp_path))
        check_rows(results, ["mobstore (group commit off)", *SYSTEMS[1:]], 6)
        assert results[0].settings["group_commit"] is False

    def test_store_holds_the_final_frame_states(self, tmp_path):
        """Read back from the file, every frame holds the state its task wrote last."""
        path = str(tmp_path / "cas.db")
        result = trio.run(cas._mobstore, path, 4, 10, "normal", True)
        assert result.ops == 40

        async def frames():
            async with open_store(path) as store:
                [run] = await store.mob("mob-cas").runs.list_runs()
                return run.frames

        assert trio.run(frames) == cas.final_states(4, 10)


class TestRestart:
    def test_both_scenarios_for_three_systems(self, tmp_path):
        """Crash rows count workers * ops restarts, reopen rows one per reopen; render shows
        one table per scenario."""
        results = restart.run(workers=2, ops=3, mobs=3, events=20, runs=1, reopens=2, directory=str(tmp_path))
        check_rows(results[:3], [f"{s}: actor crash" for s in SYSTEMS], 6)
        check_rows(results[3:], [f"{s}: reopen" for s in SYSTEMS], 2)
        text = restart.render(results)
        assert "actor crash -> ready" in text and "reopen -> ready" in text

    def test_workers_are_capped_at_mobs(self, tmp_path):
        """A task owns at least one mob: more workers than mobs run as many as mobs."""
        results = restart.run(workers=5, ops=1, mobs=2, events=1, runs=0, reopens=1, directory=str(tmp_path))
        assert [r.ops for r in results] == [2, 2, 2, 1, 1, 1]


class TestMixed:
    def test_three_systems_count_every_operation(self, tmp_path):
        """Each system reports workers * ops operations of the mix."""
        check_rows(mixed.run(workers=4, ops=10, mobs=2, directory=str(tmp_path)), SYSTEMS, 40)

    def test_schedule_is_seeded_and_follows_the_mix(self):
        """The same task gets the same kinds in every system; a kind of weight 0 never runs."""
        a = mixed.schedule("append:1,cas:1,poll:0", 3, 50)
        assert a == mixed.schedule("append:1,cas:1,poll:0", 3, 50)
        assert set(a) == {"append", "cas"}

    def test_bad_mix_is_refused(self, tmp_path):
        """An unknown kind is refused before anything runs."""
        with pytest.raises(ValueError, match="kind:weight"):
            mixed.run(workers=1, ops=1, mix="append:1,delete:1", directory=str(tmp_path))
