"""KernelState and KernelValue: canonical encoding, equality, ordering, the wire form."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobstore.storage import (
    InvalidInput,
    KBool,
    KernelFields,
    KernelState,
    KernelValue,
    KMap,
    KNamedVariant,
    KNone,
    KSeq,
    KSet,
    KString,
    KU64,
    kernel_value,
)

from strategies import kernel_states, kernel_values

SETTINGS = settings(max_examples=100, deadline=None)


class TestCanonicalEquality:
    @SETTINGS
    @given(kernel_states, kernel_states)
    def test_equal_iff_canonical_bytes_equal(self, a, b):
        """a == b exactly when their canonical encodings are equal (and equal states hash
        alike)."""
        assert (a == b) == (a.canonical() == b.canonical())
        if a == b:
            assert hash(a) == hash(b)

    @SETTINGS
    @given(kernel_values, kernel_values)
    def test_values_equal_iff_canonical_equal(self, a, b):
        """The same for bare values, inside a state's field."""
        sa, sb = KernelState("P", {"v": a}), KernelState("P", {"v": b})
        assert (a == b) == (sa.canonical() == sb.canonical())

    @SETTINGS
    @given(kernel_states)
    def test_copy_through_canonical_is_equal(self, s):
        """A state rebuilt from its own parts (a different object) is equal, byte for byte."""
        t = KernelState(s.phase, dict(reversed(list(s.fields.items()))))
        assert t == s and t.canonical() == s.canonical()

    def test_variants_of_the_same_python_value_differ(self):
        """U64(1), Bool(true) and String("1") are different values."""
        states = [KernelState("P", {"v": v}) for v in (KU64(1), KBool(True), KString("1"))]
        assert len({s.canonical() for s in states}) == 3
        assert states[0] != states[1] != states[2] != states[0]


class TestRoundTrip:
    @SETTINGS
    @given(kernel_states)
    def test_json_round_trip(self, s):
        """to_json -> JSON text -> from_json gives an equal state with the same bytes."""
        back = KernelState.from_json(json.loads(json.dumps(s.to_json())))
        assert back == s and back.canonical() == s.canonical()

    @SETTINGS
    @given(kernel_states)
    def test_canonical_is_compact_json_of_the_wire_form(self, s):
        """The canonical text parses to the wire form and re-encodes compactly to itself."""
        text = s.canonical()
        assert json.loads(text) == s.to_json()
        assert json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False) == text
        assert KernelState._from_stored(text) == s

    @SETTINGS
    @given(kernel_states)
    def test_canonical_is_byte_identical_to_the_encoder(self, s):
        """The direct canonical writer gives exactly the JSON encoder's bytes of the wire form
        (key order included), so texts stored by earlier versions still compare equal."""
        encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
        assert KernelState(s.phase, s.fields).canonical() == encoder.encode(s.to_json())

    def test_wire_form(self):
        """Each variant's tagged form is upstream's."""
        s = KernelState(
            "Running",
            {
                "b": KBool(False),
                "u": KU64(2**64 - 1),
                "s": KString("é"),
                "n": KNamedVariant("Stage", "Body"),
                "q": KSeq([KNone()]),
                "t": KSet([KU64(2), KU64(1)]),
                "m": KMap({KString("k"): KU64(0)}),
            },
        )
        assert s.to_json() == {
            "phase": "Running",
            "fields": {
                "b": {"type": "bool", "value": False},
                "m": {"type": "map", "entries": [[{"type": "string", "value": "k"}, {"type": "u64", "value": 0}]]},
                "n": {"type": "named_variant", "enum_name": "Stage", "variant": "Body"},
                "q": {"type": "seq", "items": [{"type": "none"}]},
                "s": {"type": "string", "value": "é"},
                "t": {"type": "set", "items": [{"type": "u64", "value": 1}, {"type": "u64", "value": 2}]},
                "u": {"type": "u64", "value": 2**64 - 1},
            },
        }
        assert s.canonical().startswith('{"phase":"Running","fields":{"b":{"type":"bool","value":false},"m":')


class TestOrderIndependence:
    @SETTINGS
    @given(st.lists(kernel_values, max_size=6).flatmap(lambda xs: st.tuples(st.just(xs), st.permutations(xs))))
    def test_set_order_and_duplicates_do_not_matter(self, pair):
        """A Set built from any permutation (or with repeats) is equal, byte for byte."""
        items, perm = pair
        a, b = KSet(items), KSet(perm + perm)
        assert a == b
        assert KernelState("P", {"s": a}).canonical() == KernelState("P", {"s": b}).canonical()
        assert list(a.items) == sorted(set(items), key=lambda v: v.sort_key())

    @SETTINGS
    @given(st.dictionaries(kernel_values, kernel_values, max_size=5).flatmap(
        lambda d: st.tuples(st.just(d), st.permutations(list(d.items())))))
    def test_map_entry_order_does_not_matter(self, pair):
        """A Map built from its entries in any order is equal, byte for byte."""
        d, perm = pair
        a, b = KMap(d), KMap(perm)
        assert a == b
        assert KernelState("P", {"m": a}).canonical() == KernelState("P", {"m": b}).canonical()

    @SETTINGS
    @given(st.dictionaries(st.text(max_size=3), kernel_values, max_size=5).flatmap(
        lambda d: st.tuples(st.just(d), st.permutations(list(d.items())))))
    def test_field_order_does_not_matter(self, pair):
        """KernelState fields given in any order are equal and iterate by name."""
        d, perm = pair
        a, b = KernelState("P", d), KernelState("P", perm)
        assert a == b and a.canonical() == b.canonical()
        assert list(a.fields) == sorted(d)


class TestOrdering:
    def test_variant_rank(self):
        """Bool < U64 < String < NamedVariant < Seq < Set < Map < None."""
        ranked = [KBool(True), KU64(0), KString(""), KNamedVariant("", ""), KSeq(), KSet(), KMap(), KNone()]
        assert sorted(reversed(ranked)) == ranked

    @SETTINGS
    @given(kernel_values, kernel_values)
    def test_order_is_total_and_agrees_with_equality(self, a, b):
        """Exactly one of a < b, a == b, a > b holds."""
        assert [a < b, a == b, a > b].count(True) == 1
        assert (a <= b and b <= a) == (a == b)

    @SETTINGS
    @given(st.text(max_size=4), st.text(max_size=4))
    def test_strings_order_by_utf8_bytes(self, a, b):
        """String order is code-point order, the same as UTF-8 byte order (upstream)."""
        assert (KString(a) < KString(b)) == (a.encode() < b.encode())


class TestValidation:
    @pytest.mark.parametrize(
        "make",
        [
            lambda: KU64(-1),
            lambda: KU64(2**64),
            lambda: KU64(True),
            lambda: KBool(1),
            lambda: KString(b"x"),
            lambda: KSeq("abc"),
            lambda: KMap([(1,)]),
            lambda: KernelState(3),
            lambda: KernelState("P", {1: KU64(1)}),
            lambda: KernelState("P", {"x": 1.5}),
            lambda: kernel_value(object()),
            # fields as an iterable whose items are not (name, value) pairs: before, a bare
            # TypeError / ValueError, and "ab" was taken as the pair a -> "b"
            lambda: KernelState("P", [1, 2]),
            lambda: KernelState("P", [("x", 1, 2)]),
            lambda: KernelState("P", ["ab"]),
            # KernelFields on its own checks its argument too (it raised a bare TypeError)
            lambda: KernelFields(5),
            lambda: KernelFields(None),
            # a set has no order of its own (it follows the hash seed): not a sequence
            lambda: KSeq({KU64(1), KU64(2)}),
            lambda: KSeq(frozenset()),
        ],
    )
    def test_bad_values_are_invalid_input(self, make):
        """Out-of-range, mistyped and non-kernel values raise InvalidInput."""
        with pytest.raises(InvalidInput):
            make()

    @pytest.mark.parametrize(
        "wire",
        [
            {"type": "u64", "value": -1},
            {"type": "float", "value": 1.5},
            {"type": "set"},
            {"type": "map", "entries": [[{"type": "none"}]]},
            ["not", "an", "object"],
        ],
    )
    def test_bad_wire_values_are_invalid_input(self, wire):
        """from_json refuses what is not a kernel value."""
        with pytest.raises(InvalidInput):
            KernelValue.from_json(wire)
        with pytest.raises(InvalidInput):
            KernelState.from_json({"phase": "P", "fields": {"x": wire}})

    def test_a_bad_scalar_in_the_wire_form_is_named_by_its_path(self):
        """from_json names the path of a bad bool, u64 or string, not just the class."""
        for wire, words in [
            ({"type": "u64", "value": -1}, "outside"),
            ({"type": "bool", "value": 1}, "must be a bool"),
            ({"type": "seq", "items": [{"type": "string", "value": 5}]}, "must be a str"),
        ]:
            with pytest.raises(InvalidInput, match=words) as info:
                KernelState.from_json({"phase": "P", "fields": {"x": wire}}, "expected")
            assert info.value.field.startswith("expected.fields['x']")

    def test_nesting_is_bounded_so_every_stored_state_reads_back(self):
        """A state nests kernel values at most MAX_DEPTH levels: deeper is InvalidInput when
        it is encoded (before any write), never a state that is stored and then cannot be
        read (the JSON reader gives up around 330 levels); absurd depths in a set or map
        are InvalidInput, not a bare RecursionError."""
        from mobstore.storage._kernel_values import MAX_DEPTH

        def nest(n, wrap):
            v = KNone()
            for _ in range(n):
                v = wrap(v)
            return v

        for wrap in (lambda v: KSeq([v]), lambda v: KMap({KU64(1): v}), lambda v: KSet([v])):
            ok = KernelState("P", {"x": nest(MAX_DEPTH, wrap)})
            assert KernelState._from_stored(ok.canonical()) == ok
            deep = KernelState("P", {"x": nest(MAX_DEPTH + 1, wrap)})
            with pytest.raises(InvalidInput, match="nested deeper"):
                deep.canonical()
        for wrap in (lambda v: KSet([v]), lambda v: KMap({v: KNone()})):
            with pytest.raises(InvalidInput, match="nested deeper"):
                nest(2000, wrap)
        text = '{"phase":"P","fields":{"x":' + '{"type":"seq","items":[' * 1200 + '{"type":"none"}' + "]}" * 1200 + "}}"
        with pytest.raises(InvalidInput, match="nested deeper"):
            KernelState._from_stored(text)  # stored by something else

    def test_plain_values_convert(self):
        """kernel_value maps unambiguous plain values onto variants."""
        assert kernel_value([True, 1, "s", None]) == KSeq([KBool(True), KU64(1), KString("s"), KNone()])
        assert kernel_value({"b", "a"}) == KSet([KString("a"), KString("b")])
        assert kernel_value({1: "x"}) == KMap({KU64(1): KString("x")})
        assert KernelState("P", {"x": 1}) == KernelState("P", {"x": KU64(1)})
