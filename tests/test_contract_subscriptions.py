from mobstore.actors.testing.contracts import SubscriptionContract


class TestSubscriptions(SubscriptionContract):
    pass
