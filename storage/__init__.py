"""mobstore.storage: the synchronous storage layer (records, codec, errors, schema, SQL).

Nothing here imports trio: every operation is a plain function or command over an open
apsw transaction, testable without an event loop. ``mobstore.actors`` runs it off the loop.
"""

from ._codec import MAX_JSON_BYTES as MAX_JSON_BYTES
from ._database import Command as Command
from ._database import Database as Database
from ._database import Transaction as Transaction
from ._errors import ActorCrashed as ActorCrashed
from ._errors import CasConflict as CasConflict
from ._errors import DecodeError as DecodeError
from ._errors import GenerationConflict as GenerationConflict
from ._errors import IncompatibleStore as IncompatibleStore
from ._errors import InvalidInput as InvalidInput
from ._errors import InvalidTransition as InvalidTransition
from ._errors import MobStoreError as MobStoreError
from ._errors import NotFound as NotFound
from ._errors import ReadFailed as ReadFailed
from ._errors import SpecRevisionConflict as SpecRevisionConflict
from ._errors import StaleCursor as StaleCursor
from ._errors import StoreClosed as StoreClosed
from ._errors import StoreIOError as StoreIOError
from ._errors import StoreLocked as StoreLocked
from ._errors import WriteFailed as WriteFailed
from ._events import AppendEvents as AppendEvents
from ._events import ClearEvents as ClearEvents
from ._events import PruneEvents as PruneEvents
from ._records import MobEvent as MobEvent
from ._records import NewMobEvent as NewMobEvent
from ._schema import APPLICATION_ID as APPLICATION_ID
from ._schema import LATEST_VERSION as SCHEMA_VERSION

__all__ = [name for name in dir() if not name.startswith("_")]
