from mobstore.actors.testing.contracts import RealmProfileContract


class TestRealmProfiles(RealmProfileContract):
    pass
