"""Every figure of `show` is written, the bitmaps print as ASCII, and bad arguments get one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from lenet_fn import plots, show
from lenet_fn.shipped import pretrained_path


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return show.main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


def _metrics(directory: Path) -> Path:
    epochs = [{"epoch": epoch, "train_error": 0.05 / epoch, "test_error": 0.04 / epoch} for epoch in range(1, 6)]
    (directory / "metrics.json").write_text(json.dumps({"epochs": epochs}))
    return directory


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["bitmaps"], "bitmaps.png"),
        (["features", "--test", "0"], "features.png"),
        (["f6", "--test", "1"], "f6.png"),
        (["curve", "RUN"], "curve.png"),
        (["confusion", "CKPT"], "confusion.png"),
    ],
)
def test_every_figure_is_written(argv: list[str], name: str, tmp_path: Path) -> None:
    argv = [str(_metrics(tmp_path)) if part == "RUN" else str(pretrained_path()) if part == "CKPT" else part for part in argv]
    status, out, err = _run([*argv, "--out", str(tmp_path / name)])
    assert status == 0, err
    assert out == f"wrote {tmp_path / name}\n"
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 5000


def test_features_of_an_image_file(tmp_path: Path) -> None:
    pixels = np.zeros((40, 40), np.uint8)
    pixels[8:32, 18:22] = 255  # a "1"
    np.save(tmp_path / "one.npy", pixels)
    status, _, err = _run(["features", str(tmp_path / "one.npy"), "--out", str(tmp_path / "one.png")])
    assert status == 0 and (tmp_path / "one.png").stat().st_size > 5000, err


def test_bitmaps_as_ascii_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    status, out, _ = _run(["bitmaps"])
    assert status == 0
    assert out.startswith("digit 0\n.#####.\n") and out.count("digit ") == 10
    assert out.splitlines()[-1] == f"(printed as text: {plots.PLOT_HINT})"
    status, _, err = _run(["curve", "."])
    assert status == 2 and err == f"error: curve: {plots.PLOT_HINT}\n"


def test_bad_arguments_get_one_line(tmp_path: Path) -> None:
    assert _run(["features"]) == (2, "", "error: features: give an IMAGE or --test N (an index into the MNIST test set)\n")
    assert _run(["f6", "--test", "10000"])[2] == "error: --test: expected an index in [0, 10000), got 10000\n"
    status, _, err = _run(["curve", str(tmp_path)])
    assert status == 2 and err == f"error: {tmp_path / 'metrics.json'}: no such file\n"
