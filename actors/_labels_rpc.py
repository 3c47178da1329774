"""The JSON-RPC method table for labels, transport-agnostic (upstream mobkit's six methods).

A transport (HTTP, stdio, a websocket) parses a request, calls :func:`handle` with the
method name and the params, and sends back what it returns: the JSON-RPC *result* object,
or a JSON-RPC *error* object (it has an integer ``"code"``; :func:`is_error` tells them
apart). :func:`respond` does the whole JSON-RPC 2.0 envelope for transports that want it.

Methods (SEMANTICS.md §8.1; names as upstream)::

    mobkit/mob_labels/set     {"labels": {...}}                 -> {"accepted": true}
    mobkit/mob_labels/get     {}                                -> {"labels": {...}}
    mobkit/mob_labels/delete  {}                                -> {"accepted": true}
    mobkit/run_labels/set     {"run_id": "...", "labels": {...}} -> {"accepted": true}
    mobkit/run_labels/get     {"run_id": "..."}                 -> {"labels": {...}}
    mobkit/run_labels/delete  {"run_id": "..."}                 -> {"accepted": true}

Upstream compatibility rules kept here (and only here):
    * a ``set`` whose ``labels`` is missing, ``null`` or ``{}`` clears the labels (the
      Python API requires the argument: ``mob.labels.set({})``);
    * ``delete`` always answers accepted, whether or not there were labels;
    * the mob is the one the table serves (``handle(mob, ...)``, upstream: the runtime's
      own mob). Served from a whole store (``handle(store, ...)``), ``params["mob_id"]``
      names the mob.

Errors: ``-32602`` with upstream's message ``"Invalid params: <what>"`` (``"Invalid params:
run_id required"``, ``"Invalid params: labels must be a map of string to string: ..."``),
``-32601`` (Method not found), ``-32603`` (Internal error: the store failed, e.g. it is
closed). ``data`` repeats the detail alone (``"run_id required"``; for -32601 the method,
for -32603 the store's message), for clients that match on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from mobstore.storage import InvalidInput, MobStoreError
from mobstore.storage._labels import check_labels, label_run_id

from ._mob import Mob
from ._store import Store

INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603


class _Invalid(Exception):
    def __init__(self, data: str) -> None:
        self.data = data


def _error(code: int, message: str, data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def _invalid(data: str) -> dict[str, Any]:
    return _error(INVALID_PARAMS, f"Invalid params: {data}", data)


def is_error(reply: dict[str, Any]) -> bool:
    """True if ``reply`` (from :func:`handle`) is a JSON-RPC error object."""
    return type(reply.get("code")) is int and "message" in reply


def _mob(target: Mob | Store, params: dict[str, Any]) -> Mob:
    if isinstance(target, Mob):
        return target
    mob_id = params.get("mob_id")
    if type(mob_id) is not str or not mob_id:
        raise _Invalid("mob_id required")
    try:
        return target.mob(mob_id)
    except InvalidInput as exc:
        raise _Invalid(f"invalid mob_id: {exc.problem}") from None


def _run_id(params: dict[str, Any]) -> str:
    run_id = params.get("run_id")
    if type(run_id) is not str or not run_id:
        raise _Invalid("run_id required")
    try:
        return label_run_id(run_id)
    except InvalidInput as exc:
        raise _Invalid(f"invalid run_id: {exc.problem}") from None


def _labels(params: dict[str, Any]) -> dict[str, str]:
    labels = params.get("labels")
    if labels is None:
        return {}
    if type(labels) is not dict:
        raise _Invalid(f"labels must be a map of string to string: got {_json_type(labels)}")
    for k, v in labels.items():
        if type(k) is not str:
            raise _Invalid(f"labels must be a map of string to string: the key {k!r} is {_json_type(k)}")
        if type(v) is not str:
            raise _Invalid(f"labels must be a map of string to string: the value of {k!r} is {_json_type(v)}")
    try:
        return check_labels(labels)
    except InvalidInput as exc:
        raise _Invalid(f"labels must be a map of string to string: {exc.problem}") from None


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


async def _mob_set(mob: Mob, params: dict[str, Any]) -> dict[str, Any]:
    await mob.labels.set(_labels(params))
    return {"accepted": True}


async def _mob_get(mob: Mob, params: dict[str, Any]) -> dict[str, Any]:
    return {"labels": await mob.labels.get()}


async def _mob_delete(mob: Mob, params: dict[str, Any]) -> dict[str, Any]:
    await mob.labels.delete()
    return {"accepted": True}


async def _run_set(mob: Mob, params: dict[str, Any]) -> dict[str, Any]:
    run_id = _run_id(params)
    await mob.labels.set(_labels(params), run_id)
    return {"accepted": True}


async def _run_get(mob: Mob, params: dict[str, Any]) -> dict[str, Any]:
    return {"labels": await mob.labels.get(_run_id(params))}


async def _run_delete(mob: Mob, params: dict[str, Any]) -> dict[str, Any]:
    await mob.labels.delete(_run_id(params))
    return {"accepted": True}


#: Method name -> ``async fn(mob, params) -> result``.
METHODS: dict[str, Callable[[Mob, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "mobkit/mob_labels/set": _mob_set,
    "mobkit/mob_labels/get": _mob_get,
    "mobkit/mob_labels/delete": _mob_delete,
    "mobkit/run_labels/set": _run_set,
    "mobkit/run_labels/get": _run_get,
    "mobkit/run_labels/delete": _run_delete,
}


async def handle(target: Mob | Store, method: str, params: Any = None) -> dict[str, Any]:
    """Serve one labels call; return the JSON-RPC result object or error object.

    Args:
        target: the :class:`Mob` whose labels are served, or a :class:`Store` (then
            ``params["mob_id"]`` names the mob).
        method: one of :data:`METHODS`.
        params: the JSON params (an object; ``None`` counts as ``{}``).

    Returns:
        ``{"accepted": True}``, ``{"labels": {...}}``, or
        ``{"code": ..., "message": ..., "data": ...}`` (see the module docstring). Never
        raises for bad input or a store failure; cancellation propagates (and a cancelled
        ``set``/``delete`` wrote nothing).
    """
    fn = METHODS.get(method) if type(method) is str else None
    if params is None:
        params = {}
    try:
        if fn is None:
            reply = _error(METHOD_NOT_FOUND, "Method not found", method)
        elif type(params) is not dict:
            reply = _invalid(f"params must be an object, got {_json_type(params)}")
        else:
            return await fn(_mob(target, params), params)
    except _Invalid as exc:
        reply = _invalid(exc.data)
    except InvalidInput as exc:
        reply = _invalid(str(exc))
    except MobStoreError as exc:
        reply = _error(INTERNAL_ERROR, "Internal error", str(exc))
    await trio.lowlevel.checkpoint()  # a checkpoint on every path, as every public async call
    return reply


async def respond(target: Mob | Store, request: Any) -> dict[str, Any]:
    """Serve a whole JSON-RPC 2.0 request object: ``{"jsonrpc": "2.0", "id": ..., "result"
    | "error": ...}`` (``-32600`` Invalid Request if it is not a request)."""
    if type(request) is not dict or type(request.get("method")) is not str:
        return {"jsonrpc": "2.0", "id": None, "error": _error(-32600, "Invalid Request", "not a JSON-RPC request object")}
    reply = await handle(target, request["method"], request.get("params"))
    key = "error" if is_error(reply) else "result"
    return {"jsonrpc": "2.0", "id": request.get("id"), key: reply}
