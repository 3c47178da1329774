"""The config-runtime contract (SEMANTICS.md §7.4: upstream's tests plus the port's
rules), against any backend."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from mobstore.actors import (
    ConfigEnvelope,
    ConfigEnvelopePolicy,
    ConfigResolvedPaths,
    ConfigRuntime,
    ConfigSnapshot,
    ConfigStoreMetadata,
    GenerationConflict,
    InvalidInput,
)
from mobstore.storage import SetConfig, merge_patch, validate_config

# RFC 7386 appendix A: (target, patch, result).
RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


class _FailAfter:
    """Fault injection: apply ``command``, then fail, inside the same request."""

    def __init__(self, command: object) -> None:
        self.command = command

    def apply(self, tx: object) -> None:
        self.command.apply(tx)  # type: ignore[attr-defined]
        raise RuntimeError("injected fault after the config write")


class ConfigRuntimeContract:
    """``store.config``: get, set and patch under a generation CAS."""

    async def test_fresh_store_is_generation_zero(self, store):
        """Before any write: the initial config ({}) at generation 0."""
        snap = await store.config.get()
        assert (snap.config, snap.generation) == ({}, 0)

    async def test_set_then_get(self, store):
        """set(cfg, 0) gives generation 1; get returns cfg at generation 1."""
        cfg = {"agent": {"max_tokens_per_turn": 777}, "models": {"default": "x"}}
        after = await store.config.set(cfg, 0)
        assert (after.config, after.generation) == (cfg, 1)
        got = await store.config.get()
        assert (got.config, got.generation) == (cfg, 1)

    async def test_generation_conflict_is_enforced(self, store):
        """After set(…, 0), patch(Δ, 0) raises GenerationConflict(expected 0, current 1)
        and changes neither the config nor the generation."""
        await store.config.set({"agent": {"max_tokens_per_turn": 777}}, 0)
        with pytest.raises(GenerationConflict) as info:
            await store.config.patch({"agent": {"max_tokens_per_turn": 1000}}, 0)
        assert (info.value.expected, info.value.current, info.value.actual) == (0, 1, 1)
        with pytest.raises(GenerationConflict):
            await store.config.set({}, 5)
        got = await store.config.get()
        assert (got.config, got.generation) == ({"agent": {"max_tokens_per_turn": 777}}, 1)

    async def test_concurrent_writers_with_same_expected_generation(self, store):
        """Eight patches and sets released together with expected generation 0: exactly one
        succeeds, every other gets GenerationConflict(0, 1)."""
        go, results = trio.Event(), []

        async def writer(i: int) -> None:
            await go.wait()
            try:
                if i % 2:
                    results.append(await store.config.patch({"agent": {"max_tokens_per_turn": 100 + i}}, 0))
                else:
                    results.append(await store.config.set({"w": i}, 0))
            except GenerationConflict as exc:
                results.append(exc)

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(writer, i)
            await trio.testing.wait_all_tasks_blocked()
            go.set()
        wins = [r for r in results if isinstance(r, ConfigSnapshot)]
        losses = [r for r in results if isinstance(r, GenerationConflict)]
        assert len(wins) == 1 and len(losses) == 7
        assert all((e.expected, e.current) == (0, 1) for e in losses)
        got = await store.config.get()
        assert (got.config, got.generation) == (wins[0].config, 1)

    async def test_unconditional_writes_increment_by_one(self, store):
        """set and patch with expected_generation None always succeed and add exactly 1."""
        gens = []
        for i in range(3):
            gens.append((await store.config.set({"i": i})).generation)
            gens.append((await store.config.patch({"j": i})).generation)
        assert gens == [1, 2, 3, 4, 5, 6]
        assert (await store.config.get()).config == {"i": 2, "j": 2}

    @pytest.mark.parametrize(
        "config, field",
        [
            ({"max_tokens": 0}, "config['max_tokens']"),
            ({"agent": {"max_tokens_per_turn": 0}}, "config['agent']['max_tokens_per_turn']"),
            ({"budget": {"max_tokens": -1}}, "config['budget']['max_tokens']"),
            ({"limits": {"budget": 0}}, "config['limits']['budget']"),
            ({"limits": {"max_sessions": 0}}, "config['limits']['max_sessions']"),
            ({"compaction": {"auto_compact_threshold": 0}}, "config['compaction']['auto_compact_threshold']"),
            ({"compaction": {"recent_turn_budget": 0}}, "config['compaction']['recent_turn_budget']"),
            ({"compaction": {"max_summary_tokens": 0}}, "config['compaction']['max_summary_tokens']"),
            ({"compaction": {"min_turns_between_compactions": 0}}, "config['compaction']['min_turns_between_compactions']"),
            ({"max_tokens": "5"}, "config['max_tokens']"),
            ({"max_tokens": True}, "config['max_tokens']"),
            ({"agent": 3}, "config['agent']"),
        ],
    )
    async def test_invalid_config_is_rejected(self, store, config, field):
        """A config breaking an upstream rule is InvalidInput naming the key; by set or by
        the result of a patch, the stored config and generation are unchanged."""
        await store.config.set({"max_tokens": 10, "keep": True})
        with pytest.raises(InvalidInput) as info:
            await store.config.set(config)
        assert info.value.field == field
        with pytest.raises(InvalidInput) as info:
            await store.config.patch(config, 1)
        assert info.value.field == field
        got = await store.config.get()
        assert (got.config, got.generation) == ({"max_tokens": 10, "keep": True}, 1)

    async def test_unset_and_null_keys_are_valid(self, store):
        """The rules apply only to keys that are present and not null; good values pass."""
        ok = {"max_tokens": 1, "budget": {"max_tokens": None}, "limits": {}, "compaction": {"recent_turn_budget": 9}}
        assert (await store.config.set(ok)).config == ok
        validate_config({})

    @pytest.mark.parametrize("target, patch, result", RFC7386_EXAMPLES)
    def test_merge_patch_follows_rfc7386(self, target, patch, result):
        """merge_patch reproduces every example of RFC 7386 appendix A, including nulls
        nested under a new key being dropped; it changes neither argument."""
        import copy

        t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
        assert merge_patch(target, patch) == result
        assert (target, patch) == (t0, p0)

    async def test_patch_merges_on_the_stored_config(self, store):
        """patch returns and stores the merged config: nulls delete, objects merge, nulls
        under a new key are dropped."""
        await store.config.set({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"})
        snap = await store.config.patch({"a": {"c": None, "n": 3}, "d": [2], "e": None, "f": {"g": None, "h": 1}})
        expected = {"a": {"b": 1, "n": 3}, "d": [2], "f": {"h": 1}}
        assert (snap.config, snap.generation) == (expected, 2)
        assert (await store.config.get()).config == expected

    async def test_non_object_results_and_non_json_are_invalid_input(self, store):
        """A non-JSON config or delta is refused naming the path before anything is queued;
        a patch whose result is not an object is refused; nothing is written."""
        bad = [
            ("config", lambda: store.config.set([1, 2])),
            ("config['x']", lambda: store.config.set({"x": object()})),
            ("config", lambda: store.config.set({1: "int key"})),
            ("delta['x'][0]", lambda: store.config.patch({"x": [float("nan")]})),
            ("delta", lambda: store.config.patch([1])),
            ("delta", lambda: store.config.patch(None)),
            ("expected_generation", lambda: store.config.set({}, -1)),
            ("expected_generation", lambda: store.config.patch({}, "0")),
        ]
        for field, call in bad:
            with pytest.raises(InvalidInput) as info:
                await call()
            assert info.value.field == field, (field, info.value)
        assert (await store.config.get()).generation == 0

    async def test_returned_config_is_a_copy(self, store):
        """Changing a returned or passed dict changes nothing stored."""
        cfg = {"a": {"b": 1}}
        snap = await store.config.set(cfg)
        cfg["a"]["b"] = 2
        snap.config["a"]["b"] = 3
        (await store.config.get()).config["a"]["b"] = 4
        assert (await store.config.get()).config == {"a": {"b": 1}}

    async def test_config_and_generation_roll_back_together(self, store):
        """By construction one statement writes both; shown with a fault injected after the
        config write in the same request: the config and the generation both stay old."""
        from mobstore.actors._realm import REALM_KEY

        await store.config.set({"v": 1})
        cmd = SetConfig.of({"v": 2}, None, validate_config, "{}")
        with pytest.raises(Exception, match="injected fault"):
            await store._call(REALM_KEY, (_FailAfter(cmd),))
        got = await store.config.get()
        assert (got.config, got.generation) == ({"v": 1}, 1)
        with store._db.writer() as conn:
            [(n, gen)] = conn.execute("SELECT count(*), max(generation) FROM realm_config").fetchall()
        assert (n, gen) == (1, 1)

    def test_envelope_policy_controls_resolved_paths(self):
        """PUBLIC never has resolved_paths; DIAGNOSTIC has them when the metadata has them;
        the other fields come from the metadata, or None; to_json omits absent paths."""
        paths = ConfigResolvedPaths(root="/tmp/root", config_path="/tmp/root/config.toml", sessions_sqlite_path="/tmp/root/s.db")
        meta = ConfigStoreMetadata(realm_id="team", instance_id="instance", backend="sqlite", resolved_paths=paths)
        snap = ConfigSnapshot({"a": 1}, 7, meta)
        public = ConfigEnvelope.from_snapshot(snap, ConfigEnvelopePolicy.PUBLIC)
        diag = ConfigEnvelope.from_snapshot(snap, ConfigEnvelopePolicy.DIAGNOSTIC)
        assert public.resolved_paths is None and "resolved_paths" not in public.to_json()
        assert diag.resolved_paths == paths and diag.to_json()["resolved_paths"]["root"] == "/tmp/root"
        assert (diag.realm_id, diag.instance_id, diag.backend, diag.generation, diag.config) == ("team", "instance", "sqlite", 7, {"a": 1})
        assert ConfigEnvelope.from_snapshot(snap) == diag
        bare = ConfigEnvelope.from_snapshot(ConfigSnapshot({}, 0), ConfigEnvelopePolicy.DIAGNOSTIC)
        assert (bare.realm_id, bare.instance_id, bare.backend, bare.resolved_paths) == (None, None, None, None)

    async def test_store_metadata(self, store, backend):
        """The store's config metadata: backend sqlite; a file store's paths are its file and
        directory (DIAGNOSTIC only), an in-memory store has none."""
        snap = await store.config.get()
        assert snap.metadata.backend == "sqlite"
        if backend.path is None:
            assert snap.metadata.resolved_paths is None
        else:
            assert snap.metadata.resolved_paths.config_path == backend.path
            assert snap.metadata.resolved_paths.root == os.path.dirname(backend.path)
        assert ConfigEnvelope.from_snapshot(snap, ConfigEnvelopePolicy.PUBLIC).resolved_paths is None

    async def test_initial_config_and_custom_validator(self, store):
        """ConfigRuntime(initial=, validator=): the initial config is the base of the first
        patch at generation 0; a custom validator's ValueError is InvalidInput."""

        def no_debug(cfg: dict) -> None:
            if cfg.get("debug"):
                raise ValueError("debug must stay off")

        rt = ConfigRuntime(store, initial={"base": 1}, validator=no_debug, realm_id="r1")
        assert (await rt.get()).config == {"base": 1} and (await rt.get()).metadata.realm_id == "r1"
        with pytest.raises(InvalidInput, match="debug must stay off"):
            await rt.patch({"debug": True}, 0)
        snap = await rt.patch({"extra": 2}, 0)
        assert (snap.config, snap.generation) == ({"base": 1, "extra": 2}, 1)
        assert (await rt.set({"max_tokens": 0})).generation == 2  # default rules replaced

    async def test_a_validator_only_checks(self, store):
        """What a validator does to the dict it is shown is not stored, and set and patch
        return exactly what they stored; a validator that breaks (any exception) is
        InvalidInput naming it, not a write failure."""

        def meddling(cfg: dict) -> None:
            cfg["normalized"] = True

        rt = ConfigRuntime(store, validator=meddling)
        assert (await rt.set({"norm": 1})).config == {"norm": 1}
        assert (await rt.patch({"more": 2})).config == {"norm": 1, "more": 2}
        assert (await rt.get()).config == {"norm": 1, "more": 2}

        def broken(cfg: dict) -> None:
            raise RuntimeError("validator bug")

        rt = ConfigRuntime(store, validator=broken)
        with pytest.raises(InvalidInput, match="the config validator failed: RuntimeError: validator bug"):
            await rt.set({"x": 1})
        assert (await rt.get()).generation == 2

    async def test_open_store_realm_options(self, backend):
        """open_store(config=, config_validator=, realm_id=, instance_id=) configure
        store.config (SEMANTICS.md §7.1-7.2): the initial config at generation 0 (nothing
        written), the validator, and the metadata; every store.config is the same one."""

        def no_debug(cfg: dict) -> None:
            if cfg.get("debug"):
                raise ValueError("debug must stay off")

        opts = {"config": {"base": 1}, "config_validator": no_debug, "realm_id": "team", "instance_id": "i-1"}
        async with backend.open(**opts) as s:
            assert s.config is s.config
            snap = await s.config.get()
            assert (snap.config, snap.generation) == ({"base": 1}, 0)
            assert (snap.metadata.realm_id, snap.metadata.instance_id) == ("team", "i-1")
            with pytest.raises(InvalidInput, match="debug must stay off"):
                await s.config.patch({"debug": True})
            assert (await s.config.get()).generation == 0
            snap = await s.config.patch({"extra": 2}, 0)
            assert (snap.config, snap.generation) == ({"base": 1, "extra": 2}, 1)
        # Reopened with another initial config: a stored config wins over it.
        async with backend.open(config={"other": True}, config_validator=None) as s:
            got = await s.config.get()
            if backend.persistent:
                assert (got.config, got.generation) == ({"base": 1, "extra": 2}, 1)
            else:
                assert (got.config, got.generation) == ({"other": True}, 0)
            assert (await s.config.set({"max_tokens": 0})).config == {"max_tokens": 0}  # no validator

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"config": [1]}, "config"),
            ({"config": {"a": float("nan")}}, "config['a']"),
            ({"config_validator": 3}, "config_validator"),
            ({"realm_id": 5}, "realm_id"),
            ({"instance_id": "\ud800"}, "instance_id"),
            ({"clock": 5}, "clock"),
        ],
    )
    async def test_open_store_refuses_bad_realm_options(self, backend, options, field):
        with pytest.raises(InvalidInput) as info:
            async with backend.open(**options):
                raise AssertionError("opened")  # pragma: no cover
        assert info.value.field == field

    async def test_config_survives_reopen(self, backend):
        """A file store keeps the config and its generation across close and reopen."""
        async with backend.open() as s:
            await s.config.set({"a": 1})
            await s.config.patch({"b": 2})
        async with backend.open() as s:
            got = await s.config.get()
            if backend.persistent:
                assert (got.config, got.generation) == ({"a": 1, "b": 2}, 2)
                assert (await s.config.patch({"c": 3}, 2)).generation == 3
            else:
                assert (got.config, got.generation) == ({}, 0)
