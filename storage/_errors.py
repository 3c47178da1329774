"""The error hierarchy of mobstore.

Every error a user can see is a subclass of :class:`MobStoreError`, also subclasses the builtin
that fits it best (``LookupError``, ``ValueError``, ``OSError``, ``RuntimeError``), carries
its parts as attributes, and has a message that names the entity, what was expected and what
was found, so that the message alone says what to do.

apsw errors never leave the storage layer: ``_database.translate`` turns them into these at
the transaction boundary.
"""

from __future__ import annotations

from typing import Any


class MobStoreError(Exception):
    """Base of every error raised by mobstore."""


class NotFound(MobStoreError, LookupError):
    """The addressed entity does not exist.

    Attributes:
        kind: what was looked up (``"run"``, ``"profile"``, ``"step_ledger_entry"``...).
        id: the identifier that was not found.
    """

    def __init__(self, kind: str, id: Any, detail: str = "") -> None:
        self.kind = kind
        self.id = id
        msg = f"{kind} {id!r} not found"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class CasConflict(MobStoreError):
    """A compare-and-swap precondition did not hold; nothing was changed.

    Attributes:
        what: the record the CAS was about.
        expected: the value the caller expected.
        actual: the value found in the store.
    """

    def __init__(self, what: str, expected: Any, actual: Any, detail: str = "") -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        msg = f"{what}: expected {expected!r}, found {actual!r}; nothing was changed"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class SpecRevisionConflict(CasConflict):
    """``put_spec`` was given a revision that is not the stored one."""

    def __init__(self, mob_id: str, expected: int | None, actual: int) -> None:
        self.mob_id = mob_id
        super().__init__(f"spec revision of mob {mob_id!r}", expected, actual)


class GenerationConflict(CasConflict):
    """A config write was given an expected generation that is not the current one."""

    def __init__(self, expected: int, current: int) -> None:
        self.current = current
        super().__init__("config generation", expected, current)


class InvalidInput(MobStoreError, ValueError):
    """The caller passed a value the store refuses; nothing was written.

    Attributes:
        field: the argument or record field at fault (``"payload['x'][2]"``).
        problem: what is wrong with it, in words.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid {field}: {problem}")


class InvalidTransition(InvalidInput):
    """A lifecycle move that the transition table forbids; nothing was changed."""

    def __init__(self, entity: str, from_state: Any, to_state: Any) -> None:
        self.entity = entity
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(
            f"{entity} transition", f"{from_state!s} -> {to_state!s} is not a legal move"
        )


class StaleCursor(InvalidInput):
    """A cursor beyond the last one ever assigned (the caller's cursor is from elsewhere)."""

    def __init__(self, mob_id: str, after_cursor: int, latest_cursor: int, *, field: str = "after_cursor") -> None:
        self.mob_id = mob_id
        self.after_cursor = after_cursor
        self.latest_cursor = latest_cursor
        super().__init__(
            field,
            f"{after_cursor} is past the last cursor ever assigned in mob {mob_id!r} "
            f"({latest_cursor}); the cursor does not belong to this log",
        )


class PruneBlocked(MobStoreError):
    """``prune`` would remove events a durable consumer has not processed yet; nothing was
    deleted. Pass ``force=True`` to prune anyway (that consumer will skip the pruned events).

    Attributes:
        mob_id: the mob.
        consumer: the name of the slowest consumer holding the events back.
        consumer_cursor: that consumer's cursor.
    """

    def __init__(self, mob_id: str, consumer: str, consumer_cursor: int) -> None:
        self.mob_id = mob_id
        self.consumer = consumer
        self.consumer_cursor = consumer_cursor
        super().__init__(
            f"prune of mob {mob_id!r} refused: consumer {consumer!r} has processed events only up "
            f"to cursor {consumer_cursor}, and events after it are older than the prune horizon; "
            "nothing was deleted (pass force=True to prune anyway)"
        )


class DecodeError(MobStoreError, ValueError):
    """A stored value could not be decoded (corrupt, or written by a newer mobstore)."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        self.detail = detail
        super().__init__(f"cannot decode {what}: {detail}")


class StoreIOError(MobStoreError, OSError):
    """The database could not be read or written."""


class WriteFailed(StoreIOError):
    """A write transaction failed and was rolled back; nothing of it is stored."""


class CommitInDoubt(WriteFailed):
    """The disk failed while the COMMIT was being made durable (a failed fsync): the write
    may or may not be stored. It is not visible now, but the data can already be in the WAL,
    so a crash before the next commit can bring it back on reopen (atomically: all of it or
    none). Read the data back before retrying a non-idempotent write."""


class ReadFailed(StoreIOError):
    """A read failed."""


class StoreLocked(StoreIOError):
    """Another process (or another open store in this one) owns the store file."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"store file {path!r} is in use by another process or open store; "
            "one owner at a time (close the other, or open a different file)"
        )


class IncompatibleStore(StoreIOError):
    """The file is not a mobstore file, or was written by a newer schema; it was not touched."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"refusing to open {path!r}: {reason}; the file was not modified")


class StoreClosed(MobStoreError, RuntimeError):
    """The store was closed; open it again to continue."""

    def __init__(self, detail: str = "the store is closed") -> None:
        super().__init__(detail)


class ActorCrashed(MobStoreError, RuntimeError):
    """The actor serving this request crashed before the request was handed to the committer.

    The request was **not** applied: nothing of it is stored. Requests still queued behind it
    are served by the restarted actor. ``escalated`` is true when the actor crashed too often
    and the supervisor gave up on it: every call to it fails so until ``store.revive(actor)``.
    """

    def __init__(self, actor: str, cause: BaseException | None, *, escalated: bool = False) -> None:
        self.actor = actor
        self.cause = cause
        self.escalated = escalated
        what = f"{type(cause).__name__}: {cause}" if cause is not None else "unknown cause"
        if escalated:
            msg = (
                f"actor {actor} crashed too often and was stopped ({what}); "
                f"the request was not applied; store.revive({actor!r}) gives the actor a fresh start"
            )
        else:
            msg = f"actor {actor} crashed ({what}); the request was not applied, retry it"
        super().__init__(msg)
