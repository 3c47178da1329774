"""README.md's promises: its commands are the ones CI runs, and its example runs."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _blocks(lang: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    """The first two code blocks are the demo and test commands; .ci/run runs the latter."""
    text = (ROOT / "README.md").read_text()
    first, second = _blocks("bash")[:2]
    assert text.index(first) < text.index("## ")
    assert "mobstore demo" in first
    assert "pytest" in second
    assert second.strip() in (ROOT / ".ci" / "run").read_text()


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python example runs as written (in a temp folder)."""
    monkeypatch.chdir(tmp_path)
    code = _blocks("python")[0]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1 ") and "meerkat_spawned" in out[0]
    assert out[1] == "[2, 3]"


pytest_plugins = ["pytester"]


def test_readme_test_kit_example_passes(pytester):
    """The "Testing your own app" files, written as the README shows them, make a suite
    that passes (it used to fail without the trio_mode line, which the README lacked)."""
    (ini,) = _blocks("ini")
    kit = next(b for b in _blocks("python") if "# conftest.py" in b)
    conftest, _, rest = kit.partition("\n# test_mystore.py")
    test = rest.split("\n", 1)[1]  # the file's body, after its comment line
    pytester.makefile(".ini", pytest=ini)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_mystore=test)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes["passed"] >= 20 and "failed" not in outcomes and "errors" not in outcomes
