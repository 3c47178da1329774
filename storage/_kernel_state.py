"""KernelState and KernelValue: the opaque machine states a run, its frames and loops hold.

The store never interprets a kernel state: it only compares two of them (every CAS) and
replaces one with another. So the one thing this module must get right is equality, and it
does so by normalising on construction:

* ``KSet`` items are sorted and de-duplicated, ``KMap`` entries sorted by key (the last of
  two equal keys wins, as in a ``dict``), ``KernelState.fields`` sorted by name;
* the order used is upstream's derived ``Ord``: variants rank
  ``KBool < KU64 < KString < KNamedVariant < KSeq < KSet < KMap < KNone``; within a variant
  false < true, numbers numerically, strings by code point, named variants by
  ``(enum_name, variant)``, and containers lexicographically over their (sorted) elements.

After that, ``==`` on the frozen records is structural equality, and :meth:`canonical`
(compact JSON of the normalised record, keys in the fixed order of the wire table) is
injective: ``a == b`` if and only if ``a.canonical() == b.canonical()``. The store keeps the
canonical text, so a CAS is a byte comparison in SQL.

Representation (why classes and not plain Python values): ``1`` and ``"1"`` and ``True`` must
stay distinct (``KU64(1) != KString("1") != KBool(True)``), Python's ``True == 1`` would merge
them, and a Seq, a Set and a NamedVariant have no unambiguous plain-Python form.
:func:`kernel_value` converts the unambiguous plain values (bool, int, str, None, list/tuple,
set/frozenset, dict) for convenience; ``KernelState(fields=...)`` accepts them too.

The wire form (:meth:`KernelValue.to_json`, :meth:`KernelState.to_json`) is upstream's
tagged JSON: ``{"type": "u64", "value": 3}``, ``{"type": "map", "entries": [[k, v], ...]}``,
``{"phase": ..., "fields": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import attrs

from ._errors import InvalidInput

U64_MAX = 2**64 - 1
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
#: The string encoder ``_dumps`` uses for every str (keys and values alike); the direct
#: canonical writers below use it so their output is byte-identical to ``_dumps(to_json())``.
_quote = json.encoder.encode_basestring


class KernelValue:
    """Base of the eight kernel value variants (see the module docstring).

    Values are ordered (``<``) by upstream's derived ``Ord``, hashable and immutable.
    """

    __slots__ = ()
    rank: ClassVar[int]
    tag: ClassVar[str]

    def sort_key(self) -> tuple[Any, ...]:
        """The key realising upstream's ``Ord`` (variant rank first)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The tagged upstream wire form, as plain Python JSON values."""
        raise NotImplementedError

    def _canonical(self) -> str:
        """``_dumps(self.to_json())``, written directly (no intermediate dicts)."""
        raise NotImplementedError

    @staticmethod
    def from_json(obj: Any, field: str = "kernel value") -> KernelValue:
        """Parse the tagged wire form; raises :class:`InvalidInput` naming ``field``."""
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
    """``{"type": "bool", "value": bool}``"""

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
    """``{"type": "u64", "value": int}``: an unsigned 64-bit integer (``0..2**64-1``)."""

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
    """``{"type": "string", "value": str}``; ordered by code point."""

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
    """``{"type": "named_variant", "enum_name": str, "variant": str}``."""

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
    """``{"type": "seq", "items": [...]}``: ordered; order matters for equality."""

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
    """``{"type": "set", "items": [...]}``: items sorted and de-duplicated on construction."""

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
    """``{"type": "map", "entries": [[k, v], ...]}``: keys are kernel values; entries sorted by
    key on construction (from a mapping or from pairs; the last of equal keys wins).

    ``dict(m.entries)`` gives a Python dict of it.
    """

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
    """``{"type": "none"}``; the greatest variant."""

    rank: ClassVar[int] = 7
    tag: ClassVar[str] = "none"

    def sort_key(self) -> tuple[Any, ...]:
        return (7,)

    def to_json(self) -> dict[str, Any]:
        return {"type": "none"}

    def _canonical(self) -> str:
        return '{"type":"none"}'


def kernel_value(value: Any, field: str = "kernel value") -> KernelValue:
    """``value`` as a :class:`KernelValue`: a KernelValue is returned as is; ``bool`` ->
    KBool, ``int`` -> KU64, ``str`` -> KString, ``None`` -> KNone, ``list``/``tuple`` ->
    KSeq, ``set``/``frozenset`` -> KSet, ``dict`` -> KMap (keys converted too).

    Raises:
        InvalidInput: naming ``field``, for anything else (floats, negative ints...).
    """
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
        if tag == "bool":
            return KBool(obj["value"])
        if tag == "u64":
            return KU64(obj["value"])
        if tag == "string":
            return KString(obj["value"])
        if tag == "named_variant":
            return KNamedVariant(obj["enum_name"], obj["variant"])
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
    """The ``fields`` of a :class:`KernelState`: an immutable, hashable mapping from field
    name to :class:`KernelValue`, iterated in name order."""

    __slots__ = ("_d", "_hash")

    def __init__(self, fields: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._hash: int | None = None
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
    """The complete state of a generated machine: ``phase`` and ``fields`` (by name).

    Equality is structural and agrees with :meth:`canonical`; the store compares states
    only through it (every CAS) and never interprets them.

    >>> KernelState("Running", {"iteration": KU64(2), "tags": frozenset({"b", "a"})}).canonical()
    '{"phase":"Running","fields":{"iteration":{"type":"u64","value":2},"tags":{"type":"set","items":[{"type":"string","value":"a"},{"type":"string","value":"b"}]}}}'
    """

    phase: str = attrs.field(validator=_check_phase)
    fields: KernelFields = attrs.field(factory=KernelFields, converter=_fields)
    _canon: str | None = attrs.field(default=None, init=False, eq=False, hash=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The upstream wire form ``{"phase": str, "fields": {name: tagged value}}``."""
        return {"phase": self.phase, "fields": {k: v.to_json() for k, v in self.fields.items()}}

    @classmethod
    def from_json(cls, obj: Any, field: str = "kernel state") -> KernelState:
        """Parse the wire form (see :meth:`to_json`).

        Raises:
            InvalidInput: naming ``field``, if ``obj`` is not a kernel state.
        """
        if type(obj) is not dict or "phase" not in obj:
            raise InvalidInput(field, "must be an object {'phase': str, 'fields': {...}}")
        fields = obj.get("fields", {})
        if type(fields) is not dict:
            raise InvalidInput(f"{field}.fields", f"must be an object, got {type(fields).__name__}")
        if type(obj["phase"]) is not str:
            raise InvalidInput(f"{field}.phase", f"must be a str, got {type(obj['phase']).__name__}")
        return cls(obj["phase"], {k: _from_json(v, f"{field}.fields[{k!r}]") for k, v in fields.items()})

    def canonical(self) -> str:
        """The canonical encoding: compact JSON of the normalised wire form (fields by name,
        Set and Map sorted). ``a == b`` iff ``a.canonical() == b.canonical()``."""
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
        """Decode a canonical encoding the store wrote, keeping ``text`` as the cached
        encoding (so a CAS with a state just read does not re-encode it).

        Raises:
            InvalidInput: ``text`` is not JSON of a kernel state.
        """
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InvalidInput("kernel state", f"is not JSON ({exc})") from None
        state = cls.from_json(obj)
        object.__setattr__(state, "_canon", text)
        return state

def canonical(state: KernelState) -> str:
    """``state.canonical()``; a function for use as a sort or comparison key."""
    return state.canonical()
