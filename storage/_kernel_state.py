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
from typing import Any

import attrs

from ._errors import InvalidInput
from ._kernel_values import (  # the values are re-exported: they are part of this module's API
    KBool,
    KMap,
    KNamedVariant,
    KNone,
    KSeq,
    KSet,
    KString,
    KU64,
    MAX_DEPTH,
    KernelValue,
    U64_MAX,
    _NOTHING,
    _check_str,
    _from_json,
    _quote,
    _validators_disabled,
    kernel_value,
    too_deep,
)

# -- KernelState -------------------------------------------------------------------------


class KernelFields(Mapping[str, KernelValue]):
    """The ``fields`` of a :class:`KernelState`: an immutable, hashable mapping from field
    name to :class:`KernelValue`, iterated in name order."""

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


_new_fields = object.__new__
_SET_FIELDS_D = KernelFields.__dict__["_d"].__set__
_SET_FIELDS_HASH = KernelFields.__dict__["_hash"].__set__
#: The fields of a state built without any (shared: KernelFields is immutable).
_NO_FIELDS = KernelFields()


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


# init=False: the __init__ below replaces the generated one (see the value classes above).
@attrs.frozen(init=False)
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

    def __init__(self, phase: str, fields: Any = _NOTHING) -> None:
        # The generated order: fields are converted (and their errors raised) first, then
        # phase is validated.
        if type(fields) is dict:
            # KernelFields' hot path, inlined (no call through KernelFields.__init__), and
            # faster: a dict already in name order (a state read back from the store, or
            # built in name order) is copied, not sorted; otherwise list.sort on the items is
            # dict(sorted(fields.items())) without the call (names are unique: values are
            # never compared).
            prev = ""
            in_order = True
            for name, value in fields.items():
                if type(name) is not str or not isinstance(value, KernelValue):
                    kf = KernelFields(fields)  # converts, or raises naming the field
                    break
                if name < prev:
                    in_order = False
                prev = name
            else:
                if in_order:
                    d = fields.copy()
                else:
                    items = list(fields.items())
                    items.sort()
                    d = dict(items)
                kf = _new_fields(KernelFields)
                _SET_FIELDS_D(kf, d)
                _SET_FIELDS_HASH(kf, None)
        elif fields is _NOTHING:
            kf = _NO_FIELDS
        else:
            kf = _fields(fields)
        if type(phase) is not str and not _validators_disabled():
            _check_phase(self, None, phase)
        _SET_PHASE(self, phase)
        _SET_STATE_FIELDS(self, kf)
        _SET_CANON(self, None)

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
        values: dict[Any, KernelValue] = {}
        for k, v in fields.items():
            # A well-formed u64 or string (what most fields are) is built here; anything
            # else, and every error, goes through _from_json with the field's path.
            if type(v) is dict:
                tag = v.get("type")
                if tag == "u64":
                    x = v.get("value")
                    if type(x) is int and 0 <= x <= U64_MAX:
                        values[k] = KU64(x)
                        continue
                elif tag == "string":
                    x = v.get("value")
                    if type(x) is str:
                        values[k] = KString(x)
                        continue
            values[k] = _from_json(v, f"{field}.fields[{k!r}]")
        return cls(obj["phase"], values)

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
                    if too_deep(v):
                        raise InvalidInput(f"KernelState.fields[{k!r}]", f"nested deeper than {MAX_DEPTH} levels")
                    parts.append(f"{_quote(k)}:{v._canonical()}")
            text = f'{{"phase":{_quote(self.phase)},"fields":{{{",".join(parts)}}}}}'
            _SET_CANON(self, text)
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
            state = cls.from_json(obj)
        except RecursionError:  # written by something else: this store refuses such depth
            raise InvalidInput("kernel state", f"is nested deeper than {MAX_DEPTH} levels") from None
        except InvalidInput:
            raise
        except ValueError as exc:  # json.loads
            raise InvalidInput("kernel state", f"is not JSON ({exc})") from None
        _SET_CANON(state, text)
        return state


_SET_PHASE = KernelState.__dict__["phase"].__set__
_SET_STATE_FIELDS = KernelState.__dict__["fields"].__set__
_SET_CANON = KernelState.__dict__["_canon"].__set__


def canonical(state: KernelState) -> str:
    """``state.canonical()``; a function for use as a sort or comparison key."""
    return state.canonical()
