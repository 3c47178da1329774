"""mobstore.actors.testing: the test kit shipped with mobstore.

* ``mobstore.actors.testing.pytest_plugin``: pytest-trio fixtures. Enable it in your
  ``conftest.py`` with ``pytest_plugins = ["mobstore.actors.testing.pytest_plugin"]``; then
  ``store`` is an open store, parametrised over the backends (``memory``, ``file``), and
  ``backend`` can open (and reopen) a store of the current backend.
* ``mobstore.actors.testing.contracts``: the contract suites, one class per store. Subclass
  one in a test module to run it against your setup::

      from mobstore.actors.testing.contracts import EventLogContract

      class TestEventLog(EventLogContract):
          pass

* Fault injection (``docs/testing.md``): :class:`FaultVFS` and :class:`Fault` (I/O errors,
  disk full, busy at the n-th read, write, sync or lock) with :func:`sweep_io_faults`;
  :class:`PowerLossVFS` (unsynced writes kept, dropped or garbled at a power cut);
  :class:`CrashPoints` (seeded actor crashes, ``open_store(crash_hook=...)``);
  :func:`call_cancelled_at` (cancel a call at its k-th checkpoint).
* Restart harnesses: :class:`Kill9Harness` / :func:`kill9_once` / :func:`run_chaos` (the
  built-in workload, killed with SIGKILL and verified), :func:`power_loss_once`, and
  :func:`kill9_app` for your own workload and checks.
* :class:`History` and :func:`check_history` / :func:`check_event_log`: linearizability of
  CAS registers (WGL search) and prefix consistency of event logs.
"""

from ._appcrash import AppVerdict as AppVerdict
from ._appcrash import kill9_app as kill9_app
from ._backends import Backend as Backend
from ._backends import FileBackend as FileBackend
from ._backends import MemoryBackend as MemoryBackend
from ._cancel import CancelOutcome as CancelOutcome
from ._cancel import call_cancelled_at as call_cancelled_at
from ._chaos import ChaosReport as ChaosReport
from ._chaos import run_chaos as run_chaos
from ._crashpoints import Crash as Crash
from ._crashpoints import CrashPoints as CrashPoints
from ._crashpoints import InjectedCrash as InjectedCrash
from ._harness import Kill9Harness as Kill9Harness
from ._harness import Verdict as Verdict
from ._harness import count_io as count_io
from ._harness import kill9_once as kill9_once
from ._harness import power_loss_once as power_loss_once
from ._history import GenerationRegister as GenerationRegister
from ._history import History as History
from ._history import Linearization as Linearization
from ._history import Op as Op
from ._history import RevisionRegister as RevisionRegister
from ._history import RunStatusRegister as RunStatusRegister
from ._history import check_event_log as check_event_log
from ._history import check_history as check_history
from ._history import check_linearizable as check_linearizable
from ._powerloss import POWER_LOSS_EXIT as POWER_LOSS_EXIT
from ._powerloss import PowerLossVFS as PowerLossVFS
from ._sweep import FaultOutcome as FaultOutcome
from ._sweep import Step as Step
from ._sweep import SweepReport as SweepReport
from ._sweep import integrity as integrity
from ._sweep import sweep_io_faults as sweep_io_faults
from ._vfs import Fault as Fault
from ._vfs import FaultHit as FaultHit
from ._vfs import FaultVFS as FaultVFS

__all__ = [name for name in dir() if not name.startswith("_")]
