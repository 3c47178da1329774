"""The labels JSON-RPC method table (upstream mobkit's six methods), transport-agnostic."""

from __future__ import annotations

import json

import pytest

from mobstore.actors import LABELS_RPC_METHODS, handle_labels_rpc, respond_labels_rpc
from mobstore.actors._labels_rpc import is_error


def invalid(data: str) -> dict:
    return {"code": -32602, "message": f"Invalid params: {data}", "data": data}


class TestMethods:
    def test_method_names_are_upstreams(self):
        """The table serves exactly mobkit's six label methods."""
        assert sorted(LABELS_RPC_METHODS) == sorted(
            f"mobkit/{scope}_labels/{op}" for scope in ("mob", "run") for op in ("set", "get", "delete")
        )

    async def test_mob_labels_set_get_delete(self, store):
        """set and delete answer accepted; get answers the labels; delete clears."""
        mob = store.mob("mob-a")
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/set", {"labels": {"env": "dev"}}) == {"accepted": True}
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/get", {}) == {"labels": {"env": "dev"}}
        assert await mob.labels.get() == {"env": "dev"}
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/delete", None) == {"accepted": True}
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/get", None) == {"labels": {}}
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/delete", {}) == {"accepted": True}

    async def test_run_labels_set_get_delete(self, store):
        """Run methods address one run of the mob; other runs and the mob scope stay."""
        mob = store.mob("mob-a")
        await mob.labels.set({"m": "1"})
        assert await handle_labels_rpc(mob, "mobkit/run_labels/set", {"run_id": "run-1", "labels": {"t": "a"}}) == {"accepted": True}
        await handle_labels_rpc(mob, "mobkit/run_labels/set", {"run_id": "run-2", "labels": {"t": "b"}})
        assert await handle_labels_rpc(mob, "mobkit/run_labels/get", {"run_id": "run-1"}) == {"labels": {"t": "a"}}
        assert await handle_labels_rpc(mob, "mobkit/run_labels/delete", {"run_id": "run-1"}) == {"accepted": True}
        assert await handle_labels_rpc(mob, "mobkit/run_labels/get", {"run_id": "run-1"}) == {"labels": {}}
        assert await mob.labels.get(run_id="run-2") == {"t": "b"} and await mob.labels.get() == {"m": "1"}

    @pytest.mark.parametrize("params", [{}, {"labels": None}, {"labels": {}}])
    async def test_missing_null_or_empty_labels_clear(self, store, params):
        """Upstream compatibility: set with labels missing, null or {} clears them."""
        mob = store.mob("mob-a")
        await mob.labels.set({"k": "v"})
        await mob.labels.set({"k": "v"}, run_id="r")
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/set", params) == {"accepted": True}
        assert await handle_labels_rpc(mob, "mobkit/run_labels/set", {**params, "run_id": "r"}) == {"accepted": True}
        assert await mob.labels.list() == []


class TestErrors:
    @pytest.mark.parametrize("op", ["set", "get", "delete"])
    @pytest.mark.parametrize("params", [{}, {"run_id": ""}, {"run_id": 5}, {"run_id": None}])
    async def test_run_id_required(self, store, op, params):
        """Every run method without a non-empty string run_id is Invalid params,
        'run_id required'; nothing is written."""
        mob = store.mob("mob-a")
        reply = await handle_labels_rpc(mob, f"mobkit/run_labels/{op}", {**params, "labels": {"k": "v"}})
        assert reply == invalid("run_id required") and is_error(reply)
        assert await mob.labels.list() == []

    @pytest.mark.parametrize(
        "labels, detail",
        [
            ({"k": 1}, "the value of 'k' is a number"),
            ({"k": None}, "the value of 'k' is null"),
            ({"k": ["v"]}, "the value of 'k' is an array"),
            ({1: "v"}, "the key 1 is a number"),
            (["k", "v"], "got an array"),
            ("k=v", "got a string"),
            ({"": "v"}, "keys must not be empty"),
            ({"k": "v" * 4097}, "longer than 4096 bytes"),
            ({"k": "v" * 1100 + "\ud800"}, "lone surrogate"),
            ({"k" * 100 + "\ud800": "v"}, "lone surrogate"),
        ],
    )
    async def test_labels_must_be_a_string_map(self, store, labels, detail):
        """A labels param that is not a map of string to string is Invalid params with a
        human-readable message; nothing is written."""
        mob = store.mob("mob-a")
        for method, params in [("mobkit/mob_labels/set", {}), ("mobkit/run_labels/set", {"run_id": "r"})]:
            reply = await handle_labels_rpc(mob, method, {**params, "labels": labels})
            assert reply["code"] == -32602 and reply["message"] == f"Invalid params: {reply['data']}"
            assert reply["data"].startswith("labels must be a map of string to string: ")
            assert detail in reply["data"]
        assert await mob.labels.list() == []

    async def test_bad_run_id_value(self, store):
        """A run id the store refuses (too long) is Invalid params naming run_id."""
        reply = await handle_labels_rpc(store.mob("m"), "mobkit/run_labels/get", {"run_id": "r" * 300})
        assert reply["code"] == -32602 and reply["data"].startswith("invalid run_id: ")

    async def test_unknown_method_and_bad_params(self, store):
        """Unknown methods are -32601 Method not found; params that are not an object are
        Invalid params."""
        mob = store.mob("m")
        assert await handle_labels_rpc(mob, "mobkit/labels/set", {}) == {
            "code": -32601, "message": "Method not found", "data": "mobkit/labels/set",
        }
        assert await handle_labels_rpc(mob, "mobkit/mob_labels/get", [1]) == invalid("params must be an object, got an array")

    async def test_store_failure_is_internal_error(self, backend):
        """A call on a closed store answers -32603 Internal error instead of raising."""
        async with backend.open() as s:
            mob = s.mob("m")
        reply = await handle_labels_rpc(mob, "mobkit/mob_labels/get", {})
        assert reply["code"] == -32603 and "closed" in reply["data"]


class TestStoreTarget:
    async def test_mob_id_param_names_the_mob(self, store):
        """Served from a whole store, params['mob_id'] names the mob, and is required."""
        reply = await handle_labels_rpc(store, "mobkit/run_labels/set", {"mob_id": "mob-b", "run_id": "r", "labels": {"a": "b"}})
        assert reply == {"accepted": True}
        assert await store.mob("mob-b").labels.get(run_id="r") == {"a": "b"}
        assert await handle_labels_rpc(store, "mobkit/mob_labels/get", {}) == invalid("mob_id required")
        reply = await handle_labels_rpc(store, "mobkit/mob_labels/get", {"mob_id": "x\x00"})
        assert reply["code"] == -32602 and reply["data"].startswith("invalid mob_id")

    async def test_respond_wraps_json_rpc_envelopes(self, store):
        """respond() answers a JSON-RPC 2.0 request with result or error and the same id;
        everything it returns is JSON."""
        mob = store.mob("m")
        ok = await respond_labels_rpc(mob, {"jsonrpc": "2.0", "id": 7, "method": "mobkit/mob_labels/set", "params": {"labels": {"a": "b"}}})
        assert ok == {"jsonrpc": "2.0", "id": 7, "result": {"accepted": True}}
        err = await respond_labels_rpc(mob, {"jsonrpc": "2.0", "id": "x", "method": "mobkit/run_labels/get", "params": {}})
        assert err == {"jsonrpc": "2.0", "id": "x", "error": invalid("run_id required")}
        bad = await respond_labels_rpc(mob, [1, 2])
        assert bad["error"]["code"] == -32600 and bad["id"] is None
        json.dumps([ok, err, bad])
