from mobstore.actors.testing.contracts import SpecStoreContract


class TestSpecStore(SpecStoreContract):
    pass
