"""Contract suites, one class per store: subclass one in a test module to run it.

Each suite uses the fixtures of ``mobstore.actors.testing.pytest_plugin`` (``store``,
``backend``, ``clock``), so it runs against every backend those fixtures provide.
"""

from .events import EventLogContract as EventLogContract
from .commit import AtomicCommitContract as AtomicCommitContract
from .profiles import RealmProfileContract as RealmProfileContract
from .specs import SpecStoreContract as SpecStoreContract
from .runs import RunStoreContract as RunStoreContract
from .subscriptions import SubscriptionContract as SubscriptionContract
from .runtime import RuntimeStoreContract as RuntimeStoreContract
from .config import ConfigRuntimeContract as ConfigRuntimeContract
from .labels import LabelsContract as LabelsContract
from .cursors import CursorsContract as CursorsContract
from .consumers import ConsumerContract as ConsumerContract
