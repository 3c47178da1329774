"""Every Python example in docs/testing.md is a pytest module that passes as written, with
only the documented setup (the plugin in conftest.py, ``trio_mode = true``)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "testing.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_docs_testing_examples_pass(tmp_path):
    assert len(EXAMPLES) >= 7
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["mobstore.actors.testing.pytest_plugin"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    for i, code in enumerate(EXAMPLES):
        (tmp_path / f"test_doc_example_{i}.py").write_text(code)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(rf"\b{len(EXAMPLES)} passed", proc.stdout), proc.stdout[-2000:]
