"""Records of a runtime's input states (SEMANTICS.md §6.1): frozen attrs values built with
keywords.

Every record validates on construction and raises :class:`InvalidInput` naming the field.
Identifiers that are UUIDs upstream (input ids, run ids) accept a :class:`uuid.UUID` or its
canonical string in either case and are held as lowercase hyphenated text (SEMANTICS.md
§1.1), so ``InputState(input_id=u) == InputState(input_id=str(u).upper())``.

Each record has ``to_json()`` giving upstream's serde form (optional fields omitted when
empty) and ``from_json()`` reading it back; times are RFC 3339 with a ``Z`` suffix. Opaque
JSON (a policy decision, a persisted input) is checked deeply, with the path of a bad value,
when a command is built for a write.

The store never interprets lifecycle states (SEMANTICS.md §6.4): :data:`INPUT_MOVES` is data
for callers (and documentation), not a rule the store enforces.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from ._codec import MAX_INT as _MAX_INT, enum_converter
from ._codec import check_count, check_time, check_utf8, utc_now
from ._errors import InvalidInput
from ._run_records import run_id_text


# -- enums ------------------------------------------------------------------------------------


class InputLifecycleState(str, enum.Enum):
    """Where an input is in the runtime's lifecycle; consumed, superseded, coalesced and
    abandoned are terminal. Legal moves: :data:`INPUT_MOVES`."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    STAGED = "staged"
    APPLIED = "applied"
    APPLIED_PENDING_CONSUMPTION = "applied_pending_consumption"
    CONSUMED = "consumed"
    SUPERSEDED = "superseded"
    COALESCED = "coalesced"
    ABANDONED = "abandoned"

    @property
    def is_terminal(self) -> bool:
        """True for the states no move leaves."""
        return not INPUT_MOVES[self]

    def __str__(self) -> str:
        return self.value


_I = InputLifecycleState
#: Upstream's ``InputStateMachine`` as data (staged -> queued is the rollback;
#: applied_pending_consumption -> queued is forbidden).
INPUT_MOVES: dict[InputLifecycleState, frozenset[InputLifecycleState]] = {
    _I.ACCEPTED: frozenset({_I.QUEUED, _I.CONSUMED, _I.SUPERSEDED, _I.COALESCED, _I.ABANDONED}),
    _I.QUEUED: frozenset({_I.STAGED, _I.SUPERSEDED, _I.COALESCED, _I.ABANDONED}),
    _I.STAGED: frozenset({_I.QUEUED, _I.APPLIED, _I.SUPERSEDED, _I.ABANDONED}),
    _I.APPLIED: frozenset({_I.APPLIED_PENDING_CONSUMPTION, _I.ABANDONED}),
    _I.APPLIED_PENDING_CONSUMPTION: frozenset({_I.CONSUMED, _I.ABANDONED}),
    _I.CONSUMED: frozenset(),
    _I.SUPERSEDED: frozenset(),
    _I.COALESCED: frozenset(),
    _I.ABANDONED: frozenset(),
}


class InputAbandonReason(str, enum.Enum):
    """Why an input was abandoned."""

    RETIRED = "retired"
    RESET = "reset"
    DESTROYED = "destroyed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class InputDurability(str, enum.Enum):
    """How an input survives a restart."""

    DURABLE = "durable"
    EPHEMERAL = "ephemeral"
    DERIVED = "derived"

    def __str__(self) -> str:
        return self.value


# -- converters and validators ----------------------------------------------------------------


_enum = enum_converter


def _opt_enum(cls: type[enum.Enum], field: str) -> Any:
    conv = _enum(cls, field)
    return lambda value: None if value is None else conv(value)


def _uuid(field: str) -> Any:
    return lambda value: run_id_text(value, field)


def _opt_uuid(field: str) -> Any:
    return lambda value: None if value is None else run_id_text(value, field)


def _uuids(field: str) -> Any:
    def convert(value: Any) -> tuple[str, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InvalidInput(field, f"must be a list of UUIDs, got {type(value).__name__}")
        return tuple(run_id_text(v, f"{field}[{i}]") for i, v in enumerate(value))

    return convert


def _count(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    check_count(value, attr.name)


def _opt_str(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if value is not None:
        if type(value) is not str:
            raise InvalidInput(attr.name, f"must be a str or None, got {type(value).__name__}")
        check_utf8(value, attr.name)


def _time(field: str) -> Any:
    return lambda value: check_time(value, field)


def _wire_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _parse_time(value: Any, field: str) -> datetime:
    if type(value) is not str:
        raise InvalidInput(field, f"must be an RFC 3339 string, got {type(value).__name__}")
    try:
        # Upstream writes up to nanoseconds; datetime holds microseconds (SEMANTICS.md 1.2).
        return check_time(datetime.fromisoformat(value.replace("Z", "+00:00")), field)
    except ValueError as exc:
        raise InvalidInput(field, f"{value!r} is not an RFC 3339 time ({exc})") from None


def _obj(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise InvalidInput(what, f"must be a JSON object, got {type(value).__name__}")
    return value


def _req(obj: dict[str, Any], key: str, what: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise InvalidInput(f"{what}.{key}", "is missing") from None


# -- sub-records of InputState ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PolicySnapshot:
    """The policy applied to an input: its version and the (opaque) decision object."""

    version: int = attrs.field(validator=_count)
    decision: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        _obj(self.decision, "policy.decision")

    def to_json(self) -> dict[str, Any]:
        """``{"version", "decision"}``."""
        return {"version": self.version, "decision": self.decision}

    @classmethod
    def from_json(cls, obj: Any) -> PolicySnapshot:
        """Parse :meth:`to_json`'s form; :class:`InvalidInput` if it is not one."""
        obj = _obj(obj, "policy")
        return cls(version=_req(obj, "version", "policy"), decision=_req(obj, "decision", "policy"))


_OUTCOME_FIELDS = {
    "consumed": (),
    "superseded": ("superseded_by",),
    "coalesced": ("aggregate_id",),
    "abandoned": ("reason",),
}


@attrs.frozen(kw_only=True)
class InputTerminalOutcome:
    """How an input ended, tagged by ``outcome_type``; build it with :meth:`consumed`,
    :meth:`superseded`, :meth:`coalesced` or :meth:`abandoned`."""

    outcome_type: str
    superseded_by: str | None = attrs.field(default=None, converter=_opt_uuid("superseded_by"))
    aggregate_id: str | None = attrs.field(default=None, converter=_opt_uuid("aggregate_id"))
    reason: InputAbandonReason | None = attrs.field(
        default=None, converter=_opt_enum(InputAbandonReason, "reason")
    )

    def __attrs_post_init__(self) -> None:
        need = _OUTCOME_FIELDS.get(self.outcome_type)
        if need is None:
            raise InvalidInput("outcome_type", f"{self.outcome_type!r} is not one of {', '.join(_OUTCOME_FIELDS)}")
        for f in ("superseded_by", "aggregate_id", "reason"):
            present = getattr(self, f) is not None
            if present != (f in need):
                what = "is required" if f in need else "is not allowed"
                raise InvalidInput(f, f"{what} for outcome_type {self.outcome_type!r}")

    @classmethod
    def consumed(cls) -> InputTerminalOutcome:
        """Consumed by a run."""
        return cls(outcome_type="consumed")

    @classmethod
    def superseded(cls, superseded_by: Any) -> InputTerminalOutcome:
        """Superseded by the input ``superseded_by``."""
        return cls(outcome_type="superseded", superseded_by=superseded_by)

    @classmethod
    def coalesced(cls, aggregate_id: Any) -> InputTerminalOutcome:
        """Coalesced into the aggregate input ``aggregate_id``."""
        return cls(outcome_type="coalesced", aggregate_id=aggregate_id)

    @classmethod
    def abandoned(cls, reason: InputAbandonReason | str) -> InputTerminalOutcome:
        """Abandoned (the runtime was retired, reset or destroyed, or it was cancelled)."""
        return cls(outcome_type="abandoned", reason=reason)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """``{"outcome_type", ...its field}``."""
        out: dict[str, Any] = {"outcome_type": self.outcome_type}
        for f in _OUTCOME_FIELDS[self.outcome_type]:
            out[f] = str(getattr(self, f))
        return out

    @classmethod
    def from_json(cls, obj: Any) -> InputTerminalOutcome:
        """Parse :meth:`to_json`'s form; :class:`InvalidInput` if it is not one."""
        obj = _obj(obj, "terminal_outcome")
        return cls(**{k: obj[k] for k in ("outcome_type", "superseded_by", "aggregate_id", "reason") if k in obj})


@attrs.frozen(kw_only=True)
class InputStateHistoryEntry:
    """One transition in an input's history (wire keys ``from`` and ``to``)."""

    timestamp: datetime = attrs.field(converter=_time("history.timestamp"))
    from_state: InputLifecycleState = attrs.field(converter=_enum(InputLifecycleState, "history.from"))
    to_state: InputLifecycleState = attrs.field(converter=_enum(InputLifecycleState, "history.to"))
    reason: str | None = attrs.field(default=None, validator=_opt_str)

    def to_json(self) -> dict[str, Any]:
        """``{"timestamp", "from", "to", "reason"?}``."""
        out: dict[str, Any] = {"timestamp": _wire_time(self.timestamp), "from": self.from_state.value, "to": self.to_state.value}
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, obj: Any) -> InputStateHistoryEntry:
        """Parse :meth:`to_json`'s form; :class:`InvalidInput` if it is not one."""
        obj = _obj(obj, "history entry")
        return cls(
            timestamp=_parse_time(_req(obj, "timestamp", "history"), "history.timestamp"),
            from_state=_req(obj, "from", "history"),
            to_state=_req(obj, "to", "history"),
            reason=obj.get("reason"),
        )


@attrs.frozen(kw_only=True)
class ReconstructionSource:
    """How a derived input is rebuilt after a crash, tagged by ``source_type``: build it with
    :meth:`projection` or :meth:`coalescing`."""

    source_type: str
    rule_id: str | None = attrs.field(default=None, validator=_opt_str)
    source_event_id: str | None = attrs.field(default=None, validator=_opt_str)
    source_input_ids: tuple[str, ...] = attrs.field(default=(), converter=_uuids("source_input_ids"))

    def __attrs_post_init__(self) -> None:
        if self.source_type == "projection":
            if self.rule_id is None or self.source_event_id is None or self.source_input_ids:
                raise InvalidInput("reconstruction_source", "projection takes rule_id and source_event_id only")
        elif self.source_type == "coalescing":
            if self.rule_id is not None or self.source_event_id is not None:
                raise InvalidInput("reconstruction_source", "coalescing takes source_input_ids only")
        else:
            raise InvalidInput("source_type", f"{self.source_type!r} is not one of projection, coalescing")

    @classmethod
    def projection(cls, rule_id: str, source_event_id: str) -> ReconstructionSource:
        """Derived from a projection rule applied to an event."""
        return cls(source_type="projection", rule_id=rule_id, source_event_id=source_event_id)

    @classmethod
    def coalescing(cls, source_input_ids: Sequence[Any]) -> ReconstructionSource:
        """Derived by coalescing the given inputs."""
        return cls(source_type="coalescing", source_input_ids=source_input_ids)

    def to_json(self) -> dict[str, Any]:
        """``{"source_type", ...its fields}``."""
        if self.source_type == "projection":
            return {"source_type": "projection", "rule_id": self.rule_id, "source_event_id": self.source_event_id}
        return {"source_type": "coalescing", "source_input_ids": list(self.source_input_ids)}

    @classmethod
    def from_json(cls, obj: Any) -> ReconstructionSource:
        """Parse :meth:`to_json`'s form; :class:`InvalidInput` if it is not one."""
        obj = _obj(obj, "reconstruction_source")
        keys = ("source_type", "rule_id", "source_event_id", "source_input_ids")
        return cls(**{k: obj[k] for k in keys if k in obj})


# -- InputState ---------------------------------------------------------------------------------


def _history(value: Any) -> tuple[InputStateHistoryEntry, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidInput("history", f"must be a list of InputStateHistoryEntry, got {type(value).__name__}")
    for i, e in enumerate(value):
        if type(e) is not InputStateHistoryEntry:
            raise InvalidInput(f"history[{i}]", f"must be an InputStateHistoryEntry, got {type(e).__name__}")
    return tuple(value)


_ACCEPTED = InputLifecycleState.ACCEPTED
_STATES: dict[str, InputLifecycleState] = {m.value: m for m in InputLifecycleState}
_NOW: Any = attrs.NOTHING  # the default of created_at: the wall clock


# init=False: the __init__ below replaces the one attrs would generate (it set every field,
# then a post-init hook converted and set most of them again): input states are built on the
# hot path, two per boundary in the benchmark, and this is about half the cost. Equality,
# hashing, repr, evolve and the field list are still attrs'.
@attrs.frozen(kw_only=True, init=False)
class InputState:
    """The persisted state of one input of a runtime, keyed by ``input_id``.

    ``created_at`` defaults to the wall clock at construction (as upstream's
    ``InputState::new_accepted``) and ``updated_at`` to ``created_at``; the store keeps both
    as given (a boundary commit stamps ``last_run_id`` and ``last_boundary_sequence`` but
    never touches ``updated_at``).
    """

    input_id: str
    current_state: InputLifecycleState = InputLifecycleState.ACCEPTED
    policy: PolicySnapshot | None = None
    terminal_outcome: InputTerminalOutcome | None = None
    durability: InputDurability | None = None
    idempotency_key: str | None = None
    attempt_count: int = 0
    recovery_count: int = 0
    history: tuple[InputStateHistoryEntry, ...] = ()
    reconstruction_source: ReconstructionSource | None = None
    #: The payload used to rebuild queued work: any plain JSON value (checked on write).
    persisted_input: Any = None
    last_run_id: str | None = None
    last_boundary_sequence: int | None = None
    created_at: datetime = attrs.field(factory=utc_now)
    #: ``None`` (the default) means "equal to ``created_at``".
    updated_at: datetime = None  # type: ignore[assignment]

    def __init__(
        self,
        *,
        input_id: Any,
        current_state: Any = _ACCEPTED,
        policy: Any = None,
        terminal_outcome: Any = None,
        durability: Any = None,
        idempotency_key: Any = None,
        attempt_count: Any = 0,
        recovery_count: Any = 0,
        history: Any = (),
        reconstruction_source: Any = None,
        persisted_input: Any = None,
        last_run_id: Any = None,
        last_boundary_sequence: Any = None,
        created_at: Any = _NOW,
        updated_at: Any = None,
    ) -> None:
        # Fields are checked (and converted) in declaration order, so the first bad one is
        # the one named; values already in their canonical type take the fast branch.
        if created_at is _NOW:
            created_at = utc_now()
        _SET_INPUT_ID(self, run_id_text(input_id, "input_id"))
        if type(current_state) is not InputLifecycleState:
            state = _STATES.get(current_state) if type(current_state) is str else None
            current_state = state or _enum(InputLifecycleState, "current_state")(current_state)
        _SET_CURRENT_STATE(self, current_state)
        if policy is not None and type(policy) is not PolicySnapshot:
            raise InvalidInput("policy", f"must be a PolicySnapshot or None, got {type(policy).__name__}")
        _SET_POLICY(self, policy)
        if terminal_outcome is not None and type(terminal_outcome) is not InputTerminalOutcome:
            got = type(terminal_outcome).__name__
            raise InvalidInput("terminal_outcome", f"must be a InputTerminalOutcome or None, got {got}")
        _SET_TERMINAL_OUTCOME(self, terminal_outcome)
        if reconstruction_source is not None and type(reconstruction_source) is not ReconstructionSource:
            got = type(reconstruction_source).__name__
            raise InvalidInput("reconstruction_source", f"must be a ReconstructionSource or None, got {got}")
        _SET_RECONSTRUCTION_SOURCE(self, reconstruction_source)
        if durability is not None and type(durability) is not InputDurability:
            durability = _enum(InputDurability, "durability")(durability)
        _SET_DURABILITY(self, durability)
        if idempotency_key is not None:
            if type(idempotency_key) is not str:
                raise InvalidInput("idempotency_key", f"must be a str or None, got {type(idempotency_key).__name__}")
            check_utf8(idempotency_key, "idempotency_key")
        _SET_IDEMPOTENCY_KEY(self, idempotency_key)
        if type(attempt_count) is not int or not 0 <= attempt_count <= _MAX_INT:
            check_count(attempt_count, "attempt_count")
        _SET_ATTEMPT_COUNT(self, attempt_count)
        if type(recovery_count) is not int or not 0 <= recovery_count <= _MAX_INT:
            check_count(recovery_count, "recovery_count")
        _SET_RECOVERY_COUNT(self, recovery_count)
        if history or type(history) is not tuple:
            history = _history(history)
        _SET_HISTORY(self, history)
        _SET_PERSISTED_INPUT(self, persisted_input)
        if last_run_id is not None:
            last_run_id = run_id_text(last_run_id, "last_run_id")
        _SET_LAST_RUN_ID(self, last_run_id)
        if last_boundary_sequence is not None:
            check_count(last_boundary_sequence, "last_boundary_sequence")
        _SET_LAST_BOUNDARY_SEQUENCE(self, last_boundary_sequence)
        if type(created_at) is not datetime or created_at.tzinfo is not timezone.utc:
            created_at = check_time(created_at, "created_at")
        _SET_CREATED_AT(self, created_at)
        if updated_at is None:
            updated_at = created_at
        elif type(updated_at) is not datetime or updated_at.tzinfo is not timezone.utc:
            updated_at = check_time(updated_at, "updated_at")
        _SET_UPDATED_AT(self, updated_at)

    @property
    def is_terminal(self) -> bool:
        """True if ``current_state`` is terminal."""
        return self.current_state.is_terminal

    def to_json(self) -> dict[str, Any]:
        """Upstream's serde form; ``None`` fields and an empty history are omitted."""
        out: dict[str, Any] = {"input_id": self.input_id, "current_state": self.current_state.value}
        if self.policy is not None:
            out["policy"] = self.policy.to_json()
        if self.terminal_outcome is not None:
            out["terminal_outcome"] = self.terminal_outcome.to_json()
        if self.durability is not None:
            out["durability"] = self.durability.value
        if self.idempotency_key is not None:
            out["idempotency_key"] = self.idempotency_key
        out["attempt_count"] = self.attempt_count
        out["recovery_count"] = self.recovery_count
        if self.history:
            out["history"] = [e.to_json() for e in self.history]
        if self.reconstruction_source is not None:
            out["reconstruction_source"] = self.reconstruction_source.to_json()
        if self.persisted_input is not None:
            out["persisted_input"] = self.persisted_input
        if self.last_run_id is not None:
            out["last_run_id"] = self.last_run_id
        if self.last_boundary_sequence is not None:
            out["last_boundary_sequence"] = self.last_boundary_sequence
        out["created_at"] = _wire_time(self.created_at)
        out["updated_at"] = _wire_time(self.updated_at)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> InputState:
        """Parse the serde form (missing optional fields take their defaults).

        Raises:
            InvalidInput: naming the field, if ``obj`` is not an input state.
        """
        obj = _obj(obj, "input state")
        return cls(
            input_id=_req(obj, "input_id", "input state"),
            current_state=_req(obj, "current_state", "input state"),
            policy=None if obj.get("policy") is None else PolicySnapshot.from_json(obj["policy"]),
            terminal_outcome=(
                None if obj.get("terminal_outcome") is None else InputTerminalOutcome.from_json(obj["terminal_outcome"])
            ),
            durability=obj.get("durability"),
            idempotency_key=obj.get("idempotency_key"),
            attempt_count=obj.get("attempt_count", 0),
            recovery_count=obj.get("recovery_count", 0),
            history=[InputStateHistoryEntry.from_json(e) for e in _list(obj.get("history", []), "history")],
            reconstruction_source=(
                None
                if obj.get("reconstruction_source") is None
                else ReconstructionSource.from_json(obj["reconstruction_source"])
            ),
            persisted_input=obj.get("persisted_input"),
            last_run_id=obj.get("last_run_id"),
            last_boundary_sequence=obj.get("last_boundary_sequence"),
            created_at=_parse_time(_req(obj, "created_at", "input state"), "created_at"),
            updated_at=_parse_time(_req(obj, "updated_at", "input state"), "updated_at"),
        )


# The slots' own setters: a frozen class refuses setattr, and these are about twice as fast
# as object.__setattr__ (__init__ sets 15 fields).
_SET_INPUT_ID = InputState.__dict__["input_id"].__set__
_SET_CURRENT_STATE = InputState.__dict__["current_state"].__set__
_SET_POLICY = InputState.__dict__["policy"].__set__
_SET_TERMINAL_OUTCOME = InputState.__dict__["terminal_outcome"].__set__
_SET_DURABILITY = InputState.__dict__["durability"].__set__
_SET_IDEMPOTENCY_KEY = InputState.__dict__["idempotency_key"].__set__
_SET_ATTEMPT_COUNT = InputState.__dict__["attempt_count"].__set__
_SET_RECOVERY_COUNT = InputState.__dict__["recovery_count"].__set__
_SET_HISTORY = InputState.__dict__["history"].__set__
_SET_RECONSTRUCTION_SOURCE = InputState.__dict__["reconstruction_source"].__set__
_SET_PERSISTED_INPUT = InputState.__dict__["persisted_input"].__set__
_SET_LAST_RUN_ID = InputState.__dict__["last_run_id"].__set__
_SET_LAST_BOUNDARY_SEQUENCE = InputState.__dict__["last_boundary_sequence"].__set__
_SET_CREATED_AT = InputState.__dict__["created_at"].__set__
_SET_UPDATED_AT = InputState.__dict__["updated_at"].__set__


def _list(value: Any, field: str) -> list[Any]:
    if type(value) is not list:
        raise InvalidInput(field, f"must be a JSON array, got {type(value).__name__}")
    return value
