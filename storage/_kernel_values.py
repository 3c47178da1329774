"""The eight kernel value variants (``KBool`` ... ``KNone``) and their conversions: the
values a :class:`~mobstore.storage.KernelState` holds in its fields. Their ordering,
normalisation and canonical encoding are explained in ``_kernel_state``'s docstring.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from ._errors import InvalidInput

U64_MAX = 2**64 - 1
#: How deep kernel values may nest (a seq in a map in a seq...): a state is stored as JSON
#: of about three levels per kernel level, and one nested past what the JSON reader takes
#: could be written but never read back. Upstream kernel states are a few levels deep.
MAX_DEPTH = 64
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
#: The string encoder ``_dumps`` uses for every str (keys and values alike); the direct
#: canonical writers below use it so their output is byte-identical to ``_dumps(to_json())``.
_quote = json.encoder.encode_basestring
_NOTHING = attrs.NOTHING
#: ``attrs.validators.get_disabled``: the hand-written ``__init__`` methods below consult it
#: only when a check fails, so they honour ``attrs.validators.set_disabled`` exactly as the
#: attrs-generated ones did (set the field, skip the validator) at no cost on the hot path.
_validators_disabled = attrs.validators.get_disabled


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


def too_deep(value: KernelValue, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests containers (seq, set, map) more than ``limit`` levels deep.
    Stops as soon as it knows; scalars answer at once."""
    t = type(value)
    if t is KSeq or t is KSet:
        if limit == 0:
            return True
        return any(too_deep(v, limit - 1) for v in value.items)  # type: ignore[attr-defined]
    if t is KMap:
        if limit == 0:
            return True
        return any(too_deep(k, limit - 1) or too_deep(v, limit - 1) for k, v in value.entries)  # type: ignore[attr-defined]
    return False


def _values(items: Iterable[Any], field: str) -> list[KernelValue]:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidInput(field, f"must be an iterable of kernel values, got {type(items).__name__}")
    return [kernel_value(v, f"{field}[{i}]") for i, v in enumerate(items)]


def _sort_key(v: KernelValue) -> tuple[Any, ...]:
    return v.sort_key()


def _all_values(items: Any) -> bool:
    """True if ``items`` is a list or tuple of KernelValues (nothing to convert or check)."""
    if type(items) is not list and type(items) is not tuple:
        return False
    for v in items:
        if not isinstance(v, KernelValue):
            return False
    return True


def _seq(items: Iterable[Any]) -> tuple[KernelValue, ...]:
    if _all_values(items):  # what _values would give, without a field name per item
        return tuple(items)
    if isinstance(items, (set, frozenset)):
        # Its iteration order (so the sequence, and its canonical bytes) would change with
        # the process's hash seed: a restarted process could not rebuild an equal state.
        raise InvalidInput("KSeq.items", "must be ordered (a list or tuple), got a set; a set of values is a KSet")
    return tuple(_values(items, "KSeq.items"))


def _set(items: Iterable[Any]) -> tuple[KernelValue, ...]:
    vals = items if _all_values(items) else _values(items, "KSet.items")
    try:
        return tuple(sorted(set(vals), key=_sort_key))
    except RecursionError:  # hashing or ordering a value nested absurdly deep
        raise InvalidInput("KSet.items", f"nested deeper than {MAX_DEPTH} levels") from None


def _entry_key(kv: tuple[KernelValue, KernelValue]) -> tuple[Any, ...]:
    return kv[0].sort_key()


def _entries(entries: Any) -> tuple[tuple[KernelValue, KernelValue], ...]:
    if type(entries) is dict:
        # Keys already unique and nothing to convert: what the merge below would give.
        for k, v in entries.items():
            if not isinstance(k, KernelValue) or not isinstance(v, KernelValue):
                break
        else:
            try:
                return tuple(sorted(entries.items(), key=_entry_key))
            except RecursionError:  # ordering a key nested absurdly deep
                raise InvalidInput("KMap.entries", f"nested deeper than {MAX_DEPTH} levels") from None
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise InvalidInput("KMap.entries", f"must be a mapping or (key, value) pairs, got {type(entries).__name__}")
    merged: dict[KernelValue, KernelValue] = {}
    try:
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidInput(f"KMap.entries[{i}]", f"must be a (key, value) pair, got {pair!r}")
            merged[kernel_value(pair[0], f"KMap.entries[{i}][0]")] = kernel_value(pair[1], f"KMap.entries[{i}][1]")
        return tuple(sorted(merged.items(), key=_entry_key))
    except RecursionError:  # hashing or ordering a key nested absurdly deep
        raise InvalidInput("KMap.entries", f"nested deeper than {MAX_DEPTH} levels") from None


# The variants with fields have hand-written ``__init__`` methods (``init=False``; attrs
# still writes equality, hashing, repr, evolve and the field list from the declarations,
# validators and converters included): every CAS a caller makes builds kernel values, and
# these check the value inline and set the slot once, at half the cost of the generated ones
# (which set the field, then called the validator). A failed check raises through the same
# validator, so errors are the same; see _validators_disabled for set_disabled.


@attrs.frozen(init=False)
class KBool(KernelValue):
    """``{"type": "bool", "value": bool}``"""

    value: bool = attrs.field(validator=_check_bool)
    rank: ClassVar[int] = 0
    tag: ClassVar[str] = "bool"

    def __init__(self, value: bool) -> None:
        if type(value) is not bool and not _validators_disabled():
            _check_bool(self, None, value)
        _SET_KBOOL(self, value)

    def sort_key(self) -> tuple[Any, ...]:
        return (0, self.value)

    def to_json(self) -> dict[str, Any]:
        return {"type": "bool", "value": self.value}

    def _canonical(self) -> str:
        return '{"type":"bool","value":true}' if self.value else '{"type":"bool","value":false}'


@attrs.frozen(init=False)
class KU64(KernelValue):
    """``{"type": "u64", "value": int}``: an unsigned 64-bit integer (``0..2**64-1``)."""

    value: int = attrs.field(validator=_check_u64)
    rank: ClassVar[int] = 1
    tag: ClassVar[str] = "u64"

    def __init__(self, value: int) -> None:
        # type() is exact: True is an int subclass and is refused, as by _check_u64.
        if (type(value) is not int or not 0 <= value <= U64_MAX) and not _validators_disabled():
            _check_u64(self, None, value)
        _SET_KU64(self, value)

    def sort_key(self) -> tuple[Any, ...]:
        return (1, self.value)

    def to_json(self) -> dict[str, Any]:
        return {"type": "u64", "value": self.value}

    def _canonical(self) -> str:
        return f'{{"type":"u64","value":{self.value}}}'  # an exact int (validated): str == repr


@attrs.frozen(init=False)
class KString(KernelValue):
    """``{"type": "string", "value": str}``; ordered by code point."""

    value: str = attrs.field(validator=_check_kstr)
    rank: ClassVar[int] = 2
    tag: ClassVar[str] = "string"

    def __init__(self, value: str) -> None:
        if type(value) is not str and not _validators_disabled():
            _check_kstr(self, _KSTRING_VALUE, value)
        _SET_KSTRING(self, value)

    def sort_key(self) -> tuple[Any, ...]:
        return (2, self.value)

    def to_json(self) -> dict[str, Any]:
        return {"type": "string", "value": self.value}

    def _canonical(self) -> str:
        return '{"type":"string","value":' + _quote(self.value) + "}"


@attrs.frozen(init=False)
class KNamedVariant(KernelValue):
    """``{"type": "named_variant", "enum_name": str, "variant": str}``."""

    enum_name: str = attrs.field(validator=_check_kstr)
    variant: str = attrs.field(validator=_check_kstr)
    rank: ClassVar[int] = 3
    tag: ClassVar[str] = "named_variant"

    def __init__(self, enum_name: str, variant: str) -> None:
        if (type(enum_name) is not str or type(variant) is not str) and not _validators_disabled():
            _check_kstr(self, _KNV_ENUM_NAME, enum_name)  # the generated order: enum_name first
            _check_kstr(self, _KNV_VARIANT, variant)
        _SET_KNV_ENUM_NAME(self, enum_name)
        _SET_KNV_VARIANT(self, variant)

    def sort_key(self) -> tuple[Any, ...]:
        return (3, self.enum_name, self.variant)

    def to_json(self) -> dict[str, Any]:
        return {"type": "named_variant", "enum_name": self.enum_name, "variant": self.variant}

    def _canonical(self) -> str:
        return '{"type":"named_variant","enum_name":' + _quote(self.enum_name) + ',"variant":' + _quote(self.variant) + "}"


class _Items(KernelValue):
    """What a Seq and a Set share: a tuple of values, ``items``, and the forms of it."""

    __slots__ = ()
    items: tuple[KernelValue, ...]

    def sort_key(self) -> tuple[Any, ...]:
        return (self.rank, tuple(v.sort_key() for v in self.items))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.tag, "items": [v.to_json() for v in self.items]}

    def _canonical(self) -> str:
        return '{"type":"' + self.tag + '","items":[' + ",".join([v._canonical() for v in self.items]) + "]}"


@attrs.frozen(init=False)
class KSeq(_Items):
    """``{"type": "seq", "items": [...]}``: ordered; order matters for equality."""

    items: tuple[KernelValue, ...] = attrs.field(default=(), converter=_seq)
    rank: ClassVar[int] = 4
    tag: ClassVar[str] = "seq"

    def __init__(self, items: Iterable[Any] = ()) -> None:
        _SET_KSEQ(self, _seq(items))


@attrs.frozen(init=False)
class KSet(_Items):
    """``{"type": "set", "items": [...]}``: items sorted and de-duplicated on construction."""

    items: tuple[KernelValue, ...] = attrs.field(default=(), converter=_set)
    rank: ClassVar[int] = 5
    tag: ClassVar[str] = "set"

    def __init__(self, items: Iterable[Any] = ()) -> None:
        _SET_KSET(self, _set(items))


@attrs.frozen(init=False)
class KMap(KernelValue):
    """``{"type": "map", "entries": [[k, v], ...]}``: keys are kernel values; entries sorted by
    key on construction (from a mapping or from pairs; the last of equal keys wins).

    ``dict(m.entries)`` gives a Python dict of it.
    """

    entries: tuple[tuple[KernelValue, KernelValue], ...] = attrs.field(default=(), converter=_entries)
    rank: ClassVar[int] = 6
    tag: ClassVar[str] = "map"

    def __init__(self, entries: Any = ()) -> None:
        _SET_KMAP(self, _entries(entries))

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


# The slots' own setters (a frozen class refuses setattr; these are faster than
# object.__setattr__), and the attributes the string validator names.
_SET_KBOOL = KBool.__dict__["value"].__set__
_SET_KU64 = KU64.__dict__["value"].__set__
_SET_KSTRING = KString.__dict__["value"].__set__
_SET_KNV_ENUM_NAME = KNamedVariant.__dict__["enum_name"].__set__
_SET_KNV_VARIANT = KNamedVariant.__dict__["variant"].__set__
_SET_KSEQ = KSeq.__dict__["items"].__set__
_SET_KSET = KSet.__dict__["items"].__set__
_SET_KMAP = KMap.__dict__["entries"].__set__
_KSTRING_VALUE = attrs.fields(KString).value
_KNV_ENUM_NAME = attrs.fields(KNamedVariant).enum_name
_KNV_VARIANT = attrs.fields(KNamedVariant).variant


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
        try:
            if tag == "bool":
                return KBool(obj["value"])
            if tag == "u64":
                return KU64(obj["value"])
            if tag == "string":
                return KString(obj["value"])
            if tag == "named_variant":
                return KNamedVariant(obj["enum_name"], obj["variant"])
        except InvalidInput as exc:  # the constructor names its own attribute: name the path
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
