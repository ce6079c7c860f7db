"""The documentation site builds (strict), documents every public name, renders its equations as
MathML and loads nothing from the network."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import lenet_fn

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                           cwd=REPOSITORY, capture_output=True, text=True, env=environment, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


def _inventory(site: Path) -> set[str]:
    """The object names of mkdocstrings' inventory (objects.inv: four header lines, then zlib)."""
    raw = (site / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines()}


def test_every_public_name_has_a_reference_entry(site: Path) -> None:
    names = _inventory(site)
    missing = [name for name in lenet_fn.__all__ if name != "__version__" and not any(entry.endswith(f".{name}") for entry in names)]
    assert not missing, f"no reference entry for {missing}"
    assert "lenet_fn.gradcheck.check_backward" in names and "lenet_fn.network.sequential" in names


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    remote = re.compile(r"<(?:script|img|iframe)[^>]*\bsrc=[\"']?(?:https?:)?//|<link[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>|@import\s+url\(\s*[\"']?(?:https?:)?//|url\(\s*[\"']?(?:https?:)?//")
    offenders = []
    for page in [*site.rglob("*.html"), *site.rglob("*.css")]:
        text = page.read_text(encoding="utf-8", errors="replace")
        for match in remote.finditer(text):
            if match.group(0).startswith("<link") and "stylesheet" not in match.group(0) and "preconnect" not in match.group(0):
                continue  # a plain hyperlink-like <link> (canonical) loads nothing
            offenders.append(f"{page.relative_to(site)}: {match.group(0)[:80]}")
    assert not offenders, offenders[:5]


def test_the_op_pages_render_their_equations_as_mathml(site: Path) -> None:
    for page in ["ops/linear", "ops/convolution", "ops/pools", "ops/activations", "ops/rbf-losses", "ops/curvature"]:
        text = (site / page / "index.html").read_text(encoding="utf-8")
        assert text.count("<math") >= 3 and "arithmatex" not in text, page


def test_the_experiments_plots_are_drawn_from_the_kept_data(tmp_path: Path) -> None:
    """docs/plots.py redraws every plot from docs/data; the pages show the plots it draws."""
    done = subprocess.run([sys.executable, str(REPOSITORY / "docs" / "plots.py"), "--out", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    drawn = sorted(path.name for path in tmp_path.glob("*.png"))
    assert "speed.png" in drawn and "default_test_error.png" in drawn
    pages = "".join(page.read_text(encoding="utf-8") for page in (REPOSITORY / "docs" / "experiments").glob("*.md"))
    for name in drawn:
        assert f"images/{name}" in pages and (REPOSITORY / "docs" / "images" / name).exists(), name
