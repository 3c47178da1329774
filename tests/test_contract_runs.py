from mobstore.actors.testing.contracts import RunStoreContract


class TestRunStore(RunStoreContract):
    pass
