"""Error rate, confusion matrix and per-class scores against hand-computed values."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lenet_fn.metrics import classification_report, confusion_matrix, error_rate, format_confusion, format_report

LABELS = np.array([0, 0, 0, 1, 1, 2])
PREDICTIONS = np.array([0, 0, 1, 1, 2, 2])


def test_error_rate_and_confusion_matrix() -> None:
    assert error_rate(PREDICTIONS, LABELS) == pytest.approx(2 / 6)
    np.testing.assert_array_equal(confusion_matrix(PREDICTIONS, LABELS, num_classes=3), [[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_per_class_scores_and_averages() -> None:
    report = classification_report(PREDICTIONS, LABELS, num_classes=4)
    # class 0: precision 2/2, recall 2/3; class 1: 1/2, 1/2; class 2: 1/2, 1/1; class 3: no samples -> 0
    np.testing.assert_allclose(report.precision, [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(report.recall, [2 / 3, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(report.f1, [0.8, 0.5, 2 / 3, 0.0])
    np.testing.assert_array_equal(report.support, [3, 2, 1, 0])
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3 + 0.0) / 4)
    assert report.micro_f1 == pytest.approx(4 / 6) and report.error_rate == pytest.approx(2 / 6)


def test_tables() -> None:
    report = classification_report(PREDICTIONS, LABELS, num_classes=3)
    table = format_confusion(report.confusion)
    assert table.splitlines()[0].split() == ["true\\pred", "0", "1", "2"]
    assert table.splitlines()[1].split() == ["0", "2", "1", "0"]
    lines = format_report(report).splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["0", "1.0000", "0.6667", "0.8000", "3"]
    assert lines[-1].split()[0] == "micro" and lines[-2].split()[0] == "macro"


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="predictions: expected a 1-D integer array of class indices, got float64 array of shape \\(2,\\)"):
        error_rate(np.zeros(2), np.zeros(2, int))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("predictions: expected shape (3,) (the shape of labels), got (2,)")):
        error_rate(np.zeros(2, int), np.zeros(3, int))
    with pytest.raises(ValueError, match=re.escape("labels: expected values in [0, 3), got values from 0 to 5")):
        confusion_matrix(np.zeros(2, int), np.array([0, 5]), num_classes=3)
