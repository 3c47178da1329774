from mobstore.actors.testing.contracts import CursorsContract


class TestCursors(CursorsContract):
    pass
