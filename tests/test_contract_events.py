from mobstore.actors.testing.contracts import EventLogContract


class TestEventLog(EventLogContract):
    pass
