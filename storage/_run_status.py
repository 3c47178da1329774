"""The run-status transition table: which ``cas_run_status`` moves are legal.

Theory of operation
-------------------
A run's status follows the flow_run machine (SEMANTICS.md §3.2)::

                 StartRun            TerminalizeCompleted
      PENDING ─────────────► RUNNING ──────────────────► COMPLETED
         │                      │
         │ TerminalizeFailed /  │ TerminalizeFailed /
         │ TerminalizeCanceled  │ TerminalizeCanceled
         ▼                      ▼
       FAILED, CANCELED       FAILED, CANCELED

plus the harmless self-moves PENDING → PENDING and RUNNING → RUNNING. Terminal statuses
(COMPLETED, FAILED, CANCELED) are absorbing: no move leaves them.

A status CAS is ``cas_run_status(run, expected, next)``. Two different things can go wrong
with it, and they must not look alike:

* *a race*: the run is no longer in ``expected`` (another caller moved it first). That is an
  ordinary outcome of optimistic concurrency; the CAS answers ``False``, changes nothing, and
  the caller re-reads and decides again.
* *a programming error*: ``expected -> next`` is not a move of the machine at all (pending →
  completed, running → pending, completed → anything). Upstream accepts such a pair whenever
  the stored status happens to equal ``expected``, and so persists lifecycles the machine
  cannot produce. The port checks the pair against :data:`LEGAL_MOVES` *before anything is
  read* and raises :class:`InvalidTransition` (an :class:`InvalidInput`): the result does not
  depend on the stored state, so a bug fails loudly and every time, instead of looking like a
  lost race on some runs and silently succeeding on others.

The store still checks "the stored status is not terminal" when it applies the move (as
upstream does); with this table that check can only fail through a race, so it answers
``False``.

The table is data, in one place, so that the documentation, the check and the tests read
the same thing (h11's ``_state.py`` is the model). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._errors import InvalidInput, InvalidTransition
from ._run_records import MobRunStatus

_P, _R = MobRunStatus.PENDING, MobRunStatus.RUNNING
_C, _F, _X = MobRunStatus.COMPLETED, MobRunStatus.FAILED, MobRunStatus.CANCELED

#: status -> the statuses a CAS may move it to.
LEGAL_MOVES: Mapping[MobRunStatus, frozenset[MobRunStatus]] = MappingProxyType(
    {
        _P: frozenset({_P, _R, _F, _X}),
        _R: frozenset({_R, _C, _F, _X}),
        _C: frozenset(),
        _F: frozenset(),
        _X: frozenset(),
    }
)


def status(value: object, field: str) -> MobRunStatus:
    """``value`` as a :class:`MobRunStatus` (a member or its string value).

    Raises:
        InvalidInput: naming ``field``, for anything else.
    """
    try:
        return MobRunStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in MobRunStatus)
        raise InvalidInput(field, f"{value!r} is not a run status ({allowed})") from None


def is_legal(expected: MobRunStatus, next: MobRunStatus) -> bool:
    """Whether ``expected -> next`` is a move of the flow_run machine."""
    return next in LEGAL_MOVES[expected]


def check_move(
    expected: object, next: object, fields: tuple[str, str] = ("expected", "next")
) -> tuple[MobRunStatus, MobRunStatus]:
    """Validate a status CAS pair; return it as statuses. ``fields`` name the two
    arguments in errors.

    Raises:
        InvalidInput: ``expected`` or ``next`` is not a status.
        InvalidTransition: ``expected -> next`` is not in :data:`LEGAL_MOVES`.
    """
    exp = status(expected, fields[0])
    nxt = status(next, fields[1])
    if nxt not in LEGAL_MOVES[exp]:
        raise InvalidTransition("run status", exp, nxt)
    return exp, nxt
