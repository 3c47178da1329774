from mobstore.actors.testing.contracts import ConfigRuntimeContract


class TestConfigRuntime(ConfigRuntimeContract):
    pass
