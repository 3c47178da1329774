"""The one thing pyproject.toml cannot declare stably: the optional C extension.

``storage/_walbatch.c`` is a small SQLite VFS shim that writes each durable commit's WAL
frames with one system call (see ``storage/_wal_batching.py``). It is optional: without a C
compiler or ``sqlite3ext.h`` the install still succeeds, and stores use SQLite's default VFS.
Everything else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mobstore.storage._walbatch", ["storage/_walbatch.c"], optional=True)])
