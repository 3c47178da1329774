"""A verbatim copy (docstrings dropped) of the kernel-state classes and of the run snapshots
as they were before their hand-written constructors: the reference that
``test_kernel_fastpaths`` compares the current code with, value for value and error for
error. Not imported by the package; keep it as it is, except for deliberate rule changes
made to both (2026-11-25: an item of ``fields`` that is not a (name, value) pair is
InvalidInput, not a bare TypeError/ValueError or a string unpacked as a pair; later that
day: ``KernelFields`` checks its argument's type itself, ``KSeq`` refuses a set (its order
follows the hash seed), a bad scalar in ``from_json`` is named by its path, and kernel
values nest at most 64 levels in a state's canonical text)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import attrs

from mobstore.storage import InvalidInput

# -- reference implementation (storage/_kernel_state.py and the snapshots of
# storage/_run_records.py before the hand-written constructors) ------------------------------

U64_MAX = 2**64 - 1
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
#: The string encoder ``_dumps`` uses for every str (keys and values alike); the direct
#: canonical writers below use it so their output is byte-identical to ``_dumps(to_json())``.
_quote = json.encoder.encode_basestring


class KernelValue:

    __slots__ = ()
    rank: ClassVar[int]
    tag: ClassVar[str]

    def sort_key(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _canonical(self) -> str:
        raise NotImplementedError

    @staticmethod
    def from_json(obj: Any, field: str = "kernel value") -> KernelValue:
        return _from_json(obj, field)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, KernelValue):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, KernelValue):
            return NotImplemented
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, KernelValue):
            return NotImplemented
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, KernelValue):
            return NotImplemented
        return self.sort_key() >= other.sort_key()


def _check_str(value: Any, field: str) -> str:
    if type(value) is not str:
        raise InvalidInput(field, f"must be a str, got {type(value).__name__}")
    return value


def _check_bool(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not bool:
        raise InvalidInput("KBool.value", f"must be a bool, got {type(value).__name__}")


def _check_u64(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not int:
        raise InvalidInput("KU64.value", f"must be an int, got {type(value).__name__}")
    if not 0 <= value <= U64_MAX:
        raise InvalidInput("KU64.value", f"{value} is outside the unsigned 64-bit range 0..2**64-1")


def _check_kstr(inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if type(value) is not str:  # the field name is built only on failure (hot path)
        _check_str(value, f"{type(inst).__name__}.{attr.name}")


def _values(items: Iterable[Any], field: str) -> list[KernelValue]:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidInput(field, f"must be an iterable of kernel values, got {type(items).__name__}")
    return [kernel_value(v, f"{field}[{i}]") for i, v in enumerate(items)]


def _sort_key(v: KernelValue) -> tuple[Any, ...]:
    return v.sort_key()


def _seq(items: Iterable[Any]) -> tuple[KernelValue, ...]:
    if isinstance(items, (set, frozenset)):
        raise InvalidInput("KSeq.items", "must be ordered (a list or tuple), got a set; a set of values is a KSet")
    return tuple(_values(items, "KSeq.items"))


def _set(items: Iterable[Any]) -> tuple[KernelValue, ...]:
    return tuple(sorted(set(_values(items, "KSet.items")), key=_sort_key))


def _entries(entries: Any) -> tuple[tuple[KernelValue, KernelValue], ...]:
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise InvalidInput("KMap.entries", f"must be a mapping or (key, value) pairs, got {type(entries).__name__}")
    merged: dict[KernelValue, KernelValue] = {}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidInput(f"KMap.entries[{i}]", f"must be a (key, value) pair, got {pair!r}")
        merged[kernel_value(pair[0], f"KMap.entries[{i}][0]")] = kernel_value(pair[1], f"KMap.entries[{i}][1]")
    return tuple(sorted(merged.items(), key=lambda kv: kv[0].sort_key()))


@attrs.frozen
class KBool(KernelValue):

    value: bool = attrs.field(validator=_check_bool)
    rank: ClassVar[int] = 0
    tag: ClassVar[str] = "bool"

    def sort_key(self) -> tuple[Any, ...]:
        return (0, self.value)

    def to_json(self) -> dict[str, Any]:
        return {"type": "bool", "value": self.value}

    def _canonical(self) -> str:
        return '{"type":"bool","value":true}' if self.value else '{"type":"bool","value":false}'


@attrs.frozen
class KU64(KernelValue):

    value: int = attrs.field(validator=_check_u64)
    rank: ClassVar[int] = 1
    tag: ClassVar[str] = "u64"

    def sort_key(self) -> tuple[Any, ...]:
        return (1, self.value)

    def to_json(self) -> dict[str, Any]:
        return {"type": "u64", "value": self.value}

    def _canonical(self) -> str:
        return f'{{"type":"u64","value":{self.value}}}'  # an exact int (validated): str == repr


@attrs.frozen
class KString(KernelValue):

    value: str = attrs.field(validator=_check_kstr)
    rank: ClassVar[int] = 2
    tag: ClassVar[str] = "string"

    def sort_key(self) -> tuple[Any, ...]:
        return (2, self.value)

    def to_json(self) -> dict[str, Any]:
        return {"type": "string", "value": self.value}

    def _canonical(self) -> str:
        return '{"type":"string","value":' + _quote(self.value) + "}"


@attrs.frozen
class KNamedVariant(KernelValue):

    enum_name: str = attrs.field(validator=_check_kstr)
    variant: str = attrs.field(validator=_check_kstr)
    rank: ClassVar[int] = 3
    tag: ClassVar[str] = "named_variant"

    def sort_key(self) -> tuple[Any, ...]:
        return (3, self.enum_name, self.variant)

    def to_json(self) -> dict[str, Any]:
        return {"type": "named_variant", "enum_name": self.enum_name, "variant": self.variant}

    def _canonical(self) -> str:
        return '{"type":"named_variant","enum_name":' + _quote(self.enum_name) + ',"variant":' + _quote(self.variant) + "}"


@attrs.frozen
class KSeq(KernelValue):

    items: tuple[KernelValue, ...] = attrs.field(default=(), converter=_seq)
    rank: ClassVar[int] = 4
    tag: ClassVar[str] = "seq"

    def sort_key(self) -> tuple[Any, ...]:
        return (4, tuple(v.sort_key() for v in self.items))

    def to_json(self) -> dict[str, Any]:
        return {"type": "seq", "items": [v.to_json() for v in self.items]}

    def _canonical(self) -> str:
        return '{"type":"seq","items":[' + ",".join([v._canonical() for v in self.items]) + "]}"


@attrs.frozen
class KSet(KernelValue):

    items: tuple[KernelValue, ...] = attrs.field(default=(), converter=_set)
    rank: ClassVar[int] = 5
    tag: ClassVar[str] = "set"

    def sort_key(self) -> tuple[Any, ...]:
        return (5, tuple(v.sort_key() for v in self.items))

    def to_json(self) -> dict[str, Any]:
        return {"type": "set", "items": [v.to_json() for v in self.items]}

    def _canonical(self) -> str:
        return '{"type":"set","items":[' + ",".join([v._canonical() for v in self.items]) + "]}"


@attrs.frozen
class KMap(KernelValue):

    entries: tuple[tuple[KernelValue, KernelValue], ...] = attrs.field(default=(), converter=_entries)
    rank: ClassVar[int] = 6
    tag: ClassVar[str] = "map"

    def sort_key(self) -> tuple[Any, ...]:
        return (6, tuple((k.sort_key(), v.sort_key()) for k, v in self.entries))

    def to_json(self) -> dict[str, Any]:
        return {"type": "map", "entries": [[k.to_json(), v.to_json()] for k, v in self.entries]}

    def _canonical(self) -> str:
        pairs = ",".join(["[" + k._canonical() + "," + v._canonical() + "]" for k, v in self.entries])
        return '{"type":"map","entries":[' + pairs + "]}"


@attrs.frozen
class KNone(KernelValue):

    rank: ClassVar[int] = 7
    tag: ClassVar[str] = "none"

    def sort_key(self) -> tuple[Any, ...]:
        return (7,)

    def to_json(self) -> dict[str, Any]:
        return {"type": "none"}

    def _canonical(self) -> str:
        return '{"type":"none"}'


def kernel_value(value: Any, field: str = "kernel value") -> KernelValue:
    if isinstance(value, KernelValue):
        return value
    t = type(value)
    if t is bool:
        return KBool(value)
    if t is int:
        if not 0 <= value <= U64_MAX:
            raise InvalidInput(field, f"{value} is outside the unsigned 64-bit range 0..2**64-1")
        return KU64(value)
    if t is str:
        return KString(value)
    if value is None:
        return KNone()
    if t is list or t is tuple:
        return KSeq(value)
    if t is set or t is frozenset:
        return KSet(value)
    if t is dict:
        return KMap(value)
    raise InvalidInput(field, f"{t.__name__} is not a kernel value (KBool, KU64, KString, ...)")


def _from_json(obj: Any, field: str) -> KernelValue:
    if type(obj) is not dict:
        raise InvalidInput(field, f"must be a tagged object {{'type': ...}}, got {type(obj).__name__}")
    tag = obj.get("type")
    try:
        try:
            if tag == "bool":
                return KBool(obj["value"])
            if tag == "u64":
                return KU64(obj["value"])
            if tag == "string":
                return KString(obj["value"])
            if tag == "named_variant":
                return KNamedVariant(obj["enum_name"], obj["variant"])
        except InvalidInput as exc:
            raise InvalidInput(field, exc.problem) from None
        if tag == "none":
            return KNone()
        if tag == "seq" or tag == "set":
            items = obj["items"]
            if type(items) is not list:
                raise InvalidInput(f"{field}.items", f"must be a list, got {type(items).__name__}")
            vals = [_from_json(v, f"{field}.items[{i}]") for i, v in enumerate(items)]
            return KSeq(vals) if tag == "seq" else KSet(vals)
        if tag == "map":
            entries = obj["entries"]
            if type(entries) is not list:
                raise InvalidInput(f"{field}.entries", f"must be a list, got {type(entries).__name__}")
            pairs = []
            for i, e in enumerate(entries):
                if type(e) is not list or len(e) != 2:
                    raise InvalidInput(f"{field}.entries[{i}]", "must be a [key, value] pair")
                key = _from_json(e[0], f"{field}.entries[{i}][0]")
                pairs.append((key, _from_json(e[1], f"{field}.entries[{i}][1]")))
            return KMap(pairs)
    except KeyError as exc:
        raise InvalidInput(field, f"a {tag!r} value lacks its {exc.args[0]!r} member") from None
    raise InvalidInput(field, f"unknown kernel value type {tag!r}")


# -- KernelState -------------------------------------------------------------------------


class KernelFields(Mapping[str, KernelValue]):

    __slots__ = ("_d", "_hash")

    def __init__(self, fields: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._hash: int | None = None
        if type(fields) is not dict and (
            isinstance(fields, (str, bytes)) or not isinstance(fields, (Mapping, Iterable))
        ):
            raise InvalidInput(
                "KernelState.fields", f"must be a mapping of name to kernel value, got {type(fields).__name__}"
            )
        if type(fields) is dict:
            # The hot path of every KernelState a caller builds: a dict of str to
            # KernelValue needs no conversion, only the check and a sorted copy.
            for name, value in fields.items():
                if type(name) is not str or not isinstance(value, KernelValue):
                    break
            else:
                self._d: dict[str, KernelValue] = dict(sorted(fields.items()))
                return
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        d: dict[str, KernelValue] = {}
        for pair in pairs:
            if (type(pair) is not tuple and type(pair) is not list) or len(pair) != 2:
                # Not a (name, value) pair: "ab" would unpack as a -> "b", [1, 2, 3] fail
                # with a bare ValueError.
                raise InvalidInput(
                    "KernelState.fields",
                    f"must be a mapping of name to kernel value or (name, value) pairs; got an item of type {type(pair).__name__}",
                )
            name, value = pair
            _check_str(name, "KernelState.fields (a field name)")
            d[name] = kernel_value(value, f"KernelState.fields[{name!r}]")
        self._d = dict(sorted(d.items()))

    def __getitem__(self, name: str) -> KernelValue:
        return self._d[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KernelFields):
            return self._d == other._d
        if isinstance(other, Mapping):
            return self._d == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._d.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"KernelFields({self._d!r})"


def _fields(value: Any) -> KernelFields:
    if type(value) is dict:
        return KernelFields(value)
    if isinstance(value, KernelFields):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, (Mapping, Iterable)):
        raise InvalidInput(
            "KernelState.fields", f"must be a mapping of name to kernel value, got {type(value).__name__}"
        )
    return KernelFields(value)


def _check_phase(_inst: Any, _attr: Any, value: Any) -> None:
    _check_str(value, "KernelState.phase")


@attrs.frozen
class KernelState:

    phase: str = attrs.field(validator=_check_phase)
    fields: KernelFields = attrs.field(factory=KernelFields, converter=_fields)
    _canon: str | None = attrs.field(default=None, init=False, eq=False, hash=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "fields": {k: v.to_json() for k, v in self.fields.items()}}

    @classmethod
    def from_json(cls, obj: Any, field: str = "kernel state") -> KernelState:
        if type(obj) is not dict or "phase" not in obj:
            raise InvalidInput(field, "must be an object {'phase': str, 'fields': {...}}")
        fields = obj.get("fields", {})
        if type(fields) is not dict:
            raise InvalidInput(f"{field}.fields", f"must be an object, got {type(fields).__name__}")
        if type(obj["phase"]) is not str:
            raise InvalidInput(f"{field}.phase", f"must be a str, got {type(obj['phase']).__name__}")
        return cls(obj["phase"], {k: _from_json(v, f"{field}.fields[{k!r}]") for k, v in fields.items()})

    def canonical(self) -> str:
        text = self._canon
        if text is None:
            # Written directly, byte-identical to _dumps(self.to_json()) (property-tested),
            # at a sixth of the cost: every CAS argument a caller builds is encoded here. The
            # two commonest field types are inlined (a method call costs as much as they do).
            parts = []
            for k, v in self.fields._d.items():
                t = type(v)
                if t is KU64:
                    parts.append(f'{_quote(k)}:{{"type":"u64","value":{v.value}}}')  # type: ignore[attr-defined]
                elif t is KString:
                    parts.append(f'{_quote(k)}:{{"type":"string","value":{_quote(v.value)}}}')  # type: ignore[attr-defined]
                else:
                    parts.append(f"{_quote(k)}:{v._canonical()}")
            text = f'{{"phase":{_quote(self.phase)},"fields":{{{",".join(parts)}}}}}'
            object.__setattr__(self, "_canon", text)
        return text

    @classmethod
    def _from_stored(cls, text: str) -> KernelState:
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InvalidInput("kernel state", f"is not JSON ({exc})") from None
        state = cls.from_json(obj)
        object.__setattr__(state, "_canon", text)
        return state


def _state(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if type(value) is not KernelState:
            raise InvalidInput(field, f"must be a KernelState, got {type(value).__name__}")

    return check


@attrs.frozen
class FrameSnapshot:
    kernel_state: KernelState = attrs.field(validator=_state("FrameSnapshot.kernel_state"))


@attrs.frozen
class LoopSnapshot:
    kernel_state: KernelState = attrs.field(validator=_state("LoopSnapshot.kernel_state"))
