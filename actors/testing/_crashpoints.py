"""Actor crash points: a seeded crash hook for ``open_store(crash_hook=...)``.

The store calls ``hook(actor_key, requests)`` in the actor just before it hands a group of
requests to the committer; raising there crashes the actor at that exact point. The
requests of that group are answered with ``ActorCrashed`` (they were **not** applied), the
supervisor restarts the actor with backoff, and the queued requests are served by the next
incarnation. Without a hook (``crash_hook=None``, production) the kernel pays one ``if``.

:class:`CrashPoints` chooses where: at given message numbers per actor (``at``), and/or
with a probability per group, from a seeded RNG, so a failing run can be replayed exactly
(as long as the groups form the same way: messages are numbered per actor in the order the
actor takes them).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping

import attrs


class InjectedCrash(RuntimeError):
    """The exception a crash point raises inside the actor (``ActorCrashed.cause``)."""

    def __init__(self, actor: str, message: int) -> None:
        self.actor = actor
        self.message = message
        super().__init__(f"injected crash in actor {actor} at message {message}")


@attrs.frozen
class Crash:
    """A crash that fired: the actor, the number of the first message of the group, and the
    group's size."""

    actor: str
    message: int
    group: int


class CrashPoints:
    """A seeded crash hook.

    Example::

        hook = CrashPoints(seed=7, probability=0.05, keys=["mob:"])
        async with open_store(path, crash_hook=hook) as store:
            ...   # some calls get ActorCrashed (not applied: retry them)
        assert hook.fired

    Args:
        seed: seeds the RNG of ``probability``.
        probability: the chance that a group crashes its actor (0 = only ``at``).
        at: ``{actor_key: message numbers}``: crash when the actor hands over the group that
            holds its n-th message (0-based, counted per actor in the order taken). A number
            may be given alone.
        keys: only actors whose key starts with one of these (``"mob:"``, ``"realm"``,
            ``"runtime:"``); ``None`` = every actor.
        max_crashes: stop crashing after this many (``None`` = no limit). Keep it under the
            supervisor's ``max_restarts`` unless you test escalation.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        probability: float = 0.0,
        at: Mapping[str, int | Iterable[int]] | None = None,
        keys: Iterable[str] | None = None,
        max_crashes: int | None = None,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {probability!r}")
        self.seed = seed
        self.probability = probability
        self.at = at or {}
        self.keys = None if keys is None else tuple(keys)
        self.max_crashes = max_crashes
        self.enabled = True
        self.fired: list[Crash] = []
        self.seen: dict[str, int] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def at(self) -> dict[str, frozenset[int]]:
        """``{actor_key: message numbers}``; may be set at any time (a number alone is
        taken as one message number)."""
        return self._at

    @at.setter
    def at(self, value: Mapping[str, int | Iterable[int]] | None) -> None:
        self._at = {k: frozenset([v] if isinstance(v, int) else v) for k, v in (value or {}).items()}

    def __call__(self, actor_key: str, requests: list[object]) -> None:
        if not self.enabled or (self.keys is not None and not actor_key.startswith(self.keys)):
            return
        with self._lock:
            first = self.seen.get(actor_key, 0)
            self.seen[actor_key] = first + len(requests)
            if self.max_crashes is not None and len(self.fired) >= self.max_crashes:
                return
            points = self.at.get(actor_key)
            hit = points is not None and any(first <= n < first + len(requests) for n in points)
            if not hit and self.probability:
                hit = self._rng.random() < self.probability
            if not hit:
                return
            self.fired.append(Crash(actor_key, first, len(requests)))
        raise InjectedCrash(actor_key, first)
