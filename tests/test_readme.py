"""Every Python block of the README and of the documentation runs as written, and prints what the
text after it says it prints; the README names the commands CI runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
README = REPOSITORY / "README.md"
PAGES = [README, *sorted((REPOSITORY / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```(.*?)(?=```|\Z)", re.S)
FRAGMENT = "<!-- fragment -->"  # put before a block that is not meant to run alone


def _blocks() -> list[tuple[str, str, list[str]]]:
    """(where, code, promised lines) of every runnable block: the promise is the text after the
    block, "It prints `A`" (and "and `B`"), up to the next block."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(BLOCK.finditer(text)):
            code, after = match.group(1), match.group(2)
            if "--8<--" in code or text[: match.start()].rstrip().endswith(FRAGMENT):
                continue  # an included file (tested where it lives) or a fragment
            promise = re.search(r"It prints ((?:`[^`]*`(?:,? and |, )?)+)", after)
            lines = re.findall(r"`([^`]*)`", promise.group(1)) if promise else []
            found.append((f"{page.relative_to(REPOSITORY)} block {number}", code, lines))
    return found


BLOCKS = _blocks()


@pytest.mark.parametrize(("where", "code", "promised"), BLOCKS, ids=[block[0] for block in BLOCKS])
def test_every_python_block_runs_and_prints_what_it_promises(where: str, code: str, promised: list[str]) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, where, "exec"), {"__name__": "docs_example"})
    if promised:
        assert printed.getvalue().strip().splitlines() == promised


def test_the_readme_and_the_tutorials_have_the_blocks_they_promise() -> None:
    """The promises are read from the pages: make sure they are found (a test that finds nothing passes)."""
    promised = {where.split(" block")[0]: lines for where, _, lines in BLOCKS if lines}
    assert {"README.md", "docs/tutorials/own-op.md", "docs/tutorials/pretrained.md"} <= set(promised)
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


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


def test_the_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (REPOSITORY / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pip install -e '.[dev]'" in text and "python -m pip install" in ci
    assert "python -m pytest -q" in text and "python -m pytest -q" in ci
    assert "mypy" in text and "\nmypy" in ci
    assert "mkdocs build" in text and "mkdocs build --strict" in ci
