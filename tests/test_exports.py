"""The public surface: one namespace per package, documented, and storage stays loop-free."""

from __future__ import annotations

import subprocess
import sys

import mobstore.actors
import mobstore.storage


def test_every_public_name_is_exported_and_documented():
    """Each name in __all__ resolves, and every public class or function has a docstring."""
    for module in (mobstore.actors, mobstore.storage):
        assert module.__all__, module
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) or callable(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"


def test_actors_reexports_every_error_and_record_of_storage():
    """Users import everything from mobstore.actors: its errors and records are storage's."""
    for name in mobstore.storage.__all__:
        obj = getattr(mobstore.storage, name)
        if isinstance(obj, type) and issubclass(obj, mobstore.storage.MobStoreError):
            assert getattr(mobstore.actors, name) is obj, name
    assert mobstore.actors.NewMobEvent is mobstore.storage.NewMobEvent


def test_storage_never_imports_trio():
    """mobstore.storage is synchronous: importing all of it loads no trio."""
    code = "import sys, mobstore.storage; print('trio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_top_level_storage_or_actors_module_is_installed():
    """Installed, the code is mobstore.storage / mobstore.actors, never top-level packages."""
    code = (
        "import importlib.util, os, sys\n"
        "os.chdir('/')\n"
        "sys.path = [p for p in sys.path if p not in ('', '.')]\n"
        "print(importlib.util.find_spec('storage'), importlib.util.find_spec('actors'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None None"
