"""Every command of the tutorials runs as written, shortened: a training run on 200 images for one
epoch, a figure written to a temporary file (the long runs themselves are measurements, in the
experiments pages)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((REPOSITORY / "docs" / "tutorials").glob("*.md"))
BASH = re.compile(r"```bash\n(.*?)```", re.S)


def _commands() -> list[tuple[str, list[str], dict[str, str]]]:
    """(where, argv, environment) of every ``python -m lenet_fn...`` command in the tutorials'
    bash blocks; a ``for seed in ...; do ...; done`` loop is taken at its first seed, and an
    ``export NAME=VALUE`` holds for the rest of its page."""
    found = []
    for page in TUTORIALS:
        environment: dict[str, str] = {}
        for block in BASH.findall(page.read_text(encoding="utf-8")):
            for line in block.splitlines():
                exported = re.match(r"export (\w+)=(\S+)", line)
                if exported:
                    environment[exported.group(1)] = str(REPOSITORY / exported.group(2))
                    continue
                loop = re.match(r"for (\w+) in (\S+).*?; do (.*); done$", line)
                if loop:
                    line = loop.group(3).replace(f"${loop.group(1)}", loop.group(2))
                line = line.split("#")[0].strip()
                if line.startswith("python -m lenet_fn."):
                    found.append((f"{page.name}: {line}", shlex.split(line)[2:], dict(environment)))
    return found


COMMANDS = _commands()


def _shortened(argv: list[str], scratch: Path) -> list[str]:
    """The command with its outputs in ``scratch`` (``runs/NAME`` becomes ``scratch/NAME``, so each
    run of a page has a directory of its own, as the page's commands do), and a training run cut
    to 200 images, 1 epoch."""
    command, flags = argv[0], argv[1:]
    out = "runs/run"
    for flag in ("--out", "--epochs", "--limit"):
        while flag in flags:
            at = flags.index(flag)
            out = flags[at + 1] if flag == "--out" else out
            del flags[at : at + 2]
    flags = [str(scratch / flag.removeprefix("runs/")) if flag.startswith("runs/") else flag for flag in flags]
    if command == "lenet_fn.train":
        if "--resume" in flags:  # resume the run an earlier command of the page made
            return [command, *flags, "--epochs", "2"]
        return [command, *flags, "--limit", "200", "--epochs", "1", "--threads", "1", "--out", str(scratch / out.removeprefix("runs/"))]
    if command == "lenet_fn.show":
        return [command, *flags, "--out", str(scratch / "figure.png")]
    return [command, *flags]


def test_the_tutorials_have_commands() -> None:
    pages = {where.split(":")[0] for where, _, _ in COMMANDS}
    assert {"own-network.md", "paper.md", "pretrained.md", "reproduce.md"} <= pages


@pytest.fixture(scope="module")
def scratches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A scratch directory per page (two pages may name the same run)."""
    return {page: tmp_path_factory.mktemp(page.removesuffix(".md")) for page in {where.split(":")[0] for where, _, _ in COMMANDS}}


@pytest.mark.parametrize(("where", "argv", "environment"), COMMANDS, ids=[where for where, _, _ in COMMANDS])
def test_every_tutorial_command_runs(where: str, argv: list[str], environment: dict[str, str], scratches: dict[str, Path]) -> None:
    scratch = scratches[where.split(":")[0]]
    done = subprocess.run([sys.executable, "-m", *_shortened(argv, scratch)], cwd=REPOSITORY, capture_output=True, text=True,
                          env={**os.environ, **environment}, check=False)  # fmt: skip
    assert done.returncode == 0, f"{where}\n{done.stderr}"
