"""mobstore.storage: the synchronous storage layer (records, codec, errors, schema, SQL).

Nothing here imports trio: every operation is a plain function or command over an open
apsw transaction, testable without an event loop. ``mobstore.actors`` runs it off the loop.
"""

from ._atomic import Atomic as Atomic
from ._atomic import CommitResult as CommitResult
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
from ._kernel_state import KBool as KBool
from ._kernel_state import KernelFields as KernelFields
from ._kernel_state import KernelState as KernelState
from ._kernel_state import KernelValue as KernelValue
from ._kernel_state import KMap as KMap
from ._kernel_state import KNamedVariant as KNamedVariant
from ._kernel_state import KNone as KNone
from ._kernel_state import KSeq as KSeq
from ._kernel_state import KSet as KSet
from ._kernel_state import KString as KString
from ._kernel_state import KU64 as KU64
from ._kernel_state import kernel_value as kernel_value
from ._profiles import CreateProfile as CreateProfile
from ._profiles import DeleteProfile as DeleteProfile
from ._profiles import Profile as Profile
from ._profiles import StoredRealmProfile as StoredRealmProfile
from ._profiles import ToolConfig as ToolConfig
from ._profiles import UpdateProfile as UpdateProfile
from ._records import MobEvent as MobEvent
from ._records import NewMobEvent as NewMobEvent
from ._run_cas import CasCompleteBodyFrame as CasCompleteBodyFrame
from ._run_cas import CasCompleteLoop as CasCompleteLoop
from ._run_cas import CasCompleteStepAndRecordOutput as CasCompleteStepAndRecordOutput
from ._run_cas import CasFrameState as CasFrameState
from ._run_cas import CasGrantBodyFrameStart as CasGrantBodyFrameStart
from ._run_cas import CasGrantNodeSlot as CasGrantNodeSlot
from ._run_cas import CasLoopRequestBodyFrame as CasLoopRequestBodyFrame
from ._run_cas import CasStartLoop as CasStartLoop
from ._run_records import FailureLedgerEntry as FailureLedgerEntry
from ._run_records import FrameSnapshot as FrameSnapshot
from ._run_records import LoopIterationLedgerEntry as LoopIterationLedgerEntry
from ._run_records import LoopSnapshot as LoopSnapshot
from ._run_records import MobRun as MobRun
from ._run_records import MobRunStatus as MobRunStatus
from ._run_records import StepLedgerEntry as StepLedgerEntry
from ._run_records import StepRunStatus as StepRunStatus
from ._run_status import LEGAL_MOVES as RUN_STATUS_MOVES
from ._runs import AppendFailureEntry as AppendFailureEntry
from ._runs import AppendStepEntry as AppendStepEntry
from ._runs import AppendStepEntryIfAbsent as AppendStepEntryIfAbsent
from ._runs import CasFlowState as CasFlowState
from ._runs import CasRunSnapshot as CasRunSnapshot
from ._runs import CasRunStatus as CasRunStatus
from ._runs import CreateRun as CreateRun
from ._runs import PutStepOutput as PutStepOutput
from ._runs import UpsertLoopSnapshot as UpsertLoopSnapshot
from ._schema import APPLICATION_ID as APPLICATION_ID
from ._schema import LATEST_VERSION as SCHEMA_VERSION
from ._specs import DeleteSpec as DeleteSpec
from ._specs import PutSpec as PutSpec

__all__ = [name for name in dir() if not name.startswith("_")]
