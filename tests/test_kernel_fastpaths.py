"""Kernel states' hand-written constructors against the code they replaced: value for value,
byte for byte, error for error.

``KBool``, ``KU64``, ``KString``, ``KNamedVariant``, ``KSeq``, ``KSet``, ``KMap``,
``KernelState``, ``FrameSnapshot`` and ``LoopSnapshot`` have their own ``__init__`` (attrs
``init=False``), ``KernelFields`` and the converters take a fast path for input that needs no
conversion, and ``KernelState.from_json`` builds well-formed u64 and string fields inline.
Every input below is built twice, once with the current classes and once with a reference
copy of the previous implementation (kept here, verbatim in what it computes; docstrings
dropped), and the two must agree: the same structure (dict orders included), repr,
canonical text and wire form, equality both ways and hashing (the reference result moved into
the current classes without running their constructors), ordering, and the same exception
(type, field, message) for bad input, including with attrs validators disabled.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import pickle
import re
from typing import Any

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mobstore.storage import _kernel_state as ks
from mobstore.storage import _kernel_values as kv
from mobstore.storage import _run_records as rr

import kernel_reference
from kernel_reference import (
    KernelState,
    KernelValue,
    KNone,
    KU64,
)

SETTINGS = settings(max_examples=400, deadline=None)


# -- the two implementations side by side ----------------------------------------------------

_CLASSES = (
    "KBool", "KU64", "KString", "KNamedVariant", "KSeq", "KSet", "KMap", "KNone",
    "KernelFields", "KernelState", "FrameSnapshot", "LoopSnapshot",
)
REF: dict[str, Any] = {n: getattr(kernel_reference, n) for n in (*_CLASSES, "kernel_value")}
NEW: dict[str, Any] = {n: getattr(ks, n, None) or getattr(rr, n) for n in (*_CLASSES, "kernel_value")}
_TO_NEW = {REF[n]: NEW[n] for n in _CLASSES}


def to_new(x: Any) -> Any:
    """A reference result moved into the current classes, slot by slot (no constructor runs)."""
    cls = _TO_NEW.get(type(x))
    if cls is None:
        return tuple(to_new(i) for i in x) if type(x) is tuple else x
    obj = object.__new__(cls)
    if cls is ks.KernelFields:
        obj._d = {k: to_new(v) for k, v in x._d.items()}
        obj._hash = None
        return obj
    for a in attrs.fields(type(x)):
        object.__setattr__(obj, a.name, to_new(getattr(x, a.name)))
    return obj


def deep(x: Any) -> Any:
    """The structure of a built object: class names, field values and the order of every
    tuple and dict (KernelFields' hash cache left out)."""
    t = type(x)
    if t.__name__ == "KernelFields":
        return ("KernelFields", [(deep(k), deep(v)) for k, v in x._d.items()])
    if attrs.has(t):
        return (t.__name__, [(a.name, deep(getattr(x, a.name))) for a in attrs.fields(t)])
    if t is tuple or t is list:
        return (t.__name__, [deep(i) for i in x])
    if t is dict:
        return ("dict", [(deep(k), deep(v)) for k, v in x.items()])
    return ("leaf", t.__name__, repr(x))


_UNORDERABLE = re.compile(r"'(<|<=|>|>=)' not supported between instances of '(\w+)' and '(\w+)'")


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    """("ok", value) or ("error", type, field, message): what a call did, comparably."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - any exception must be the same one
        message = str(exc)
        m = _UNORDERABLE.fullmatch(message)
        if m:
            # Sorting a set of garbage values (validators disabled) meets the unorderable
            # pair in set iteration order, which follows the hashes of two different classes:
            # the same pair of types, in either order, is the same outcome.
            message = f"{m.group(1)} unorderable: {sorted((m.group(2), m.group(3)))}"
        return ("error", type(exc), getattr(exc, "field", None), message)


def assert_same(new: Any, ref: Any) -> None:
    """``new`` (current code) and ``ref`` (reference code) are the same value."""
    assert type(new).__name__ == type(ref).__name__
    assert deep(new) == deep(ref)
    assert repr(new) == repr(ref)
    moved = to_new(ref)
    assert new == moved and moved == new and not new != moved and not moved != new
    assert outcome(hash, new) == outcome(hash, moved)
    if type(new) is ks.KernelState:
        assert new._canon is None
        assert outcome(new.canonical) == outcome(ref.canonical)
        assert outcome(new.to_json) == outcome(ref.to_json)
        assert list(new.fields) == list(ref.fields)


def assert_same_outcome(new: tuple[Any, ...], ref: tuple[Any, ...]) -> None:
    assert new[0] == ref[0], (new, ref)
    if new[0] == "ok":
        assert_same(new[1], ref[1])
    else:
        assert new == ref


# -- inputs: a description built with either implementation ----------------------------------


@dataclasses.dataclass(frozen=True)
class Call:
    """``name(*args)``, ``name`` a constructor (or ``kernel_value``) of the implementation."""

    name: str
    args: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Coll:
    """A collection of built items: ``kind`` is list, tuple, gen (a generator), set (of plain
    leaves only: a set of kernel values iterates in hash order, which differs between the
    two implementations' classes), or dict (``items`` are (key, value) pairs)."""

    kind: str
    items: tuple[Any, ...]


def build(x: Any, impl: dict[str, Any]) -> Any:
    if type(x) is Call:
        return impl[x.name](*[build(a, impl) for a in x.args])
    if type(x) is Coll:
        if x.kind == "dict":
            return {build(k, impl): build(v, impl) for k, v in x.items}
        items = [build(i, impl) for i in x.items]
        if x.kind == "gen":
            return (i for i in items)
        return {"list": list, "tuple": tuple, "set": set}[x.kind](items)
    return x


def both(spec: Any) -> None:
    """Build ``spec`` with each implementation; the outcomes must be the same."""
    assert_same_outcome(outcome(build, spec, NEW), outcome(build, spec, REF))


class MyStr(str):
    pass


class MyInt(int):
    pass


_OBJECT = object()
_plain = st.one_of(
    st.booleans(),
    st.integers(-2, 4),
    st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**64), 10**30]),
    st.integers(),
    st.sampled_from(["", "a", "b", "ab", "node-1", "é", '"\\\n', "\ud800"]),
    st.text(max_size=3),
    st.none(),
    st.sampled_from([1.5, -0.0, float("inf")]),
    st.binary(max_size=2),
    st.sampled_from([MyStr("a"), MyInt(1), _OBJECT, attrs.NOTHING]),
)
_u64s = st.one_of(st.integers(0, 5), st.just(2**64 - 1), _plain)
_strs = st.one_of(st.sampled_from(["", "a", "b", "node-1", "é", '"\\']), st.text(max_size=3), _plain)


def _calls(children: Any) -> Any:
    colls = st.one_of(
        st.builds(Coll, st.sampled_from(["list", "tuple", "gen"]), st.lists(children, max_size=4).map(tuple)),
        st.builds(Coll, st.just("set"), st.lists(_plain.filter(_hashable), max_size=4).map(tuple)),
        _plain,
    )
    pairs = st.tuples(children.filter(_hashable_spec), children)
    map_inputs = st.one_of(
        st.builds(Coll, st.just("dict"), st.lists(pairs, max_size=4).map(tuple)),
        st.builds(Coll, st.sampled_from(["list", "tuple", "gen"]),
                  st.lists(st.one_of(pairs.map(lambda p: Coll("tuple", p)), children), max_size=4).map(tuple)),
        _plain,
    )
    return st.one_of(
        st.builds(lambda v: Call("KSeq", (v,)), colls),
        st.builds(lambda v: Call("KSet", (v,)), colls),
        st.builds(lambda v: Call("KMap", (v,)), map_inputs),
        st.sampled_from([Call("KSeq", ()), Call("KSet", ()), Call("KMap", ())]),
        st.builds(lambda v: Call("kernel_value", (v,)), st.one_of(children, colls)),
    )


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _hashable_spec(x: Any) -> bool:
    return type(x) is Call or (type(x) is not Coll and _hashable(x))


_scalar_calls = st.one_of(
    st.builds(lambda v: Call("KBool", (v,)), st.one_of(st.booleans(), _plain)),
    st.builds(lambda v: Call("KU64", (v,)), _u64s),
    st.builds(lambda v: Call("KString", (v,)), _strs),
    st.builds(lambda a, b: Call("KNamedVariant", (a, b)), _strs, _strs),
    st.just(Call("KNone", ())),
)
#: Kernel values (and plain values, for the converting paths), valid and not.
values = st.recursive(st.one_of(_scalar_calls, _plain), _calls, max_leaves=8)

# Valid inputs only: every example builds (the comparisons above then see values, not errors).
_good_scalars = st.one_of(
    st.booleans().map(lambda v: Call("KBool", (v,))),
    st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1)).map(lambda v: Call("KU64", (v,))),
    st.text(max_size=3).map(lambda v: Call("KString", (v,))),
    st.builds(lambda a, b: Call("KNamedVariant", (a, b)), st.text("ab", max_size=2), st.text("ab", max_size=2)),
    st.just(Call("KNone", ())),
)
#: Valid kernel values.
good_values = st.recursive(
    _good_scalars,
    lambda c: st.one_of(
        st.builds(
            lambda k, xs: Call(k, (Coll("list", tuple(xs)),)), st.sampled_from(["KSeq", "KSet"]), st.lists(c, max_size=4)
        ),
        st.builds(lambda ps: Call("KMap", (Coll("dict", tuple(ps)),)), st.lists(st.tuples(c, c), max_size=3)),
        st.builds(
            lambda ps: Call("KMap", (Coll("list", tuple(Coll("tuple", p) for p in ps)),)),
            st.lists(st.tuples(c, c), max_size=3),
        ),
    ),
    max_leaves=8,
)
#: Valid kernel states, fields in any order.
good_states = st.builds(
    lambda p, ps: Call("KernelState", (p, Coll("dict", tuple(ps)))),
    st.sampled_from(["Running", "Pending", "Waiting", "é"]),
    st.lists(st.tuples(st.sampled_from(["node", "step", "attempt", "a", "b", "é", ""]), good_values), max_size=5),
)

_names = st.one_of(st.sampled_from(["a", "b", "node", "step", "attempt", "", "é"]), st.text(max_size=2), _plain)
_phases = st.one_of(st.sampled_from(["Running", "Pending", ""]), st.text(max_size=3), _plain)
# Mostly valid parts, so that a whole state often builds and the comparison sees a value.
_field_pairs = st.lists(
    st.tuples(_names.filter(_hashable), st.one_of(good_values, good_values, values)), max_size=4
).map(tuple)
fields = st.one_of(
    st.builds(Coll, st.just("dict"), _field_pairs),
    st.builds(Coll, st.just("dict"), _field_pairs),
    st.builds(
        Coll, st.sampled_from(["list", "tuple", "gen"]), _field_pairs.map(lambda ps: tuple(Coll("tuple", p) for p in ps))
    ),
    st.builds(lambda c: Call("KernelFields", (c,)), st.builds(Coll, st.just("dict"), _field_pairs)),
    _plain,
)
states = st.one_of(
    st.builds(lambda p, f: Call("KernelState", (p, f)), st.sampled_from(["Running", "P"]), fields),
    st.builds(lambda p, f: Call("KernelState", (p, f)), _phases, fields),
    st.builds(lambda p: Call("KernelState", (p,)), _phases),
)
snapshots = st.builds(
    lambda n, s: Call(n, (s,)), st.sampled_from(["FrameSnapshot", "LoopSnapshot"]), st.one_of(good_states, states, _plain)
)


def _u64_state(node: str, step: int) -> Call:
    """The CAS benchmark's frame state (benchmarks/cas.py ``_state``)."""
    pairs = (("node", Call("KString", (node,))), ("step", Call("KU64", (step,))), ("attempt", Call("KU64", (step // 3,))))
    return Call("FrameSnapshot", (Call("KernelState", ("Running", Coll("dict", pairs))),))


# -- the properties -------------------------------------------------------------------------


class TestConstructors:
    @SETTINGS
    @given(st.one_of(_scalar_calls, values))
    @example(Call("KU64", (True,)))
    @example(Call("KU64", (False,)))
    @example(Call("KU64", (-1,)))
    @example(Call("KU64", (2**64,)))
    @example(Call("KU64", (MyInt(3),)))
    @example(Call("KU64", (3.0,)))
    @example(Call("KBool", (1,)))
    @example(Call("KString", (b"x",)))
    @example(Call("KString", (MyStr("x"),)))
    @example(Call("KNamedVariant", (1, b"x")))
    @example(Call("KNamedVariant", ("E", 2)))
    @example(Call("KSeq", ("abc",)))
    @example(Call("KSeq", (Coll("list", (1, "x", True, None)),)))
    @example(Call("KMap", (Coll("list", (Coll("tuple", (1,)),)),)))
    @example(Call("KMap", (Coll("dict", ((Call("KU64", (1,)), Call("KNone", ())), (Call("KU64", (0,)), 5))),)))
    def test_values(self, spec):
        """Kernel values (and kernel_value conversions) are the same, or fail the same way."""
        both(spec)

    @SETTINGS
    @given(states)
    @example(Call("KernelState", (3,)))
    @example(Call("KernelState", (3, Coll("dict", ((1, Call("KU64", (1,))),)))))
    @example(Call("KernelState", ("P", Coll("dict", (("x", 1.5),)))))
    @example(Call("KernelState", ("P", Coll("dict", (("x", 1), ("b", True), ("a", "s"))))))
    @example(Call("KernelState", ("P", Coll("dict", ((MyStr("x"), Call("KU64", (1,))),)))))
    @example(Call("KernelState", ("P", Coll("list", (1,)))))
    @example(Call("KernelState", ("P", Coll("list", ("ab",)))))
    @example(Call("KernelState", ("P", "fields")))
    @example(Call("KernelState", ("P", attrs.NOTHING)))
    @example(Call("KernelState", (MyStr("P"), Coll("dict", ()))))
    def test_states(self, spec):
        """Kernel states are the same (fields sorted by name), or fail the same way: the
        fields' error first, then the phase's, as the generated __init__ did."""
        both(spec)

    @SETTINGS
    @given(fields)
    def test_kernel_fields(self, spec):
        """KernelFields built directly."""
        both(Call("KernelFields", (spec,)) if type(spec) is not Call else spec)

    @SETTINGS
    @given(snapshots)
    @example(_u64_state("node-1", 7))
    @example(Call("FrameSnapshot", (Call("KernelFields", (Coll("dict", ()),)),)))
    @example(Call("LoopSnapshot", (None,)))
    def test_snapshots(self, spec):
        """Frame and loop snapshots are the same, or fail the same way."""
        both(spec)

    @SETTINGS
    @given(good_states)
    def test_valid_states_build_identically(self, spec):
        """Valid states build in both; canonical text is the JSON encoder's of the wire form."""
        new, ref = build(spec, NEW), build(spec, REF)
        assert_same(new, ref)
        assert new.canonical() == ref.canonical() == kv._dumps(new.to_json())
        assert_same(NEW["FrameSnapshot"](new), REF["FrameSnapshot"](ref))
        assert_same(NEW["LoopSnapshot"](new), REF["LoopSnapshot"](ref))

    @SETTINGS
    @given(good_values, good_values)
    def test_ordering(self, a, b):
        """<, <=, >, >= and == agree between the implementations."""
        na, nb, ra, rb = build(a, NEW), build(b, NEW), build(a, REF), build(b, REF)
        ops = (lambda x, y: x < y, lambda x, y: x <= y, lambda x, y: x > y, lambda x, y: x >= y, lambda x, y: x == y)
        assert [op(na, nb) for op in ops] == [op(ra, rb) for op in ops]

    @SETTINGS
    @given(st.one_of(values, states, snapshots))
    # Found by hypothesis: a set holding an unorderable pair (bool and str) fails to sort
    # with the pair in set iteration order, which differs between the two implementations.
    @example(Call("KSet", (Coll("list", (Call("KBool", (False,)), Call("KBool", ("b",)))),)))
    def test_with_validators_disabled(self, spec):
        """With attrs validators disabled the generated __init__ set the field unchecked (the
        converters still ran); the hand-written ones do the same."""
        with attrs.validators.disabled():
            assert_same_outcome(outcome(build, spec, NEW), outcome(build, spec, REF))


def _wire_leaf() -> Any:
    return st.one_of(
        _plain, st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text("ab", max_size=1), st.integers(0, 2), max_size=2)
    )


_tags = st.sampled_from(["bool", "u64", "string", "named_variant", "none", "seq", "set", "map", "float", None])
wire_values = st.recursive(
    st.one_of(
        st.builds(lambda t, v: {"type": t, "value": v}, _tags, _wire_leaf()),
        st.builds(lambda t, a, b: {"type": t, "enum_name": a, "variant": b}, _tags, _strs, _strs),
        st.builds(lambda t: {"type": t}, _tags),
        st.builds(lambda v, x: {"type": "u64", "value": v, "extra": x}, st.integers(0, 3), _plain),
        _wire_leaf(),
    ),
    lambda c: st.one_of(
        st.builds(lambda t, xs: {"type": t, "items": xs}, st.sampled_from(["seq", "set"]), st.lists(c, max_size=3)),
        st.builds(lambda es: {"type": "map", "entries": es}, st.lists(st.lists(c, min_size=1, max_size=3), max_size=3)),
        st.builds(lambda t, x: {"type": t, "items": x, "entries": x}, st.sampled_from(["seq", "set", "map"]), _wire_leaf()),
    ),
    max_leaves=6,
)
_good_wire = good_values.map(lambda s: build(s, REF).to_json())
wire_states = st.one_of(
    good_states.map(lambda s: build(s, REF).to_json()),
    st.builds(
        lambda p, fs: {"phase": p, "fields": fs},
        st.one_of(st.sampled_from(["Running", "P"]), _phases),
        st.dictionaries(
            st.one_of(st.text("abc", max_size=2), st.text("abc", max_size=2), st.integers(0, 2)),
            st.one_of(_good_wire, _good_wire, wire_values),
            max_size=4,
        ),
    ),
    st.builds(lambda p: {"phase": p}, _phases),
    st.builds(lambda f: {"fields": f}, st.dictionaries(st.text("ab", max_size=1), wire_values, max_size=2)),
    st.builds(lambda p, f: {"phase": p, "fields": f}, _phases, _wire_leaf()),
    _wire_leaf(),
)


class TestWireForm:
    @SETTINGS
    @given(wire_states)
    @example({"phase": "P", "fields": {"b": {"type": "u64", "value": True}, "a": {"type": "u64", "value": -1}}})
    @example({"phase": "P", "fields": {"x": {"type": "u64"}}})
    @example({"phase": "P", "fields": {"x": {"type": "string", "value": 5}}})
    @example({"phase": 3, "fields": {"x": {"type": "string", "value": 5}}})
    @example({"phase": "P", "fields": {1: {"type": "u64", "value": 1}}})
    def test_from_json(self, obj):
        """KernelState.from_json (u64 and string fields built inline) is the same, or fails
        the same way, naming the same field."""
        assert_same_outcome(outcome(ks.KernelState.from_json, obj), outcome(KernelState.from_json, obj))

    @SETTINGS
    @given(wire_states)
    def test_from_stored(self, obj):
        """Reading a stored text keeps it as the cached encoding, as before."""
        try:
            text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            return
        new, ref = outcome(ks.KernelState._from_stored, text), outcome(KernelState._from_stored, text)
        assert new[0] == ref[0], (new, ref)
        if new[0] == "ok":
            assert new[1]._canon == ref[1]._canon == text
            object.__setattr__(new[1], "_canon", None)
            object.__setattr__(ref[1], "_canon", None)
        assert_same_outcome(new, ref)

    @SETTINGS
    @given(st.one_of(_good_wire, wire_values))
    def test_value_from_json(self, obj):
        """KernelValue.from_json (through the faster constructors) is the same."""
        assert_same_outcome(outcome(ks.KernelValue.from_json, obj), outcome(KernelValue.from_json, obj))


# -- what attrs still provides ------------------------------------------------------------------


def _samples() -> list[tuple[Any, Any]]:
    specs = [
        Call("KBool", (True,)), Call("KU64", (3,)), Call("KString", ("node-1",)), Call("KNamedVariant", ("E", "V")),
        Call("KSeq", (Coll("list", (Call("KU64", (1,)),)),)), Call("KSet", (Coll("list", (Call("KU64", (1,)),)),)),
        Call("KMap", (Coll("dict", ((Call("KU64", (1,)), Call("KNone", ())),)),)), Call("KNone", ()),
        Call("KernelState", ("Running", Coll("dict", (("step", Call("KU64", (3,))), ("node", Call("KString", ("n",))))))),
        Call("KernelState", ("Pending",)),
        _u64_state("node-2", 5), Call("LoopSnapshot", (Call("KernelState", ("L",)),)),
    ]
    return [(build(s, NEW), build(s, REF)) for s in specs]


class TestAttrsBehaviour:
    @pytest.mark.parametrize("name", _CLASSES)
    def test_class_surface(self, name):
        """Signature, fields (with their validators, converters and flags), match args,
        slots and the methods attrs generates are as before."""
        new, ref = NEW[name], REF[name]
        sig_new, sig_ref = inspect.signature(new), inspect.signature(ref)
        assert sig_new.parameters == sig_ref.parameters
        # attrs writes ``-> None``; a hand-written __init__ under postponed annotations, 'None'.
        assert sig_new.return_annotation in (None, "None") and sig_ref.return_annotation in (None, "None")
        assert getattr(new, "__match_args__", None) == getattr(ref, "__match_args__", None)
        assert getattr(new, "__slots__", None) == getattr(ref, "__slots__", None)
        if name == "KernelFields":
            return
        keys = ("name", "default", "init", "eq", "hash", "repr", "order", "kw_only", "alias", "type", "on_setattr")

        def describe(cls: Any) -> list[Any]:
            out = []
            for a in attrs.fields(cls):
                fns = [getattr(f, "__qualname__", repr(f)) for f in (a.validator, a.converter)]
                default = a.default.factory.__name__ if isinstance(a.default, attrs.Factory) else a.default
                out.append([default if k == "default" else getattr(a, k) for k in keys] + fns)
            return out

        assert describe(new) == describe(ref)
        generated = ("__eq__", "__ne__", "__hash__", "__repr__", "__setattr__", "__delattr__", "__getstate__", "__setstate__")
        for method in generated:
            assert (method in vars(new)) == (method in vars(ref)), method

    @pytest.mark.parametrize("i", range(len(_samples())))
    def test_frozen(self, i):
        """Setting or deleting a field raises FrozenInstanceError, as before."""
        new, ref = _samples()[i]
        for a in attrs.fields(type(ref)) if attrs.has(type(ref)) else ():
            got = [outcome(setattr, x, a.name, None) for x in (new, ref)]
            assert got[0] == got[1] and got[0][1] is attrs.exceptions.FrozenInstanceError
            got = [outcome(delattr, x, a.name) for x in (new, ref)]
            assert got[0] == got[1] and got[0][1] is attrs.exceptions.FrozenInstanceError
        assert outcome(setattr, new, "other", 1)[:2] == outcome(setattr, ref, "other", 1)[:2]
        assert hasattr(new, "__dict__") == hasattr(ref, "__dict__")

    @pytest.mark.parametrize("i", range(len(_samples())))
    def test_evolve_copy_pickle(self, i):
        """attrs.evolve, copy, deepcopy and pickle give equal values (a state keeps its cached
        encoding through copy and pickle, as before)."""
        new, ref = _samples()[i]
        assert_same(attrs.evolve(new), attrs.evolve(ref))
        if type(new) is ks.KernelState:
            assert_same(attrs.evolve(new, phase="Other"), attrs.evolve(ref, phase="Other"))
            assert_same(attrs.evolve(new, fields={"z": ks.KU64(1), "a": ks.KNone()}),
                        attrs.evolve(ref, fields={"z": KU64(1), "a": KNone()}))
            new.canonical()
        for fn in (copy.copy, copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))):
            back = fn(new)
            assert back == new and hash(back) == hash(new) and repr(back) == repr(new)
            if type(new) is ks.KernelState:
                assert back._canon == new.canonical()

    def test_asdict_and_validate(self):
        """attrs.asdict and attrs.validate see the same fields and validators."""
        for new, ref in _samples():
            if attrs.has(type(new)):
                assert repr(attrs.asdict(new, recurse=False)) == repr(attrs.asdict(ref, recurse=False))
                attrs.validate(new)

    def test_no_fields_are_shared_and_empty(self):
        """A state built without fields shares one empty KernelFields (immutable); it is equal
        to the fields of any other empty state."""
        a, b = ks.KernelState("A"), ks.KernelState("B", {})
        assert a.fields == b.fields == {} and hash(a.fields) == hash(b.fields) and not a.fields
        assert ks.KernelState("A") == a and hash(ks.KernelState("A")) == hash(a)
