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
"""

from ._backends import Backend as Backend
from ._backends import FileBackend as FileBackend
from ._backends import MemoryBackend as MemoryBackend

__all__ = ["Backend", "FileBackend", "MemoryBackend"]
