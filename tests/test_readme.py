"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_runs_and_prints_what_it_promises() -> None:
    text = README.read_text(encoding="utf-8")
    example = re.search(r"## A first composition.*?```python\n(.*?)```", text, re.S)
    promise = re.search(r"It prints `([^`]*)`", text)
    assert example is not None and promise is not None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example.group(1), str(README), "exec"), {"__name__": "readme_example"})
    assert printed.getvalue().strip() == promise.group(1)


def test_the_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pip install -e '.[dev]'" in text and "python -m pip install" in ci
    assert "python -m pytest -q" in text and "python -m pytest -q" in ci
    assert "mypy" in text and "\nmypy" in ci
