from mobstore.actors.testing.contracts import AtomicCommitContract


class TestAtomicCommit(AtomicCommitContract):
    pass
