"""Records of the runtime store (SEMANTICS.md §6.1) other than input states (those are in
``_input_state``): run boundaries, receipts, session deltas and the runtime state.

Every record validates on construction and raises :class:`InvalidInput` naming the field;
run ids are canonical lowercase UUID text (SEMANTICS.md §1.1). ``to_json()`` and
``from_json()`` give and read upstream's serde form.

The store never interprets runtime states (SEMANTICS.md §6.4): :data:`RUNTIME_MOVES` is data
for callers (and documentation), not a rule the store enforces.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

from json.encoder import encode_basestring as _quote

from ._codec import _dumps, check_utf8
from ._errors import InvalidInput
from ._input_state import _count, _enum, _list, _obj, _opt_str, _req, _uuid, _uuids


def uuid7() -> str:
    """A new UUIDv7 (time-ordered, RFC 9562) as canonical text: a fresh ``InputId``.

    Input states are listed in input-id order, which for UUIDv7 ids is creation order (to
    the millisecond).
    """
    # Built as text (a third cheaper than 128-bit integer arithmetic): 48 bits of Unix
    # milliseconds, the version nibble 7, 12 random bits, the variant (0b10 and 2 random
    # bits: one of 8, 9, a, b), then 60 more random bits; 74 random bits from os.urandom.
    try:
        r = _RANDOM.popleft()
    except IndexError:
        r = _refill()
    ms = (_time_ns() // 1_000_000).to_bytes(8, "big").hex()[4:]  # the low 48 bits
    return f"{ms[:8]}-{ms[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"


_time_ns = time.time_ns
#: A random hex digit -> the UUID variant digit 0b10xx keeping its two low bits.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
#: os.urandom output for uuid7, as 20 hex digits per id, drawn 2,000 bytes (100 ids) at a
#: time: a getrandom call per id cost more than the rest of uuid7, and it releases the GIL,
#: so the caller could lose the GIL to the writer thread once per input id. ``popleft`` is
#: atomic, so no two threads get the same digits; a forked child starts with an empty pool
#: (it must not hand out its parent's ids).
_RANDOM: deque[str] = deque()


def _refill() -> str:
    h = os.urandom(2000).hex()
    _RANDOM.extend([h[i : i + 20] for i in range(20, len(h), 20)])
    return h[:20]


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_RANDOM.clear)


# -- enums ------------------------------------------------------------------------------------


class RunApplyBoundary(str, enum.Enum):
    """Where in a run a boundary is applied."""

    IMMEDIATE = "immediate"
    RUN_START = "run_start"
    RUN_CHECKPOINT = "run_checkpoint"

    def __str__(self) -> str:
        return self.value


class RuntimeState(str, enum.Enum):
    """The state of a runtime; stopped and destroyed are terminal. Legal moves:
    :data:`RUNTIME_MOVES`."""

    INITIALIZING = "initializing"
    IDLE = "idle"
    RUNNING = "running"
    RECOVERING = "recovering"
    RETIRED = "retired"
    STOPPED = "stopped"
    DESTROYED = "destroyed"

    @property
    def is_terminal(self) -> bool:
        """True for stopped and destroyed."""
        return not RUNTIME_MOVES[self]

    @property
    def accepts_input(self) -> bool:
        """Only idle and running runtimes accept input."""
        return self in (RuntimeState.IDLE, RuntimeState.RUNNING)

    @property
    def processes_queue(self) -> bool:
        """Idle and retired runtimes process their queue (retired ones drain it)."""
        return self in (RuntimeState.IDLE, RuntimeState.RETIRED)

    def __str__(self) -> str:
        return self.value


_R = RuntimeState
_ENDS = frozenset({_R.STOPPED, _R.DESTROYED})
RUNTIME_MOVES: dict[RuntimeState, frozenset[RuntimeState]] = {
    _R.INITIALIZING: frozenset({_R.IDLE}) | _ENDS,
    _R.IDLE: frozenset({_R.RUNNING, _R.RETIRED, _R.RECOVERING}) | _ENDS,
    _R.RUNNING: frozenset({_R.IDLE, _R.RECOVERING, _R.RETIRED}) | _ENDS,
    _R.RECOVERING: frozenset({_R.IDLE, _R.RUNNING}) | _ENDS,
    _R.RETIRED: frozenset({_R.RUNNING}) | _ENDS,
    _R.STOPPED: frozenset(),
    _R.DESTROYED: frozenset(),
}


# -- receipts and session deltas --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunBoundaryReceipt:
    """Proof that a boundary of run ``run_id`` was committed: keyed by ``(runtime, run_id,
    sequence)``; ``sequence`` counts from 0 per runtime and run.

    ``commit_session_boundary`` mints it inside the transaction (sequence, digest and
    message count), so a returned receipt is exactly what is stored. Equality covers every
    field.
    """

    run_id: str = attrs.field(converter=_uuid("run_id"))
    boundary: RunApplyBoundary = attrs.field(
        default=RunApplyBoundary.IMMEDIATE, converter=_enum(RunApplyBoundary, "boundary")
    )
    contributing_input_ids: tuple[str, ...] = attrs.field(default=(), converter=_uuids("contributing_input_ids"))
    conversation_digest: str | None = attrs.field(default=None, validator=_opt_str)
    message_count: int = attrs.field(default=0, validator=_count)
    sequence: int = attrs.field(default=0, validator=_count)

    def to_json(self) -> dict[str, Any]:
        """Upstream's serde form (``conversation_digest`` omitted when None; ``sequence``
        last)."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "boundary": self.boundary.value,
            "contributing_input_ids": list(self.contributing_input_ids),
        }
        if self.conversation_digest is not None:
            out["conversation_digest"] = self.conversation_digest
        out["message_count"] = self.message_count
        out["sequence"] = self.sequence
        return out

    @classmethod
    def from_json(cls, obj: Any) -> RunBoundaryReceipt:
        """Parse the serde form; :class:`InvalidInput` naming the field if it is not one."""
        obj = _obj(obj, "receipt")
        return cls(
            run_id=_req(obj, "run_id", "receipt"),
            boundary=_req(obj, "boundary", "receipt"),
            contributing_input_ids=_list(obj.get("contributing_input_ids", []), "contributing_input_ids"),
            conversation_digest=obj.get("conversation_digest"),
            message_count=obj.get("message_count", 0),
            sequence=_req(obj, "sequence", "receipt"),
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode_session = json.JSONDecoder(parse_constant=_reject_constant).decode  # built once


def conversation_digest(messages: list[Any]) -> str:
    """The conversation digest of a session's ``messages``: the lowercase hex SHA-256 of
    their compact JSON (``separators=(",", ":")``, ``ensure_ascii=False``, key order as
    given), encoded as UTF-8 (SEMANTICS.md §6.3).

    Deterministic for equal message arrays. It equals upstream's digest when the snapshot
    was written by Rust's ``serde_json`` and holds no floats that the two format
    differently (Python writes ``1e+16`` where Rust writes ``1e16``).
    """
    try:
        text = _dumps(messages)  # compact, non-ASCII kept, no NaN: json.dumps as documented
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("messages", "contain a lone surrogate (\\ud800-\\udfff); not UTF-8 text") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput("messages", f"are not JSON ({exc})") from None
    return hashlib.sha256(data).hexdigest()


def _to_bytes(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    hint = "; encode it (text.encode('utf-8'))" if isinstance(value, str) else ""
    raise InvalidInput("session_snapshot", f"must be bytes (UTF-8 JSON), got {type(value).__name__}{hint}")


@attrs.frozen
class SessionDelta:
    """A new session snapshot for a runtime: ``session_snapshot`` is the serialised session,
    UTF-8 JSON of an object with a ``messages`` list (upstream's ``Session``).

    The snapshot is parsed once, here; ``conversation_digest`` and ``message_count`` are
    derived from its messages (see :func:`conversation_digest`). The bytes are stored
    exactly as given.

    Raises:
        InvalidInput: ``session_snapshot`` is not bytes, not UTF-8 JSON, not an object, or
            has no ``messages`` list.
    """

    session_snapshot: bytes = attrs.field(converter=_to_bytes)
    conversation_digest: str = attrs.field(init=False, eq=False, repr=False)
    message_count: int = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        try:
            session = _decode_session(self.session_snapshot.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidInput("session_snapshot", f"is not UTF-8 JSON ({exc})") from None
        if type(session) is not dict:
            raise InvalidInput("session_snapshot", f"must be a JSON object (a session), got {type(session).__name__}")
        messages = session.get("messages")
        if type(messages) is not list:
            got = "no 'messages' key" if "messages" not in session else f"'messages' is {type(messages).__name__}"
            raise InvalidInput("session_snapshot", f"must have a 'messages' list; {got}")
        object.__setattr__(self, "conversation_digest", conversation_digest(messages))
        object.__setattr__(self, "message_count", len(messages))

    @classmethod
    def from_session(cls, session: Mapping[str, Any]) -> SessionDelta:
        """A delta holding ``session`` (a dict with a ``messages`` list) as compact JSON.

        Raises:
            InvalidInput: ``session`` is not a mapping with a ``messages`` list, holds a
                value that is not JSON (or NaN), a key that is not a str at any depth, or a
                string with a lone surrogate (not UTF-8 text).
        """
        if type(session) is not dict and not isinstance(session, Mapping):
            raise InvalidInput("session", f"must be a JSON object (a dict), got {type(session).__name__}")
        messages = session.get("messages")
        if type(messages) is not list:
            raise InvalidInput("session", f"must have a 'messages' list, got {type(messages).__name__}")
        if type(session) is not dict:
            session = dict(session)
        # The C encoder refuses non-JSON values and NaN. Compact JSON is a fixed point of
        # parse-then-encode, so the digest of the given messages equals the digest of the
        # messages parsed back from these bytes: no need to parse what we just wrote.
        parts = _encode_members(session)
        if parts is not None:
            raw, text = parts
        else:  # an encoding error (raised here as before) or a key that is not a str
            try:
                raw = _dumps(session)
            except (TypeError, ValueError, RecursionError) as exc:
                raise InvalidInput("session", f"is not JSON ({exc})") from None
            text = _dumps(messages)
        # What the encoder lets through but JSON cannot hold: a key that is not a str (it
        # would write 1 as "1", and {1: a, "1": b} as a duplicate key) and a lone surrogate.
        try:
            snapshot = raw.encode("utf-8")
            keys_ok = _str_keys(session)
            if not keys_ok:
                _check_text(session, "session", 0)  # raises, naming the path
                raise AssertionError("session: _str_keys and _check_text disagree")  # pragma: no cover
        except UnicodeEncodeError:
            _check_text(session, "session", 0)  # raises, naming the path
            raise  # pragma: no cover - the walk finds what the encoder could not encode
        except RecursionError:
            raise InvalidInput("session", "is nested too deeply") from None
        digest = _sha256(text.encode("utf-8")).hexdigest()
        delta = object.__new__(cls)
        object.__setattr__(delta, "session_snapshot", snapshot)
        object.__setattr__(delta, "conversation_digest", digest)
        object.__setattr__(delta, "message_count", len(messages))
        return delta


_sha256 = hashlib.sha256


def _str_keys(value: Any) -> bool:
    """True if every dict key in ``value`` (at any depth) is a ``str``: the fast check.
    Subclasses of dict, list and str count as theirs: the encoder writes them as JSON.
    (~3 µs for a session of 8 messages; a loop over a stack instead of the recursion
    measured slower.)"""
    t = type(value)
    if t is dict or (t is not list and t is not tuple and isinstance(value, dict)):
        for k in value:
            if type(k) is not str and not isinstance(k, str):
                return False
        return _items_str_keys(value.values())
    if t is list or t is tuple or isinstance(value, (list, tuple)):
        return _items_str_keys(value)
    return True


def _items_str_keys(items: Any) -> bool:
    for v in items:
        tv = type(v)
        if tv is str or tv is int or tv is float or tv is bool or v is None:
            continue
        if not _str_keys(v):
            return False
    return True


def _check_text(value: Any, path: str, depth: int) -> None:
    """The slow walk after :func:`_str_keys` or UTF-8 encoding failed: raise
    :class:`InvalidInput` naming the first key that is not a str or string that is not
    UTF-8 text."""
    if depth > 900:
        raise InvalidInput(path, "is nested too deeply")
    if isinstance(value, str):
        check_utf8(value, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(path, f"key {k!r} is a {type(k).__name__}; JSON keys are strings")
            check_utf8(k, f"{path} key {k!r}")
            _check_text(v, f"{path}[{k!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_text(v, f"{path}[{i}]", depth + 1)


def _encode_members(session: dict[str, Any]) -> tuple[str, str] | None:
    """``(_dumps(session), _dumps(session["messages"]))`` with the messages encoded once:
    the C encoder writes a dict as ``{`` + ``key:value`` pairs joined by ``,`` + ``}``,
    each value exactly as it encodes that value alone, so the messages' text is a piece of
    the session's (byte-identical; property-tested). ``None`` when that does not hold (a
    key that is not a ``str``, which the encoder would convert) or when encoding fails:
    then the caller takes the plain path, which raises the error it always raised."""
    pieces = []
    messages = ""
    try:
        for k, v in session.items():
            if type(k) is not str:
                return None
            text = _dumps(v)
            if k == "messages":
                messages = text
            pieces.append(f"{_quote(k)}:{text}")
    except (TypeError, ValueError, RecursionError):
        return None
    return "{" + ",".join(pieces) + "}", messages
