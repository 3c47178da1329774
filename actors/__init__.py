"""mobstore.actors: the trio runtime of mobstore, and its public API.

    import trio
    from mobstore.actors import open_store, NewMobEvent

    async def main():
        async with open_store("agents.db") as store:
            ev = await store.mob("mob-a").events.append(NewMobEvent("meerkat_spawned", {"meerkat_id": "m1"}))
            print(ev.cursor)

    trio.run(main)
"""

from mobstore.storage import ActorCrashed as ActorCrashed
from mobstore.storage import CasConflict as CasConflict
from mobstore.storage import CommitInDoubt as CommitInDoubt
from mobstore.storage import CommitResult as CommitResult
from mobstore.storage import DecodeError as DecodeError
from mobstore.storage import FailureLedgerEntry as FailureLedgerEntry
from mobstore.storage import FrameSnapshot as FrameSnapshot
from mobstore.storage import GenerationConflict as GenerationConflict
from mobstore.storage import IncompatibleStore as IncompatibleStore
from mobstore.storage import InvalidInput as InvalidInput
from mobstore.storage import InvalidTransition as InvalidTransition
from mobstore.storage import KBool as KBool
from mobstore.storage import KernelState as KernelState
from mobstore.storage import KernelValue as KernelValue
from mobstore.storage import KMap as KMap
from mobstore.storage import KNamedVariant as KNamedVariant
from mobstore.storage import KNone as KNone
from mobstore.storage import KSeq as KSeq
from mobstore.storage import KSet as KSet
from mobstore.storage import KString as KString
from mobstore.storage import KU64 as KU64
from mobstore.storage import LoopIterationLedgerEntry as LoopIterationLedgerEntry
from mobstore.storage import LoopSnapshot as LoopSnapshot
from mobstore.storage import MobEvent as MobEvent
from mobstore.storage import MobRun as MobRun
from mobstore.storage import MobRunStatus as MobRunStatus
from mobstore.storage import MobStoreError as MobStoreError
from mobstore.storage import NewMobEvent as NewMobEvent
from mobstore.storage import NotFound as NotFound
from mobstore.storage import Profile as Profile
from mobstore.storage import PruneBlocked as PruneBlocked
from mobstore.storage import ReadFailed as ReadFailed
from mobstore.storage import SpecRevisionConflict as SpecRevisionConflict
from mobstore.storage import StaleCursor as StaleCursor
from mobstore.storage import StepLedgerEntry as StepLedgerEntry
from mobstore.storage import StepRunStatus as StepRunStatus
from mobstore.storage import StoreClosed as StoreClosed
from mobstore.storage import StoreIOError as StoreIOError
from mobstore.storage import StoreLocked as StoreLocked
from mobstore.storage import StoredRealmProfile as StoredRealmProfile
from mobstore.storage import ToolConfig as ToolConfig
from mobstore.storage import WriteFailed as WriteFailed
from mobstore.storage import ConfigEnvelope as ConfigEnvelope
from mobstore.storage import ConfigEnvelopePolicy as ConfigEnvelopePolicy
from mobstore.storage import ConfigResolvedPaths as ConfigResolvedPaths
from mobstore.storage import ConfigSnapshot as ConfigSnapshot
from mobstore.storage import ConfigStoreMetadata as ConfigStoreMetadata
from mobstore.storage import InputAbandonReason as InputAbandonReason
from mobstore.storage import InputDurability as InputDurability
from mobstore.storage import InputLifecycleState as InputLifecycleState
from mobstore.storage import InputState as InputState
from mobstore.storage import InputStateHistoryEntry as InputStateHistoryEntry
from mobstore.storage import InputTerminalOutcome as InputTerminalOutcome
from mobstore.storage import MetadataScope as MetadataScope
from mobstore.storage import PolicySnapshot as PolicySnapshot
from mobstore.storage import ReconstructionSource as ReconstructionSource
from mobstore.storage import RunApplyBoundary as RunApplyBoundary
from mobstore.storage import RunBoundaryReceipt as RunBoundaryReceipt
from mobstore.storage import RuntimeState as RuntimeState
from mobstore.storage import SessionDelta as SessionDelta
from mobstore.storage import uuid7 as uuid7

from ._asyncio import open_store_asyncio as open_store_asyncio
from ._committer import CommitterStatistics as CommitterStatistics
from ._consumer import Consumer as Consumer
from ._consumer import ConsumerStatistics as ConsumerStatistics
from ._kernel import ActorStatistics as ActorStatistics
from ._mob import Mob as Mob
from ._mob import MobEvents as MobEvents
from ._mob_commands import MobCommands as MobCommands
from ._mob_runs import MobRuns as MobRuns
from ._mob_spec import MobSpec as MobSpec
from ._realm import RealmProfiles as RealmProfiles
from ._runtime import Runtime as Runtime
from ._store import Store as Store
from ._store import StoreStatistics as StoreStatistics
from ._store import open_store as open_store
from ._supervisor import SupervisorConfig as SupervisorConfig
from ._config import ConfigRuntime as ConfigRuntime
from ._labels_rpc import METHODS as LABELS_RPC_METHODS
from ._labels_rpc import handle as handle_labels_rpc
from ._labels_rpc import respond as respond_labels_rpc
from ._mob_cursors import MobCursors as MobCursors
from ._mob_labels import MobLabels as MobLabels

__all__ = [name for name in dir() if not name.startswith("_")]
