from mobstore.actors.testing.contracts import RuntimeStoreContract


class TestRuntimeStore(RuntimeStoreContract):
    pass
