from mobstore.actors.testing.contracts import ConsumerContract


class TestConsumers(ConsumerContract):
    pass
