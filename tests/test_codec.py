"""The codec: JSON validation and encoding, identifiers, time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mobstore.storage import DecodeError, InvalidInput
from mobstore.storage._codec import (
    check_count,
    check_id,
    check_time,
    decode_json,
    encode_json,
    encode_object,
    _check_json,
    _plain,
    micros_to_time,
    time_to_micros,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


# Plain JSON and the near misses the checks must refuse.
any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.sampled_from([float("nan"), float("inf"), -float("inf"), 2**63 - 1, 2**63, -(2**63), -(2**63) - 1])
    | st.text(max_size=3)
    | st.binary(max_size=2)
    | st.just(frozenset({1})),
    lambda inner: st.lists(inner, max_size=3)
    | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=2) | st.integers(0, 2) | st.none(), inner, max_size=3),
    max_leaves=12,
)


def _deep(n: int, leaf: object) -> object:
    v = leaf
    for i in range(n):
        v = [v] if i % 2 else {"k": v}
    return v


class TestEncodeJson:
    @settings(max_examples=500)
    @given(any_values | st.builds(_deep, st.integers(60, 70), any_values))
    @example({"a": 2**63 - 1, "b": -(2**63)})
    @example({"a": 2**63})
    @example([-(2**63) - 1])
    @example({"a": [1.5, float("inf")]})
    @example(_deep(64, 1))
    @example(_deep(65, 1))
    @example({"a": (1, {2: 3})})
    def test_fast_check_agrees_with_the_path_naming_walk(self, value):
        """The fast check (``_plain``) accepts exactly what the path-naming walk accepts."""
        try:
            _check_json(value, "v", 0)
            ok = True
        except InvalidInput:
            ok = False
        assert _plain(value, 0) is ok

    @given(json_values)
    def test_round_trip(self, value):
        """Every plain JSON value round-trips exactly, key order included."""
        back = decode_json(encode_json(value, "v"), "v")
        assert back == value
        if isinstance(value, dict):
            assert list(back) == list(value)

    def test_compact_and_unicode(self):
        """The encoding is compact UTF-8 text (no spaces, no ASCII escapes)."""
        assert encode_json({"a": [1, 2], "é": "ü"}, "v") == '{"a":[1,2],"é":"ü"}'

    @pytest.mark.parametrize(
        "value, path, words",
        [
            ({"a": {"b": float("nan")}}, "v['a']['b']", "finite"),
            ([1, 2, {3: 4}], "v[2]", "key 3"),
            ({"s": {1, 2}}, "v['s']", "set is not JSON"),
            ({"b": b"bytes"}, "v['b']", "bytes is not JSON"),
            ({"n": -(2**63) - 1}, "v['n']", "64 bits"),
        ],
    )
    def test_refusals_name_the_path(self, value, path, words):
        """A non-JSON value is InvalidInput naming the exact path and the problem."""
        with pytest.raises(InvalidInput) as info:
            encode_json(value, "v")
        assert info.value.field == path
        assert words in str(info.value)

    def test_too_deep(self):
        """Nesting deeper than 64 levels is refused (no recursion error)."""
        v: list = []
        for _ in range(100):
            v = [v]
        with pytest.raises(InvalidInput, match="deeper"):
            encode_json(v, "v")

    def test_size_limit_counts_utf8_bytes(self):
        """The size limit is on UTF-8 bytes, not characters."""
        encode_json("é" * 10, "v", max_bytes=22)
        with pytest.raises(InvalidInput, match="more than 21 bytes"):
            encode_json("é" * 10, "v", max_bytes=21)

    def test_object_only(self):
        """encode_object refuses anything but a dict."""
        with pytest.raises(InvalidInput, match="must be a dict"):
            encode_object([1], "payload")


def test_decode_error_names_what():
    """Malformed stored JSON is DecodeError naming the value."""
    with pytest.raises(DecodeError, match="payload of x"):
        decode_json("{nope", "payload of x")


def test_damaged_stored_times_are_decode_errors():
    """A stored time that is not integer microseconds in the datetime range (a hand edit)
    is DecodeError, not a bare TypeError or OverflowError."""
    assert micros_to_time(0) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    for bad, words in [("soon", "'soon' is not an integer"), (1.5, "1.5 is not"), (None, "None is not"), (10**20, "outside")]:
        with pytest.raises(DecodeError, match=words):
            micros_to_time(bad)


async def test_a_damaged_event_time_is_a_decode_error_on_poll():
    from mobstore.actors import NewMobEvent, open_store

    async with open_store() as store:
        events = store.mob("m").events
        await events.append(NewMobEvent("k"))
        with store._db.writer() as conn:
            conn.execute("UPDATE mob_events SET ts_us = 'x'")
        with pytest.raises(DecodeError, match="'x' is not an integer"):
            await events.poll(0, 10)


class TestIdsAndCounts:
    def test_ids(self):
        assert check_id("mob-1", "mob_id") == "mob-1"
        for bad, words in [("", "empty"), ("a\x00", "NUL"), ("x" * 257, "257"), (None, "str")]:
            with pytest.raises(InvalidInput, match=words):
                check_id(bad, "mob_id")

    def test_counts(self):
        assert check_count(0, "limit") == 0
        for bad in [-1, 2**63, True, 1.0]:
            with pytest.raises(InvalidInput, match="limit"):
                check_count(bad, "limit")


class TestTime:
    @given(st.datetimes(timezones=st.just(timezone.utc)))
    def test_micros_round_trip(self, t):
        """UTC datetimes round-trip exactly through integer microseconds."""
        assert micros_to_time(time_to_micros(t)) == t

    def test_offsets_are_normalised(self):
        t = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
        assert check_time(t, "t") == datetime(2026, 1, 1, 17, tzinfo=timezone.utc)

    def test_naive_refused(self):
        with pytest.raises(InvalidInput, match="naive"):
            check_time(datetime(2026, 1, 1), "t")


def test_error_messages_are_actionable():
    """Errors carry their parts and say what was expected and found."""
    from mobstore.storage import ActorCrashed, CasConflict, NotFound, StoreLocked

    e = CasConflict("profile 'w' revision", 1, 2)
    assert (e.expected, e.actual) == (1, 2) and "expected 1, found 2" in str(e)
    nf = NotFound("run", "abc")
    assert isinstance(nf, LookupError) and nf.kind == "run" and "'abc'" in str(nf)
    assert "/x.db" in str(StoreLocked("/x.db"))
    crash = ActorCrashed("mob:a", RuntimeError("boom"))
    assert "not applied" in str(crash) and "boom" in str(crash) and not crash.escalated
    assert json.dumps(str(crash))
