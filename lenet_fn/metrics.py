"""Classification metrics: error rate, confusion matrix, per-class precision/recall/F1, macro/micro F1.

Definitions follow scikit-learn: rows of the confusion matrix are true classes, columns predicted
ones; a precision or recall whose denominator is zero is reported as 0.
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import IntArray, check_int

CountArray = npt.NDArray[np.int64]


def _check_classes(name: str, value: object) -> IntArray:
    if not isinstance(value, np.ndarray) or value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
        got = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name}: expected a 1-D integer array of class indices, got {got}")
    return value


def _check_predictions(predictions: object, labels: object) -> tuple[IntArray, IntArray]:
    predicted, actual = _check_classes("predictions", predictions), _check_classes("labels", labels)
    if predicted.shape != actual.shape:
        raise ValueError(f"predictions: expected shape {actual.shape} (the shape of labels), got {predicted.shape}")
    return predicted, actual


def error_rate(predictions: IntArray, labels: IntArray) -> float:
    """The fraction of ``predictions`` (N,) that differ from ``labels`` (N,); 0.0 for N = 0."""
    predictions, labels = _check_predictions(predictions, labels)
    return float(np.mean(predictions != labels)) if labels.size else 0.0


def confusion_matrix(predictions: IntArray, labels: IntArray, *, num_classes: int = 10) -> CountArray:
    """Counts of (true class, predicted class) pairs.

    Args:
        predictions: predicted classes in [0, num_classes), shape (N,).
        labels: true classes in [0, num_classes), shape (N,).
        num_classes: K.

    Returns:
        Array of shape (K, K): entry ``[t, p]`` counts samples of class ``t`` predicted as ``p``.
    """
    predictions, labels = _check_predictions(predictions, labels)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    for name, values in (("predictions", predictions), ("labels", labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name}: expected values in [0, {num_classes}), got values from {values.min()} to {values.max()}"
            )
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


@attrs.frozen
class ClassificationReport:
    """Per-class and averaged scores derived from a confusion matrix.

    Attributes:
        confusion: the (K, K) confusion matrix, rows true classes.
        precision: per class, shape (K,).
        recall: per class, shape (K,).
        f1: per class, shape (K,).
        support: samples per true class, shape (K,).
        error_rate: the fraction misclassified.
        macro_f1: the unweighted mean of the per-class F1 scores.
        micro_f1: F1 of the pooled counts (equals accuracy for single-label data).
    """

    confusion: CountArray
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]
    f1: npt.NDArray[np.float64]
    support: CountArray
    error_rate: float
    macro_f1: float
    micro_f1: float


def classification_report(predictions: IntArray, labels: IntArray, *, num_classes: int = 10) -> ClassificationReport:
    """Everything ``python -m lenet_fn.evaluate`` prints, from predictions and labels (N,)."""
    confusion = confusion_matrix(predictions, labels, num_classes=num_classes)
    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, actual)
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = float(confusion.sum())
    correct = float(true_positives.sum())
    micro = correct / total if total else 0.0  # pooled precision = pooled recall = accuracy
    return ClassificationReport(
        confusion=confusion,
        precision=precision,
        recall=recall,
        f1=f1,
        support=confusion.sum(axis=1),
        error_rate=(total - correct) / total if total else 0.0,  # not 1 - micro: that loses the last digits
        macro_f1=float(f1.mean()),
        micro_f1=micro,
    )


def format_confusion(confusion: CountArray) -> str:
    """The confusion matrix as a text table: rows true classes, columns predicted classes."""
    k = confusion.shape[0]
    width = max(5, len(str(int(confusion.max()))) + 1)
    lines = ["true\\pred" + "".join(f"{p:>{width}}" for p in range(k))]
    lines += [f"{t:>9}" + "".join(f"{int(confusion[t, p]):>{width}}" for p in range(k)) for t in range(k)]
    return "\n".join(lines)


def format_report(report: ClassificationReport) -> str:
    """Per-class precision, recall, F1 and support, then the macro and micro averages, as text."""
    lines = [f"{'class':>5} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>8}"]
    for index in range(report.precision.shape[0]):
        lines.append(
            f"{index:>5} {report.precision[index]:>10.4f} {report.recall[index]:>10.4f} "
            f"{report.f1[index]:>10.4f} {int(report.support[index]):>8}"
        )
    lines.append(f"{'macro':>5} {report.precision.mean():>10.4f} {report.recall.mean():>10.4f} {report.macro_f1:>10.4f} {int(report.support.sum()):>8}")
    lines.append(f"{'micro':>5} {report.micro_f1:>10.4f} {report.micro_f1:>10.4f} {report.micro_f1:>10.4f} {int(report.support.sum()):>8}")
    return "\n".join(lines)
