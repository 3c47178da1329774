"""Records of flow runs (SEMANTICS.md §3.1): frozen attrs values built with keywords.

Every record validates on construction and raises :class:`InvalidInput` naming the field.
Opaque JSON (``activation_params``, step outputs) is checked for its top-level shape here and
deeply (with the path of a bad value) when a command is built for a write, so nothing bad
is ever queued.

Conventions:
    * ledgers are tuples (append-only, immutable); maps are dicts. ``frames`` and ``loops``
      are in id order, ``root_step_outputs`` and each iteration's outputs in insertion order,
      ``loop_iteration_outputs`` in loop-id order;
    * a ``timestamp`` or ``created_at`` of ``None`` means "the store clock when the write is
      committed"; records read back from the store always carry the stored time.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ._codec import check_count, check_id, check_time, check_utf8, enum_converter
from ._errors import InvalidInput
from ._kernel_state import KernelState

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

#: The schema version of runs created by this port (upstream: 4 = frame-aware; 0 = legacy).
RUN_SCHEMA_VERSION = 4


class MobRunStatus(str, enum.Enum):
    """The lifecycle of a run; moves are in ``_run_status`` (SEMANTICS.md §3.2)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """Completed, failed and canceled are terminal: no move leaves them."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({MobRunStatus.COMPLETED, MobRunStatus.FAILED, MobRunStatus.CANCELED})


class StepRunStatus(str, enum.Enum):
    """The status of one step dispatch in the step ledger."""

    DISPATCHED = "dispatched"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value


def run_id_text(value: Any, field: str = "run_id") -> str:
    """A run id as stored: the lowercase hyphenated text of a UUID.

    Accepts a :class:`uuid.UUID` or its canonical 36-character string (either case).

    Raises:
        InvalidInput: naming ``field``, for anything else.
    """
    text = _RUN_IDS.get(value) if type(value) is str or type(value) is uuid.UUID else None
    if text is not None:  # seen before: every run call validates its run id, mostly the same few
        return text
    if type(value) is str:
        if len(value) == 36 and _UUID.fullmatch(value):
            text = value.lower()
        else:
            raise InvalidInput(field, f"{value!r} is not a canonical UUID string (8-4-4-4-12 hex digits)")
    elif isinstance(value, uuid.UUID):
        text = str(value)
    else:
        raise InvalidInput(field, f"must be a uuid.UUID or its canonical string, got {type(value).__name__}")
    if type(value) is str or type(value) is uuid.UUID:
        if len(_RUN_IDS) >= _RUN_IDS_MAX:
            _RUN_IDS.clear()
        _RUN_IDS[value] = text
    return text


#: Run ids validated recently (input -> stored text); cleared when full. Keys are exact
#: ``str`` or ``uuid.UUID`` values only, so a subclass with other equality never hits it.
_RUN_IDS: dict[Any, str] = {}
_RUN_IDS_MAX = 4096


_enum = enum_converter


def _id(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        check_id(value, field)

    return check


def _opt_time(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if value is not None:
        check_time(value, attr.name)


def _utc(value: Any) -> Any:
    # Normalise aware datetimes to UTC so records compare equal to what is read back.
    if isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None:
        return check_time(value, "time")
    return value


_validators_disabled = attrs.validators.get_disabled


def _state(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if type(value) is not KernelState:
            raise InvalidInput(field, f"must be a KernelState, got {type(value).__name__}")

    return check


@attrs.frozen
class StepLedgerEntry:
    """One row of a run's step ledger: a step dispatched to (or finished by) one meerkat.

    ``(step_id, meerkat_id, status)`` is the idempotency key of
    ``append_step_entry_if_absent``; ``output`` and ``timestamp`` are not part of it.
    """

    step_id: str = attrs.field(validator=_id("step_id"))
    meerkat_id: str = attrs.field(validator=_id("meerkat_id"))
    status: StepRunStatus = attrs.field(
        default=StepRunStatus.DISPATCHED, converter=_enum(StepRunStatus, "status")
    )
    output: Any = None
    timestamp: datetime | None = attrs.field(default=None, converter=_utc, validator=_opt_time)


@attrs.frozen
class FailureLedgerEntry:
    """One row of a run's failure ledger (upstream records flow-level failures under a
    synthetic step id such as ``"__flow__"``)."""

    step_id: str = attrs.field(validator=_id("step_id"))
    reason: str = attrs.field(default="")
    timestamp: datetime | None = attrs.field(default=None, converter=_utc, validator=_opt_time)

    @reason.validator
    def _check_reason(self, _attr: Any, value: Any) -> None:
        if type(value) is not str:
            raise InvalidInput("reason", f"must be a str, got {type(value).__name__}")
        check_utf8(value, "reason")


# The snapshots have hand-written __init__ methods (init=False; attrs still writes equality,
# hashing, repr, evolve and the field list, the validator included): every frame or loop CAS
# a caller makes builds one, and this checks inline and sets the slot once, at half the cost
# of the generated one. A failed check raises through the validator (and honours
# attrs.validators.set_disabled, as the generated one did).


@attrs.frozen(init=False)
class FrameSnapshot:
    """The flow_frame machine state of one frame."""

    kernel_state: KernelState = attrs.field(validator=_state("FrameSnapshot.kernel_state"))

    def __init__(self, kernel_state: KernelState) -> None:
        if type(kernel_state) is not KernelState and not _validators_disabled():
            _FRAME_STATE_CHECK(self, None, kernel_state)
        _SET_FRAME_STATE(self, kernel_state)


@attrs.frozen(init=False)
class LoopSnapshot:
    """The loop_iteration machine state of one loop instance."""

    kernel_state: KernelState = attrs.field(validator=_state("LoopSnapshot.kernel_state"))

    def __init__(self, kernel_state: KernelState) -> None:
        if type(kernel_state) is not KernelState and not _validators_disabled():
            _LOOP_STATE_CHECK(self, None, kernel_state)
        _SET_LOOP_STATE(self, kernel_state)


_FRAME_STATE_CHECK = attrs.fields(FrameSnapshot).kernel_state.validator
_LOOP_STATE_CHECK = attrs.fields(LoopSnapshot).kernel_state.validator
_SET_FRAME_STATE = FrameSnapshot.__dict__["kernel_state"].__set__
_SET_LOOP_STATE = LoopSnapshot.__dict__["kernel_state"].__set__


@attrs.frozen
class LoopIterationLedgerEntry:
    """Iteration ``iteration`` of loop ``loop_instance_id`` ran in body frame ``frame_id``.

    ``(loop_instance_id, iteration, frame_id)`` is its idempotency key: a replay of the same
    triple is not appended again; the same iteration with another frame is.
    """

    loop_instance_id: str = attrs.field(validator=_id("loop_instance_id"))
    iteration: int = attrs.field()
    frame_id: str = attrs.field(validator=_id("frame_id"))

    @iteration.validator
    def _check_iteration(self, _attr: Any, value: Any) -> None:
        check_count(value, "iteration")


def _ledger(cls: type, field: str) -> Any:
    def convert(value: Any) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise InvalidInput(field, f"must be a sequence of {cls.__name__}, got {type(value).__name__}")
        items = tuple(value)
        for i, item in enumerate(items):
            if type(item) is not cls:
                raise InvalidInput(f"{field}[{i}]", f"must be a {cls.__name__}, got {type(item).__name__}")
        return items

    return convert


def _snapshots(cls: type, field: str) -> Any:
    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidInput(field, f"must be a mapping of id to {cls.__name__}, got {type(value).__name__}")
        for k, v in value.items():
            check_id(k, f"{field} key")
            if type(v) is not cls:
                raise InvalidInput(f"{field}[{k!r}]", f"must be a {cls.__name__}, got {type(v).__name__}")
        return dict(sorted(value.items()))

    return convert


def _outputs(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise InvalidInput("root_step_outputs", f"must be a dict of step id to JSON, got {type(value).__name__}")
    for k in value:
        check_id(k, "root_step_outputs key")
    return dict(value)


def _loop_outputs(value: Any) -> dict[str, list[dict[str, Any]]]:
    field = "loop_iteration_outputs"
    if not isinstance(value, Mapping):
        raise InvalidInput(field, f"must be a dict of loop id to a list of dicts, got {type(value).__name__}")
    for loop_id in value:  # before sorting: keys of mixed types cannot be sorted
        check_id(loop_id, f"{field} key")
    out: dict[str, list[dict[str, Any]]] = {}
    for loop_id in sorted(value):
        iterations = value[loop_id]
        if type(iterations) is not list and type(iterations) is not tuple:
            raise InvalidInput(f"{field}[{loop_id!r}]", f"must be a list of dicts, got {type(iterations).__name__}")
        for i, outputs in enumerate(iterations):
            if type(outputs) is not dict:
                raise InvalidInput(f"{field}[{loop_id!r}][{i}]", f"must be a dict, got {type(outputs).__name__}")
            for k in outputs:
                check_id(k, f"{field}[{loop_id!r}][{i}] key")
        out[loop_id] = [dict(o) for o in iterations]
    return out


@attrs.frozen
class MobRun:
    """A flow run: the persisted aggregate (SEMANTICS.md §3.1).

    Identifying fields: ``run_id``, ``mob_id``, ``flow_id``; all others have defaults. The
    store never changes ``run_id``, ``mob_id``, ``flow_id``, ``created_at`` or
    ``activation_params`` after ``create_run``. ``created_at=None`` is stamped with the store
    clock at ``create_run``; ``completed_at`` is stamped by the store on the first move to a
    terminal status. Build a new run with :meth:`pending`.
    """

    run_id: str = attrs.field(converter=run_id_text)
    mob_id: str = attrs.field(validator=_id("mob_id"))
    flow_id: str = attrs.field(validator=_id("flow_id"))
    status: MobRunStatus = attrs.field(
        default=MobRunStatus.PENDING, converter=_enum(MobRunStatus, "status")
    )
    flow_state: KernelState = attrs.field(
        factory=lambda: KernelState("Pending"), validator=_state("flow_state")
    )
    activation_params: Any = attrs.field(factory=dict)
    created_at: datetime | None = attrs.field(default=None, converter=_utc, validator=_opt_time)
    completed_at: datetime | None = attrs.field(default=None, converter=_utc, validator=_opt_time)
    step_ledger: tuple[StepLedgerEntry, ...] = attrs.field(
        default=(), converter=_ledger(StepLedgerEntry, "step_ledger")
    )
    failure_ledger: tuple[FailureLedgerEntry, ...] = attrs.field(
        default=(), converter=_ledger(FailureLedgerEntry, "failure_ledger")
    )
    frames: dict[str, FrameSnapshot] = attrs.field(
        factory=dict, converter=_snapshots(FrameSnapshot, "frames")
    )
    loops: dict[str, LoopSnapshot] = attrs.field(
        factory=dict, converter=_snapshots(LoopSnapshot, "loops")
    )
    loop_iteration_ledger: tuple[LoopIterationLedgerEntry, ...] = attrs.field(
        default=(), converter=_ledger(LoopIterationLedgerEntry, "loop_iteration_ledger")
    )
    schema_version: int = attrs.field(default=RUN_SCHEMA_VERSION)
    root_step_outputs: dict[str, Any] = attrs.field(factory=dict, converter=_outputs)
    loop_iteration_outputs: dict[str, list[dict[str, Any]]] = attrs.field(
        factory=dict, converter=_loop_outputs
    )

    @schema_version.validator
    def _check_schema_version(self, _attr: Any, value: Any) -> None:
        check_count(value, "schema_version")

    @classmethod
    def pending(
        cls,
        *,
        mob_id: str,
        flow_id: str,
        activation_params: Any = None,
        flow_state: KernelState | None = None,
        created_at: datetime | None = None,
        run_id: uuid.UUID | str | None = None,
    ) -> MobRun:
        """A new pending run with a fresh v4 run id (unless ``run_id`` is given).

        Args:
            activation_params: the JSON the run was started with (default ``{}``).
            flow_state: the flow_run machine's state (default ``KernelState("Pending")``).
            created_at: its creation time; ``None`` stamps the store clock at ``create_run``.
        """
        return cls(
            run_id=uuid.uuid4() if run_id is None else run_id,
            mob_id=mob_id,
            flow_id=flow_id,
            activation_params={} if activation_params is None else activation_params,
            flow_state=KernelState("Pending") if flow_state is None else flow_state,
            created_at=created_at,
            schema_version=RUN_SCHEMA_VERSION,
        )

    @property
    def run_uuid(self) -> uuid.UUID:
        """``run_id`` as a :class:`uuid.UUID`."""
        return uuid.UUID(self.run_id)

    def step_outputs(self) -> dict[str, Any]:
        """The FlowContext view of step outputs: the root outputs, then for each loop in
        loop-id order the outputs of its last iteration merged on top (not stored)."""
        merged = dict(self.root_step_outputs)
        for iterations in self.loop_iteration_outputs.values():
            if iterations:
                merged.update(iterations[-1])
        return merged
