"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from mobstore.storage import (
    KBool,
    KernelState,
    KMap,
    KNamedVariant,
    KNone,
    KSeq,
    KSet,
    KString,
    KU64,
)

# Small alphabets and numbers make equal values (and so duplicates in sets and maps) common;
# the occasional huge number and non-ASCII text cover the edges of the encoding.
_names = st.text(alphabet="ab", max_size=2)
_texts = _names | st.text(max_size=3)
_u64 = st.integers(0, 3) | st.integers(0, 2**64 - 1)

kernel_scalars = st.one_of(
    st.booleans().map(KBool),
    _u64.map(KU64),
    _texts.map(KString),
    st.builds(KNamedVariant, _names, _names),
    st.just(KNone()),
)

#: Any KernelValue, nested up to a few levels.
kernel_values = st.recursive(
    kernel_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(KSeq),
        st.lists(children, max_size=4).map(KSet),
        st.lists(st.tuples(children, children), max_size=4).map(KMap),
    ),
    max_leaves=10,
)

#: Any KernelState, from a small space of phases and field names.
kernel_states = st.builds(
    KernelState,
    st.sampled_from(["Pending", "Running", "Done"]),
    st.dictionaries(_names, kernel_values, max_size=3),
)


# -- mob specs (tests/test_specs_stateful.py) -------------------------------------------------

#: A few mob ids, so operations often hit the same spec.
spec_mobs = st.sampled_from(("a", "b", "c"))
#: Small spec definitions (without "id": the store fills it in).
spec_definitions = st.dictionaries(
    st.sampled_from(["x", "y", "z"]), st.integers(-3, 3) | st.text(max_size=3), max_size=2
)
#: An expected revision drawn blind (None = unconditional); the model decides if it matches.
spec_revisions = st.none() | st.integers(0, 4)
