"""A history checker: record concurrent operations, then check them for linearizability.

Theory of operation
-------------------
A *history* is what clients saw: each operation was *invoked* at one moment and *completed*
at a later one with a result (``ok``), a definite refusal that still observed the state
(``fail``: a lost CAS with its ``actual``, ``NotFound``), no effect and nothing observed
(``void``: ``ActorCrashed`` or a ``Cancelled`` call, which mobstore promises wrote nothing),
or an unknown outcome (``info``: it may or may not have taken effect). Moments are
ticks of one counter; a trio program is single-threaded, so the counter is a true real-time
order.

A history is *linearizable* for a register if its operations can be put in one sequential
order that (1) respects real time (an operation that completed before another was invoked
comes first), (2) contains every ``ok`` and ``fail`` operation and any subset of the
``info`` ones, and (3) is legal for the register's sequential specification (a *model*:
``step(state, op) -> (consistent, next_state)``). :func:`check_linearizable` searches for
such an order with the Wing & Gong algorithm, with Lowe's memoisation of ``(linearized set,
state)`` pairs (the "WGL" checker of Knossos/Porcupine): at each point only operations
invoked before the earliest pending completion are candidates. It is exponential in the
worst case, which is fine for the few dozen operations per key that tests produce.

Keys are checked independently (linearizability is compositional), each with its model:
:class:`RevisionRegister` (spec and profile revisions), :class:`GenerationRegister` (config
generations) and :class:`RunStatusRegister` (run status CAS). Event logs are checked for
*prefix consistency* by :func:`check_event_log`.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from mobstore.storage import ActorCrashed, CasConflict, NotFound

INF = float("inf")


@attrs.define
class Op:
    """One operation of a history. ``result`` is normalised by the recorder: a value, or
    ``("conflict", actual)`` / ``("not_found",)`` for the typed refusals."""

    id: int
    key: str
    f: str
    arg: Any
    invoke: int
    complete: float = INF
    status: str = "pending"  #: "pending", "ok", "fail", "void" or "info"
    result: Any = None
    process: Any = None


def _normalise(exc: BaseException) -> Any:
    if isinstance(exc, CasConflict):
        return ("conflict", exc.actual)
    if isinstance(exc, NotFound):
        return ("not_found",)
    return ("error", type(exc).__name__)


class History:
    """Records operations as they happen (see the module docstring)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._clock = itertools.count()

    def invoke(self, key: str, f: str, arg: Any = None, *, process: Any = None) -> Op:
        op = Op(len(self.ops), key, f, arg, next(self._clock), process=process)
        self.ops.append(op)
        return op

    def complete(self, op: Op, status: str, result: Any = None) -> None:
        if status not in ("ok", "fail", "void", "info"):
            raise ValueError(f"status must be ok, fail, void or info, got {status!r}")
        op.status, op.result = status, result
        op.complete = INF if status == "info" else next(self._clock)

    async def call(self, key: str, f: str, arg: Any, fn: Callable[[], Awaitable[Any]], *, process: Any = None) -> Any:
        """Invoke ``fn()``, record its outcome, return its result (or the exception it raised).

        ``CasConflict`` (and subclasses) and ``NotFound`` are ``fail`` with their ``actual``;
        ``ActorCrashed`` and ``Cancelled`` are ``void`` (mobstore promises they wrote
        nothing); anything else is ``info`` (unknown). ``Cancelled`` is re-raised.
        """
        op = self.invoke(key, f, arg, process=process)
        try:
            result = await fn()
        except (CasConflict, NotFound) as exc:
            self.complete(op, "fail", _normalise(exc))
            return exc
        except ActorCrashed as exc:
            self.complete(op, "void", _normalise(exc))
            return exc
        except trio.Cancelled:
            self.complete(op, "void", ("cancelled",))
            raise
        except Exception as exc:  # noqa: BLE001 - unknown outcome, recorded
            self.complete(op, "info", _normalise(exc))
            return exc
        self.complete(op, "ok", result)
        return result

    def by_key(self) -> dict[str, list[Op]]:
        out: dict[str, list[Op]] = {}
        for op in self.ops:
            out.setdefault(op.key, []).append(op)
        return out


# -- models: sequential specifications ------------------------------------------------------


class RevisionRegister:
    """Spec and profile revisions. State ``(high_water, present)``; the current revision is
    ``high_water`` when present, else 0; revisions never restart after a delete.

    Operations (``f``, ``arg`` -> ok result):
    ``put`` (expected or None) -> new revision (``put_spec``; None = upsert);
    ``create`` (None) -> new revision, conflict if present (``profiles.create``);
    ``update`` (expected) -> new revision, ``not_found`` if absent (``profiles.update``);
    ``delete`` (expected or None) -> True/False (``delete_spec``), or the deleted revision
    with conflict / not_found refusals (``profiles.delete``: pass ``f="delete_profile"``);
    ``read`` -> the revision, or None when absent.
    """

    init = (0, False)

    @staticmethod
    def step(state: tuple[int, bool], op: Op) -> tuple[bool, tuple[int, bool]]:
        hw, present = state
        cur = hw if present else 0
        f, arg, res, known = op.f, op.arg, op.result, op.status != "info"
        if f == "read":
            return (res == (cur if present else None)) or not known, state
        if f == "put":
            if arg is None or arg == cur:
                return (res == hw + 1) or not known, (hw + 1, True)
            return (res == ("conflict", cur)) or not known, state
        if f == "create":
            if present:
                return (res == ("conflict", cur)) or not known, state
            return (res == hw + 1) or not known, (hw + 1, True)
        if f == "update":
            if not present:
                return (res == ("not_found",)) or not known, state
            if arg != cur:
                return (res == ("conflict", cur)) or not known, state
            return (res == hw + 1) or not known, (hw + 1, True)
        if f == "delete":
            if present and (arg is None or arg == cur):
                return (res is True) or not known, (hw, False)
            return (res is False) or not known, state
        if f == "delete_profile":
            if not present:
                return (res == ("not_found",)) or not known, state
            if arg != cur:
                return (res == ("conflict", cur)) or not known, state
            return (res == cur) or not known, (hw, False)
        raise ValueError(f"RevisionRegister has no operation {f!r}")


class GenerationRegister:
    """Config generations. State ``generation``. ``set`` / ``patch`` (expected or None) ->
    the new generation, or ``("conflict", current)``; ``read`` -> the generation."""

    init = 0

    @staticmethod
    def step(state: int, op: Op) -> tuple[bool, int]:
        known = op.status != "info"
        if op.f == "read":
            return (op.result == state) or not known, state
        if op.f in ("set", "patch"):
            if op.arg is None or op.arg == state:
                return (op.result == state + 1) or not known, state + 1
            return (op.result == ("conflict", state)) or not known, state
        raise ValueError(f"GenerationRegister has no operation {op.f!r}")


class RunStatusRegister:
    """A run's status. ``cas`` ((expected, next)) -> True/False; ``read`` -> the status."""

    init = "pending"
    TERMINAL = frozenset({"completed", "failed", "canceled"})

    @classmethod
    def step(cls, state: str, op: Op) -> tuple[bool, str]:
        known = op.status != "info"
        if op.f == "read":
            return (op.result == state) or not known, state
        if op.f == "cas":
            expected, nxt = op.arg
            if state == expected and state not in cls.TERMINAL:
                return (op.result is True) or not known, nxt
            return (op.result is False) or not known, state
        raise ValueError(f"RunStatusRegister has no operation {op.f!r}")


# -- the checker ----------------------------------------------------------------------------


@attrs.frozen
class Linearization:
    """The verdict for one key: ``ok``, a witness order of op ids when ok, and how many
    search states were explored."""

    key: str
    ok: bool
    order: tuple[int, ...] | None
    explored: int


def check_linearizable(ops: Sequence[Op], model: Any, *, key: str = "", init: Any = None) -> Linearization:
    """Whether ``ops`` (one key) are linearizable for ``model`` (see the module docstring).
    Pending operations count as ``info``; ``void`` ones are left out."""
    ops = [o for o in ops if o.status != "void"]
    n = len(ops)
    inv = [o.invoke for o in ops]
    comp = [o.complete if o.status in ("ok", "fail") else INF for o in ops]
    required = 0
    for i, o in enumerate(ops):
        if o.status in ("ok", "fail"):
            required |= 1 << i
    seen: set[tuple[int, Any]] = set()
    start = model.init if init is None else init
    # Iterative depth-first search: a frame is (mask, state, candidates left to try).
    stack: list[tuple[int, Any, list[int]]] = []
    path: list[int] = []

    def candidates(mask: int) -> list[int]:
        horizon = min((comp[i] for i in range(n) if not mask >> i & 1 and required >> i & 1), default=INF)
        return [i for i in range(n) if not mask >> i & 1 and inv[i] < horizon]

    if required == 0:
        return Linearization(key, True, (), 0)
    seen.add((0, start))
    stack.append((0, start, candidates(0)))
    while stack:
        mask, state, todo = stack[-1]
        if not todo:
            stack.pop()
            if path:
                path.pop()
            continue
        i = todo.pop()
        consistent, nxt = model.step(state, ops[i])
        if not consistent:
            continue
        m2 = mask | 1 << i
        if (m2, nxt) in seen:
            continue
        seen.add((m2, nxt))
        path.append(ops[i].id)
        if m2 & required == required:
            return Linearization(key, True, tuple(path), len(seen))
        stack.append((m2, nxt, candidates(m2)))
    return Linearization(key, False, None, len(seen))


def check_history(history: History, models: Mapping[str, Any]) -> list[Linearization]:
    """Check every key of ``history`` with the model of the longest matching key prefix in
    ``models`` (``{"spec:": RevisionRegister, "config": GenerationRegister}``)."""
    out = []
    for key, ops in history.by_key().items():
        prefix = max((p for p in models if key.startswith(p)), key=len, default=None)
        if prefix is None:
            raise ValueError(f"no model for key {key!r}")
        out.append(check_linearizable(ops, models[prefix], key=key))
    return out


def check_event_log(ops: Iterable[Op], final: Sequence[tuple[int, Any]]) -> list[str]:
    """Prefix consistency of one event log (no prune or clear in the history).

    ``ops``: ``append`` operations whose ok result is the list of ``(cursor, payload)`` they
    got, and ``read`` operations whose ok result is the list of ``(cursor, payload)`` a full
    read returned. ``final``: the log read after the history. Returns the violations:
    an acknowledged append missing from the final log; a read that is not a prefix of the
    final log (a hole, or an event that later vanished or changed); a read that misses an
    append completed before it was invoked; a read shorter than one completed before it was
    invoked; cursors of appends ordered against real time.
    """
    final = list(final)
    by_cursor = dict(final)
    appends = [o for o in ops if o.f == "append" and o.status == "ok"]
    reads = [o for o in ops if o.f == "read" and o.status == "ok"]
    out = []
    for a in appends:
        for c, p in a.result:
            if by_cursor.get(c, object()) != p:
                out.append(f"op {a.id}: acknowledged event {c} missing or changed in the final log")
    for r in reads:
        got = list(r.result)
        if got != final[: len(got)]:
            out.append(f"op {r.id}: read of {len(got)} events is not a prefix of the final log")
        cursors = {c for c, _ in got}
        for a in appends:
            if a.complete < r.invoke and not {c for c, _ in a.result} <= cursors:
                out.append(f"op {r.id}: read misses op {a.id}, acknowledged before the read began")
        for r0 in reads:
            if r0.complete < r.invoke and len(r0.result) > len(got):
                out.append(f"op {r.id}: read shorter than op {r0.id}, which completed before it began")
    for a, b in itertools.permutations(appends, 2):
        if a.complete < b.invoke and a.result and b.result and max(c for c, _ in a.result) >= min(c for c, _ in b.result):
            out.append(f"ops {a.id}, {b.id}: cursors out of real-time order")
    return out
