pytest_plugins = ["mobstore.actors.testing.pytest_plugin"]
