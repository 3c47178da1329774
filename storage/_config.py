"""The realm config (SEMANTICS.md §7): records, the merge patch, validation, commands, reads.

Theory of operation
-------------------
The config is a JSON object with a *generation*: 0 before anything was written, then +1 per
successful ``set`` or ``patch``. Both live in **one row** of ``realm_config`` and are written
by **one statement**, so they change together or not at all; a crash can never leave a new
config with an old generation (upstream writes them to two files, config first, and a crash
between the two lets a client holding the old generation overwrite the newer config: W11).

A write command, inside the transaction, in this order:

1. reads the row (none: the initial config and generation 0);
2. if an ``expected_generation`` is given and differs, raises
   :class:`GenerationConflict(expected, current) <GenerationConflict>` before anything is
   written;
3. computes the new config (``set``: the given one; ``patch``: RFC 7386 merge patch of the
   current config, which only the transaction can see, so concurrent patches never merge
   onto a stale base);
4. validates it (a failure is :class:`InvalidInput`; nothing written);
5. writes config and generation + 1 in one ``INSERT ... ON CONFLICT DO UPDATE``.

The realm actor (key ``"realm"``) serialises writers, and the generation check runs inside
the transaction, so of N concurrent writers with the same expected generation exactly one
wins and every other gets ``GenerationConflict``. There is no lock file: one process owns
the store (``StoreLocked``).

Rejected: a generation column beside a config *table* of keys (two statements, and a patch
would be many); a separate generation counter table (two rows to keep in step).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from typing import Any

import apsw
import attrs

from ._codec import check_count, decode_json, encode_json, encode_object
from ._database import Transaction
from ._errors import DecodeError, GenerationConflict, InvalidInput, MobStoreError

Validator = Callable[[dict[str, Any]], None]


# -- records ------------------------------------------------------------------------------------


def _opt_str(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if value is not None and type(value) is not str:
        raise InvalidInput(attr.name, f"must be a str or None, got {type(value).__name__}")


def _str(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if type(value) is not str:
        raise InvalidInput(attr.name, f"must be a str, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class ConfigResolvedPaths:
    """Filesystem paths behind a config (diagnostic only; never in a PUBLIC envelope).

    For mobstore: ``root`` is the store file's directory and ``config_path`` the store file;
    the upstream realm paths that have no counterpart here are ``None``.
    """

    root: str = attrs.field(validator=_str)
    config_path: str = attrs.field(validator=_str)
    manifest_path: str | None = attrs.field(default=None, validator=_opt_str)
    sessions_sqlite_path: str | None = attrs.field(default=None, validator=_opt_str)
    sessions_jsonl_dir: str | None = attrs.field(default=None, validator=_opt_str)

    @classmethod
    def for_store(cls, path: str) -> ConfigResolvedPaths:
        """The paths of the store file ``path``."""
        return cls(root=os.path.dirname(path), config_path=path)

    def to_json(self) -> dict[str, Any]:
        """The wire form; ``None`` paths are omitted."""
        return {f.name: getattr(self, f.name) for f in attrs.fields(type(self)) if getattr(self, f.name) is not None}


@attrs.frozen(kw_only=True)
class ConfigStoreMetadata:
    """Where a config lives: realm and instance ids, backend, and (diagnostic) paths."""

    realm_id: str | None = attrs.field(default=None, validator=_opt_str)
    instance_id: str | None = attrs.field(default=None, validator=_opt_str)
    backend: str | None = attrs.field(default=None, validator=_opt_str)
    resolved_paths: ConfigResolvedPaths | None = None


@attrs.frozen
class ConfigSnapshot:
    """The config, its generation (0 before the first write) and where it lives.

    ``config`` is a fresh dict per call: changing it changes nothing stored.
    """

    config: dict[str, Any]
    generation: int
    metadata: ConfigStoreMetadata | None = None


class ConfigEnvelopePolicy(str, enum.Enum):
    """Whether an envelope may show filesystem paths: PUBLIC never does, DIAGNOSTIC does
    when the metadata has them."""

    PUBLIC = "public"
    DIAGNOSTIC = "diagnostic"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(kw_only=True)
class ConfigEnvelope:
    """The wire envelope of a config across surfaces; build it with :meth:`from_snapshot`."""

    config: dict[str, Any]
    generation: int
    realm_id: str | None = None
    instance_id: str | None = None
    backend: str | None = None
    resolved_paths: ConfigResolvedPaths | None = None

    @classmethod
    def from_snapshot(
        cls, snapshot: ConfigSnapshot, policy: ConfigEnvelopePolicy = ConfigEnvelopePolicy.DIAGNOSTIC
    ) -> ConfigEnvelope:
        """Project ``snapshot``; with ``PUBLIC``, ``resolved_paths`` is always ``None``.

        The default policy is DIAGNOSTIC, as upstream's ``From<ConfigSnapshot>``; pass
        ``ConfigEnvelopePolicy.PUBLIC`` for anything a client outside the host sees.
        """
        policy = ConfigEnvelopePolicy(policy)
        m = snapshot.metadata
        return cls(
            config=snapshot.config,
            generation=snapshot.generation,
            realm_id=m.realm_id if m else None,
            instance_id=m.instance_id if m else None,
            backend=m.backend if m else None,
            resolved_paths=m.resolved_paths if m and policy is ConfigEnvelopePolicy.DIAGNOSTIC else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form; ``resolved_paths`` is omitted when ``None``."""
        out: dict[str, Any] = {
            "config": self.config,
            "generation": self.generation,
            "realm_id": self.realm_id,
            "instance_id": self.instance_id,
            "backend": self.backend,
        }
        if self.resolved_paths is not None:
            out["resolved_paths"] = self.resolved_paths.to_json()
        return out


# -- merge patch and validation -------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, exactly: an object patch merges key by key (``None``
    removes the key, anything else is merged recursively, onto ``{}`` where the target has
    no object, so nulls nested under a new key are dropped); any other patch replaces the
    target. Returns a new value; neither argument is changed.

    >>> merge_patch({"a": "b", "c": {"d": "e"}}, {"a": "z", "c": {"d": None}})
    {'a': 'z', 'c': {}}
    """
    if type(patch) is not dict:
        return patch
    result = dict(target) if type(target) is dict else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


#: (section or None for the top level, key): keys that must be integers > 0 when present and
#: not null (upstream ``Config::validate``, SEMANTICS.md 7.1; the model registry is out of
#: scope).
POSITIVE_KEYS: tuple[tuple[str | None, str], ...] = (
    (None, "max_tokens"),
    ("agent", "max_tokens_per_turn"),
    ("budget", "max_tokens"),
    ("limits", "budget"),
    ("limits", "max_sessions"),
    ("compaction", "auto_compact_threshold"),
    ("compaction", "recent_turn_budget"),
    ("compaction", "max_summary_tokens"),
    ("compaction", "min_turns_between_compactions"),
)


def validate_config(config: dict[str, Any]) -> None:
    """The default validator: upstream's rules, applied to the keys that are present.

    Raises:
        InvalidInput: naming the key (``config['agent']['max_tokens_per_turn']``) and what
            is wrong with it.
    """
    for section, key in POSITIVE_KEYS:
        scope, path = config, "config"
        if section is not None:
            scope = config.get(section)
            path = f"config[{section!r}]"
            if scope is None:
                continue
            if type(scope) is not dict:
                raise InvalidInput(path, f"must be an object, got {type(scope).__name__}")
        value = scope.get(key)
        if value is None:
            continue
        if type(value) is not int or value <= 0:
            raise InvalidInput(f"{path}[{key!r}]", f"must be an integer greater than 0, got {value!r}")


def _validate(config: dict[str, Any], validator: Validator | None) -> None:
    if validator is None:
        return
    try:
        validator(config)
    except MobStoreError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("config", f"rejected by the config validator: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a broken validator is not a failing disk
        raise InvalidInput("config", f"the config validator failed: {type(exc).__name__}: {exc}") from exc


# -- commands ---------------------------------------------------------------------------------

_UPSERT = (
    "INSERT INTO realm_config (id, config, generation) VALUES (1, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET config = excluded.config, generation = excluded.generation"
)


def _current(tx: Transaction, initial: str) -> tuple[str, int]:
    rows = tx.execute("SELECT config, generation FROM realm_config WHERE id = 1").fetchall()
    return (rows[0][0], rows[0][1]) if rows else (initial, 0)


def _check(expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise GenerationConflict(expected, current)


def _expected(value: Any) -> int | None:
    return None if value is None else check_count(value, "expected_generation")


@attrs.frozen
class SetConfig:
    """Replace the config (generation CAS); returns ``(config, generation)``."""

    text: str
    expected_generation: int | None
    validator: Validator | None
    initial: str

    @classmethod
    def of(cls, config: Any, expected_generation: int | None, validator: Validator | None, initial: str) -> SetConfig:
        """Check ``config`` is a JSON object of plain JSON (InvalidInput naming the path)."""
        return cls(encode_object(config, "config"), _expected(expected_generation), validator, initial)

    def apply(self, tx: Transaction) -> tuple[dict[str, Any], int]:
        _, current = _current(tx, self.initial)
        _check(self.expected_generation, current)
        # The validator checks a private copy (it may change it: that changes nothing); what
        # is stored and returned is the config as given.
        if self.validator is not None:
            _validate(decode_json(self.text, "config"), self.validator)
        tx.execute(_UPSERT, (self.text, current + 1))
        return decode_json(self.text, "config"), current + 1


@attrs.frozen
class PatchConfig:
    """Merge-patch the current config (RFC 7386; generation CAS); returns ``(config,
    generation)`` with the merged config."""

    delta_text: str
    expected_generation: int | None
    validator: Validator | None
    initial: str

    @classmethod
    def of(cls, delta: Any, expected_generation: int | None, validator: Validator | None, initial: str) -> PatchConfig:
        """Check ``delta`` is plain JSON (InvalidInput naming the path)."""
        return cls(encode_json(delta, "delta"), _expected(expected_generation), validator, initial)

    def apply(self, tx: Transaction) -> tuple[dict[str, Any], int]:
        text, current = _current(tx, self.initial)
        _check(self.expected_generation, current)
        merged = merge_patch(decode_json(text, "stored config"), decode_json(self.delta_text, "delta"))
        if type(merged) is not dict:
            raise InvalidInput(
                "delta",
                f"a merge patch that is not an object replaces the whole config, and the config "
                f"must be an object; got {type(merged).__name__}",
            )
        new_text = encode_object(merged, "config")
        _validate(merged, self.validator)  # encoded first: what it might change is not stored
        tx.execute(_UPSERT, (new_text, current + 1))
        return decode_json(new_text, "config"), current + 1


# -- reads --------------------------------------------------------------------------------------


def get_config(conn: apsw.Connection, initial: str) -> tuple[dict[str, Any], int]:
    """``(config, generation)``: the initial config and 0 if nothing was ever written."""
    rows = conn.execute("SELECT config, generation FROM realm_config WHERE id = 1").fetchall()
    text, generation = (rows[0][0], rows[0][1]) if rows else (initial, 0)
    config = decode_json(text, "realm config")
    if type(config) is not dict:
        raise DecodeError("realm config", f"stored config is a {type(config).__name__}, not an object")
    return config, generation
