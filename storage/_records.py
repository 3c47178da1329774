"""Records of the mob event log (attrs, frozen)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from ._codec import check_id, check_time, check_utf8
from ._errors import InvalidInput


@attrs.frozen
class NewMobEvent:
    """An event to append. ``kind`` is a non-empty tag (an open set); ``payload`` a JSON object.

    ``timestamp`` defaults to the store clock, read when the cursor is assigned; ``mob_id``
    defaults to the handle's mob (another mob's id is :class:`InvalidInput`).

    >>> NewMobEvent("meerkat_spawned", {"meerkat_id": "m1"})
    NewMobEvent(kind='meerkat_spawned', payload={'meerkat_id': 'm1'}, timestamp=None, mob_id=None)
    """

    kind: str
    payload: dict[str, Any] = attrs.field(factory=dict)
    timestamp: datetime | None = attrs.field(default=None, kw_only=True)
    mob_id: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        # One check function instead of four attrs validators: this is on the hot path. The
        # deep JSON check of the payload happens once, when the event is encoded for a write.
        if type(self.kind) is not str or not self.kind:
            raise InvalidInput("kind", f"must be a non-empty str, got {self.kind!r}")
        check_utf8(self.kind, "kind")
        payload = self.payload
        if payload is None:
            object.__setattr__(self, "payload", {})
        elif type(payload) is not dict:
            raise InvalidInput("payload", f"must be a dict (a JSON object), got {type(payload).__name__}")
        if self.timestamp is not None:
            object.__setattr__(self, "timestamp", check_time(self.timestamp, "timestamp"))
        if self.mob_id is not None:
            check_id(self.mob_id, "mob_id")


@attrs.frozen
class MobEvent:
    """A committed event. ``cursor`` is assigned inside the commit: strictly increasing per
    mob, starting at 1, never reused."""

    cursor: int
    timestamp: datetime
    mob_id: str
    kind: str
    payload: dict[str, Any] = attrs.field(factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The upstream (Meerkat) JSON form: ``{"cursor", "timestamp", "mob_id", "kind":
        {"type": kind, **payload}}``."""
        return {
            "cursor": self.cursor,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "mob_id": self.mob_id,
            "kind": {"type": self.kind, **self.payload},
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> MobEvent:
        """Parse the upstream JSON form (see :meth:`to_wire`)."""
        try:
            kind = dict(wire["kind"])
            tag = kind.pop("type")
            ts = datetime.fromisoformat(str(wire["timestamp"]).replace("Z", "+00:00"))
            return cls(int(wire["cursor"]), check_time(ts, "timestamp"), str(wire["mob_id"]), tag, kind)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("wire event", f"not an upstream MobEvent: {exc}") from exc
