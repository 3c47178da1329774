"""Realm profiles: the Profile record, and commands and reads (SQL over an open transaction).

Revision rule
-------------
A stored profile carries a revision: 1 after create, +1 per update. Update and delete take
the caller's expected revision and raise :class:`CasConflict` (nothing changed) on a
mismatch; a missing name is :class:`NotFound`, checked before the revision. As for specs
(``_specs``), a delete leaves a tombstone whose revision is the name's high-water mark, so a
re-created name continues from it instead of restarting at 1 (API.md decision 6): a client
holding a revision of the deleted profile can never update or delete its successor.

Times come from the store clock; ``updated_at`` never goes backwards (``max(now, previous)``,
SEMANTICS.md 1.2), ``created_at`` never changes.

The Profile record follows upstream's serde form (SEMANTICS.md 5.1). Keys this version does
not know (later upstream versions add fields) are kept in ``extra`` and written back, so a
round trip through this store loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import apsw
import attrs

from ._codec import (
    check_count,
    check_id,
    check_time,
    check_utf8,
    decode_json,
    encode_json,
    encode_object,
    micros_to_time,
    stored_count,
    time_to_micros,
)
from ._database import Transaction
from ._errors import CasConflict, DecodeError, InvalidInput, NotFound

RUNTIME_MODES = ("autonomous_host", "turn_driven")
BACKENDS = ("session", "external")
_INT32_MAX = 2**31 - 1


# -- validators and converters ----------------------------------------------------------------


def _bool(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if type(value) is not bool:
        raise InvalidInput(attr.name, f"must be a bool, got {type(value).__name__}")


def _str(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if type(value) is not str:
        raise InvalidInput(attr.name, f"must be a str, got {type(value).__name__}")
    check_utf8(value, attr.name)


def _to_tuple(value: Any) -> Any:
    return tuple(value) if type(value) is list else value


def _strs(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if type(value) is not tuple:
        raise InvalidInput(attr.name, f"must be a list of str, got {type(value).__name__}")
    for i, v in enumerate(value):
        if type(v) is not str:
            raise InvalidInput(f"{attr.name}[{i}]", f"must be a str, got {type(v).__name__}")
        check_utf8(v, f"{attr.name}[{i}]")


def _opt_json(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if value is not None:
        encode_json(value, attr.name)


def _to_dict(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) and type(value) is not dict else value


def _extra(known: frozenset[str]) -> Any:
    def check(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
        if type(value) is not dict:
            raise InvalidInput(attr.name, f"must be a dict, got {type(value).__name__}")
        for k in value:
            if k in known:
                raise InvalidInput(f"{attr.name}[{k!r}]", "is a known field; pass it by its name")
        encode_json(value, attr.name)

    return check


# -- records ------------------------------------------------------------------------------------

_TOOL_FLAGS = ("builtins", "shell", "comms", "memory", "mob", "mob_tasks", "schedule")
_TOOL_LISTS = ("mcp", "rust_bundles")


@attrs.frozen(kw_only=True)
class ToolConfig:
    """Which tool families a profile's meerkats get; everything off by default.

    ``extra`` holds keys this version does not know, written back unchanged.
    """

    builtins: bool = attrs.field(default=False, validator=_bool)
    shell: bool = attrs.field(default=False, validator=_bool)
    comms: bool = attrs.field(default=False, validator=_bool)
    memory: bool = attrs.field(default=False, validator=_bool)
    mob: bool = attrs.field(default=False, validator=_bool)
    mob_tasks: bool = attrs.field(default=False, validator=_bool)
    schedule: bool = attrs.field(default=False, validator=_bool)
    mcp: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple, validator=_strs)
    rust_bundles: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple, validator=_strs)
    extra: dict[str, Any] = attrs.field(
        factory=dict, converter=_to_dict, validator=_extra(frozenset(_TOOL_FLAGS + _TOOL_LISTS))
    )

    def to_json(self) -> dict[str, Any]:
        """The upstream JSON form (every known key, then ``extra``)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _TOOL_FLAGS}
        out["mcp"] = list(self.mcp)
        out["rust_bundles"] = list(self.rust_bundles)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> ToolConfig:
        """Parse the JSON form; missing keys take their defaults, unknown ones go to ``extra``.

        Raises:
            InvalidInput: ``obj`` is not an object, or a known key has the wrong type.
        """
        if type(obj) is not dict:
            raise InvalidInput("tools", f"must be a JSON object, got {type(obj).__name__}")
        known = {k: obj[k] for k in _TOOL_FLAGS + _TOOL_LISTS if k in obj}
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(**known, extra=extra)


_PROFILE_FIELDS = (
    "model",
    "skills",
    "tools",
    "peer_description",
    "external_addressable",
    "backend",
    "runtime_mode",
    "max_inline_peer_notifications",
    "output_schema",
    "provider_params",
)
_OPTIONAL = ("backend", "max_inline_peer_notifications", "output_schema", "provider_params")


def _model(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not str or not value:
        raise InvalidInput("model", f"must be a non-empty str, got {value!r}")
    check_utf8(value, "model")


def _tools(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not ToolConfig:
        raise InvalidInput("tools", f"must be a ToolConfig, got {type(value).__name__}")


def _backend(_inst: Any, _attr: Any, value: Any) -> None:
    if value is not None and value not in BACKENDS:
        raise InvalidInput("backend", f"must be one of {BACKENDS} or None, got {value!r}")


def _runtime_mode(_inst: Any, _attr: Any, value: Any) -> None:
    if value not in RUNTIME_MODES:
        raise InvalidInput("runtime_mode", f"must be one of {RUNTIME_MODES}, got {value!r}")


def _inline(_inst: Any, _attr: Any, value: Any) -> None:
    if value is None:
        return
    if type(value) is not int:
        raise InvalidInput("max_inline_peer_notifications", f"must be an int or None, got {type(value).__name__}")
    if not -1 <= value <= _INT32_MAX:
        raise InvalidInput(
            "max_inline_peer_notifications",
            f"{value} is out of range: -1 (always), 0 (never) or a threshold up to {_INT32_MAX}",
        )


@attrs.frozen
class Profile:
    """A reusable meerkat template: model, skills, tools and peer settings.

    Only ``model`` is required; every other field is keyword-only with upstream's default.
    ``max_inline_peer_notifications``: ``None`` = runtime default, 0 = never, -1 = always,
    > 0 = threshold. ``output_schema`` and ``provider_params`` are opaque JSON. ``extra``
    holds keys this version does not know, written back unchanged (see the module docstring).

    >>> Profile("claude-opus-4-6", skills=["review"]).skills
    ('review',)
    """

    model: str = attrs.field(validator=_model)
    skills: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_to_tuple, validator=_strs)
    tools: ToolConfig = attrs.field(factory=ToolConfig, kw_only=True, validator=_tools)
    peer_description: str = attrs.field(default="", kw_only=True, validator=_str)
    external_addressable: bool = attrs.field(default=False, kw_only=True, validator=_bool)
    backend: str | None = attrs.field(default=None, kw_only=True, validator=_backend)
    runtime_mode: str = attrs.field(default="autonomous_host", kw_only=True, validator=_runtime_mode)
    max_inline_peer_notifications: int | None = attrs.field(default=None, kw_only=True, validator=_inline)
    output_schema: Any = attrs.field(default=None, kw_only=True, validator=_opt_json)
    provider_params: Any = attrs.field(default=None, kw_only=True, validator=_opt_json)
    extra: dict[str, Any] = attrs.field(
        factory=dict, kw_only=True, converter=_to_dict, validator=_extra(frozenset(_PROFILE_FIELDS))
    )

    def to_json(self) -> dict[str, Any]:
        """The upstream JSON form: every known key (optional ones only when set), then
        ``extra``."""
        out: dict[str, Any] = {
            "model": self.model,
            "skills": list(self.skills),
            "tools": self.tools.to_json(),
            "peer_description": self.peer_description,
            "external_addressable": self.external_addressable,
            "runtime_mode": self.runtime_mode,
        }
        for k in _OPTIONAL:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Profile:
        """Parse the JSON form; missing keys take their defaults (``null`` too, for the
        optional ones), unknown keys go to ``extra``.

        Raises:
            InvalidInput: ``obj`` is not an object, ``model`` is missing, or a known key has
                the wrong type or value.
        """
        if type(obj) is not dict:
            raise InvalidInput("profile", f"must be a JSON object, got {type(obj).__name__}")
        if "model" not in obj:
            raise InvalidInput("model", "is required")
        kw = {k: obj[k] for k in _PROFILE_FIELDS if k in obj}
        if "tools" in kw:
            kw["tools"] = ToolConfig.from_json(kw["tools"])
        kw["extra"] = {k: v for k, v in obj.items() if k not in kw}
        return cls(**kw)


@attrs.frozen
class StoredRealmProfile:
    """A realm profile as stored: its name, the profile, and revision metadata.

    ``revision`` is 1 after create and +1 per update (after a delete, a re-created name
    continues from the deleted one's revision). ``created_at`` never changes; ``updated_at``
    is the store clock at the last write and never goes backwards.
    """

    name: str
    profile: Profile
    revision: int
    created_at: datetime
    updated_at: datetime


# -- commands -----------------------------------------------------------------------------------


def check_name(name: Any) -> str:
    """A profile name: a non-empty ``str`` of at most 256 characters (no NUL)."""
    return check_id(name, "name")


def _encode_profile(profile: Any) -> str:
    if type(profile) is not Profile:
        raise InvalidInput("profile", f"must be a Profile, got {type(profile).__name__}")
    return encode_object(profile.to_json(), "profile")


def _decode_profile(text: str, name: str) -> Profile:
    what = f"realm profile {name!r}"
    try:
        return Profile.from_json(decode_json(text, what))
    except InvalidInput as exc:
        raise DecodeError(what, str(exc)) from exc


_SELECT = "SELECT revision, profile, created_us, updated_us FROM realm_profiles WHERE name = ?"
_Row = tuple[int, "str | None", "int | None", "int | None"]


def _row(tx: Transaction, name: str) -> _Row | None:
    rows = tx.execute(_SELECT, (name,)).fetchall()
    if not rows:
        return None
    revision, text, created, updated = rows[0]
    return stored_count(revision, _what(name)), text, created, updated


def _now(tx: Transaction) -> int:
    return time_to_micros(check_time(tx.now(), "clock()"))


def _what(name: str) -> str:
    return f"revision of realm profile {name!r}"


@attrs.frozen
class CreateProfile:
    """Create a realm profile; returns its :class:`StoredRealmProfile` (revision 1 for a
    name never used). A live profile of that name is :class:`CasConflict` (expected 0, i.e.
    absent; actual its revision)."""

    name: str
    profile: Profile
    text: str

    @classmethod
    def of(cls, name: Any, profile: Any) -> CreateProfile:
        """Raises :class:`InvalidInput` for a bad name, or a profile that is not a
        :class:`Profile` or does not encode."""
        return cls(check_name(name), profile, _encode_profile(profile))

    def apply(self, tx: Transaction) -> StoredRealmProfile:
        row = _row(tx, self.name)
        if row is not None and row[1] is not None:
            raise CasConflict(_what(self.name), 0, row[0], "a profile with this name exists")
        revision = 1 if row is None else row[0] + 1
        now = _now(tx)
        tx.execute(
            "INSERT INTO realm_profiles (name, revision, profile, created_us, updated_us)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET revision = excluded.revision,"
            " profile = excluded.profile, created_us = excluded.created_us,"
            " updated_us = excluded.updated_us",
            (self.name, revision, self.text, now, now),
        )
        t = micros_to_time(now)
        return StoredRealmProfile(self.name, self.profile, revision, t, t)


@attrs.frozen
class UpdateProfile:
    """Replace a realm profile if it is at ``expected``; returns the new record
    (revision ``expected + 1``, ``created_at`` kept, ``updated_at = max(now, previous)``).

    Raises (when applied; nothing changed): :class:`NotFound` if there is no such profile
    (checked first), :class:`CasConflict` if its revision is not ``expected``.
    """

    name: str
    profile: Profile
    text: str
    expected: int

    @classmethod
    def of(cls, name: Any, profile: Any, expected_revision: Any) -> UpdateProfile:
        """Raises :class:`InvalidInput` for a bad name, profile or revision."""
        expected = check_count(expected_revision, "expected_revision")
        return cls(check_name(name), profile, _encode_profile(profile), expected)

    def apply(self, tx: Transaction) -> StoredRealmProfile:
        row = _row(tx, self.name)
        if row is None or row[1] is None:
            raise NotFound("realm profile", self.name)
        revision, _, created, updated = row
        if revision != self.expected:
            raise CasConflict(_what(self.name), self.expected, revision)
        now = max(_now(tx), updated)
        tx.execute(
            "UPDATE realm_profiles SET revision = ?, profile = ?, updated_us = ? WHERE name = ?",
            (revision + 1, self.text, now, self.name),
        )
        return StoredRealmProfile(
            self.name, self.profile, revision + 1, micros_to_time(created), micros_to_time(now)
        )


@attrs.frozen
class DeleteProfile:
    """Delete a realm profile if it is at ``expected``; returns the deleted record.

    Raises (when applied; nothing changed): :class:`NotFound` if there is no such profile,
    :class:`CasConflict` if its revision is not ``expected``. The revision stays behind as
    the name's high-water mark.
    """

    name: str
    expected: int

    @classmethod
    def of(cls, name: Any, expected_revision: Any) -> DeleteProfile:
        """Raises :class:`InvalidInput` for a bad name or revision."""
        return cls(check_name(name), check_count(expected_revision, "expected_revision"))

    def apply(self, tx: Transaction) -> StoredRealmProfile:
        row = _row(tx, self.name)
        if row is None or row[1] is None:
            raise NotFound("realm profile", self.name)
        if row[0] != self.expected:
            raise CasConflict(_what(self.name), self.expected, row[0])
        tx.execute("UPDATE realm_profiles SET profile = NULL WHERE name = ?", (self.name,))
        return _record(self.name, row)


# -- reads (run on a reader connection) ---------------------------------------------------------


def _record(name: str, row: _Row) -> StoredRealmProfile:
    revision, text, created, updated = row
    return StoredRealmProfile(
        name,
        _decode_profile(text, name),  # type: ignore[arg-type]
        stored_count(revision, _what(name)),
        micros_to_time(created),  # type: ignore[arg-type]
        micros_to_time(updated),  # type: ignore[arg-type]
    )


def get_profile(conn: apsw.Connection, name: str) -> StoredRealmProfile | None:
    """The live profile called ``name``, or ``None``."""
    rows = conn.execute(_SELECT + " AND profile IS NOT NULL", (name,)).fetchall()
    return _record(name, rows[0]) if rows else None


def list_profiles(conn: apsw.Connection) -> list[StoredRealmProfile]:
    """Every live profile, sorted by name (by code point)."""
    rows = conn.execute(
        "SELECT name, revision, profile, created_us, updated_us FROM realm_profiles"
        " WHERE profile IS NOT NULL ORDER BY name"
    ).fetchall()
    return [_record(r[0], r[1:]) for r in rows]
