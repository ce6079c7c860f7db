"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("section", ["A first composition", "Check your own op's gradient"])
def test_the_readme_examples_run_and_print_what_they_promise(section: str) -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(f"## {re.escape(section)}\n.*?```python\n(.*?)```.*?It prints `([^`]*)`", text, re.S)
    assert found is not None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(found.group(1), str(README), "exec"), {"__name__": "readme_example"})
    assert printed.getvalue().strip() == found.group(2)


def test_the_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pip install -e '.[dev]'" in text and "python -m pip install" in ci
    assert "python -m pytest -q" in text and "python -m pytest -q" in ci
    assert "mypy" in text and "\nmypy" in ci


def test_the_layers_snippet_builds_a_model_that_trains() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"## Build a network from layers\n.*?```python\n(.*?)```", text, re.S)
    assert found is not None
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(found.group(1), str(README), "exec"), namespace)
    net: Any = namespace["net"]
    x = np.zeros((2, 1, 28, 28), np.float32)
    net.loss(net(x), np.array([1, 2]))
    net.backward()
    net.update_weights(0.1)
    assert sorted(net.params) == ["1", "2", "3", "conv", "out"]
