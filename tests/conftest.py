import faulthandler

import pytest

pytest_plugins = ["mobstore.actors.testing.pytest_plugin"]

#: Seconds one default-suite test may take before it counts as hung. A hang (a missing
#: answer, a lost wake-up) must fail CI at once with the stacks of every thread, not stall it
#: for its 90 minutes; the slowest default test takes a few seconds. Slow-marked soak tests
#: are left alone.
HANG_LIMIT = 180


@pytest.fixture(autouse=True)
def _hang_guard(request):
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
