"""Use a store from asyncio code running on trio-asyncio's loop.

    import trio_asyncio
    from mobstore.actors import NewMobEvent, open_store_asyncio

    async def main():                      # an asyncio coroutine
        async with open_store_asyncio() as store:
            ev = await store.mob("mob-a").events.append(NewMobEvent("meerkat_spawned"))

    trio_asyncio.run(trio_asyncio.aio_as_trio(main))

The real store is opened by :func:`open_store` in a trio task of the trio-asyncio loop, and
lives until the ``async with`` block ends. asyncio code gets a thin proxy of the store:
every async method of the store and of its handles (``mob``, ``runtime``, ``profiles``,
``config``, ``events``, ``runs``, ``spec``, ``labels``, ``cursors``, consumers) becomes an
asyncio coroutine function that runs the trio method in a trio task
(``loop.trio_as_future``) and returns its result or raises its error, with its type.
Synchronous methods and attributes (``mob.cmd``, ``statistics()``, ``path``...) pass through
unchanged. ``events.subscribe()`` returns an asyncio async iterator.

Cancellation keeps trio's rule: a cancelled asyncio call that raises ``CancelledError``
did nothing; one whose trio call had already completed returns its result (see
:func:`_call`), so an append is never stored behind a ``CancelledError``, and a cancelled
``__anext__`` never consumes an event it does not hand over.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, AsyncIterator

import trio
import trio_asyncio

from ._config import ConfigRuntime
from ._consumer import Consumer
from ._mob import Mob, MobEvents
from ._mob_cursors import MobCursors
from ._mob_labels import MobLabels
from ._mob_runs import MobRuns
from ._mob_spec import MobSpec
from ._realm import RealmProfiles
from ._runtime import Runtime
from ._store import Store, open_store
from ._tail import Subscription

#: Objects the proxy wraps (their async methods become asyncio coroutine functions).
_HANDLES = (Store, Mob, MobEvents, MobSpec, MobRuns, MobLabels, MobCursors, Runtime, RealmProfiles, ConfigRuntime, Consumer)


def _running_trio_asyncio_loop() -> trio_asyncio.TrioEventLoop:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if not isinstance(loop, trio_asyncio.TrioEventLoop):
        raise RuntimeError(
            "open_store_asyncio needs an asyncio coroutine running on trio-asyncio's loop "
            "(trio_asyncio.run(...) or `async with trio_asyncio.open_loop()` + aio_as_trio)"
        )
    return loop


async def _call(loop: trio_asyncio.TrioEventLoop, fn: Any) -> Any:
    """``await fn()`` in a trio task, for an asyncio caller, with trio's cancellation rule:
    if the call raises ``CancelledError`` nothing of it happened; if it returns, all of it
    did. Awaiting the future directly would not do: a cancel of the asyncio task that lands
    after the trio call completed (a request already taken cannot be withdrawn) would throw
    ``CancelledError`` anyway and drop the result, e.g. an append that was stored.

    So the future is shielded; on cancellation the trio task is cancelled and its outcome
    awaited. A call that completed anyway returns its result (or raises its error): the
    cancellation came too late and is not raised (``task.cancelling()`` still counts it;
    an enclosing ``asyncio.timeout`` block then ends normally). Requesting it again instead
    would cancel a task that *is* this call, losing the result all the same.
    """
    fut = loop.trio_as_future(fn)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        fut.cancel()  # forwarded to the trio task; the future resolves when it ends
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                pass  # cancelled again: already on its way
            except BaseException:  # noqa: BLE001 - the call's own error: read below
                break
        if fut.cancelled():
            raise
        return fut.result()


def _wrap(value: Any, loop: trio_asyncio.TrioEventLoop) -> Any:
    if isinstance(value, _HANDLES):
        return _AioProxy(value, loop)
    if isinstance(value, Subscription):
        return _AioSubscription(value, loop)
    return value


class _AioProxy:
    """asyncio view of a trio handle: async methods run in trio tasks via the loop."""

    __slots__ = ("_target", "_loop")

    def __init__(self, target: Any, loop: trio_asyncio.TrioEventLoop) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        loop = self._loop
        if inspect.iscoroutinefunction(value):

            async def call(*args: Any, **kwargs: Any) -> Any:
                result = await _call(loop, partial(value, *args, **kwargs))
                return _wrap(result, loop)

            call.__name__ = name
            call.__doc__ = value.__doc__
            return call
        if callable(value) and not isinstance(value, type):

            def call_sync(*args: Any, **kwargs: Any) -> Any:
                return _wrap(value(*args, **kwargs), loop)

            call_sync.__name__ = name
            call_sync.__doc__ = value.__doc__
            return call_sync
        return _wrap(value, loop)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("asyncio store proxies are read-only")

    @property
    def trio(self) -> Any:
        """The wrapped trio object (use it only from trio code)."""
        return self._target

    def __repr__(self) -> str:
        return f"<asyncio proxy of {self._target!r}>"


class _AioSubscription:
    """asyncio async iterator over a :class:`Subscription`; each step runs in a trio task."""

    def __init__(self, sub: Subscription, loop: trio_asyncio.TrioEventLoop) -> None:
        self._sub = sub
        self._loop = loop

    @property
    def cursor(self) -> int:
        return self._sub.cursor

    def __aiter__(self) -> _AioSubscription:
        return self

    async def __anext__(self) -> Any:
        return await _call(self._loop, self._sub.__anext__)


@asynccontextmanager
async def open_store_asyncio(path: str | os.PathLike[str] | None = None, **options: Any) -> AsyncIterator[Any]:
    """Open a store for asyncio code running on trio-asyncio's loop (an asyncio async
    context manager; arguments as :func:`open_store`).

    Example::

        async with open_store_asyncio("agents.db") as store:
            ev = await store.mob("mob-a").events.append(NewMobEvent("meerkat_spawned"))

    The store is opened and closed by a trio task running ``open_store`` (so opening and the
    shielded close drain are exactly those of :func:`open_store`); the block receives an
    asyncio proxy of it. Errors of store calls, of opening and of closing propagate with
    their types (``InvalidInput``, ``StoreLocked``...).

    Raises:
        RuntimeError: not called from asyncio code on a ``trio_asyncio`` loop.
    """
    loop = _running_trio_asyncio_loop()
    opened: asyncio.Future[Store] = loop.create_future()
    release = trio.Event()

    async def serve() -> None:
        async with open_store(path, **options) as store:
            if not opened.cancelled():
                opened.set_result(store)
            await release.wait()

    served = loop.trio_as_future(serve)
    try:
        await asyncio.wait({opened, served}, return_when=asyncio.FIRST_COMPLETED)
        if not opened.done():
            served.result()  # opening failed: raise its error
            raise RuntimeError("open_store exited before the store opened")  # pragma: no cover
    except BaseException:
        opened.cancel()
        served.cancel()
        raise
    try:
        yield _AioProxy(opened.result(), loop)
    finally:
        # trio.Event.set is synchronous; asyncio callbacks of trio-asyncio run inside trio.
        release.set()
        await asyncio.shield(served)  # the close drain; raises what closing raised
