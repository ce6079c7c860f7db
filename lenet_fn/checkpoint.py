"""Checkpoints: parameter trees in ``.npz`` files with JSON metadata, written atomically, read without pickle.

Layout of a file: one array per parameter, keyed by its tree path (``c1.w``); optional extra
arrays under a namespace (``velocity/c1.w``, ``resume/order``); and ``metadata``, a JSON string
holding the format, the library version, the model name and whatever the writer adds (config,
epoch, metrics). Loading checks every key and shape against the model. No pickle is read; a
checkpoint of a model of your own names its import path, and ``load_model`` imports that module.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.atomic import write_atomically
from lenet_fn.models import get_model
from lenet_fn.protocol import Model
from lenet_fn.version import __version__
from lenet_fn.params import tree_flatten_with_paths, tree_unflatten_with_paths

Tree = TypeVar("Tree")

FORMAT = "lenet_fn.checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "metadata"
NAMESPACE_SEPARATOR = "/"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the model (one-line message)."""


def save_checkpoint(
    path: str | os.PathLike[str],
    params: object,
    *,
    model: str,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Mapping[str, npt.NDArray[Any]]] | None = None,
) -> Path:
    """Writes ``params`` (and optional namespaced extra arrays) to ``path`` atomically.

    Args:
        path: the ``.npz`` file to write (its directory is created).
        params: a parameter tree.
        model: the model's name, stored in the metadata (``lenet5``).
        metadata: more JSON-serialisable facts (config, epoch, metrics, ...).
        extra: arrays by namespace, e.g. ``{"velocity": {"c1.w": ...}}``.

    Returns:
        The path written.
    """
    path = Path(path)
    arrays: dict[str, npt.NDArray[Any]] = dict(tree_flatten_with_paths(params))
    if METADATA_KEY in arrays:
        raise ValueError(f"params: the path {METADATA_KEY!r} is where a checkpoint keeps its metadata; rename that entry of the tree")
    for namespace, entries in (extra or {}).items():
        for key, array in entries.items():
            arrays[f"{namespace}{NAMESPACE_SEPARATOR}{key}"] = np.asarray(array)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "library_version": __version__, "model": model}
    arrays[METADATA_KEY] = np.array(json.dumps({**header, **(metadata or {})}))
    savez: Callable[..., None] = np.savez  # keys are tree paths: none collides with savez's keywords
    write_atomically(path, lambda stream: savez(stream, **arrays))
    return path


@attrs.frozen(eq=False)
class Checkpoint:
    """What a checkpoint file holds.

    Attributes:
        metadata: the JSON metadata (format, library version, model, and what the writer added).
        arrays: the parameter arrays by tree path.
        extra: the namespaced arrays, ``{namespace: {key: array}}``.
    """

    metadata: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]
    extra: dict[str, dict[str, npt.NDArray[Any]]]

    @property
    def model(self) -> str:
        return str(self.metadata["model"])

    def params(self, template: Tree) -> Tree:
        """The parameters as a tree shaped like ``template``: every key, shape and dtype is
        checked, and every value must be finite."""
        return self._tree(self.arrays, template, "")

    def extra_tree(self, namespace: str, template: Tree) -> Tree:
        """The arrays of ``namespace`` as a tree shaped like ``template`` (e.g. the velocity)."""
        return self._tree(self.extra.get(namespace, {}), template, f"{namespace} ")

    def _tree(self, arrays: Mapping[str, npt.NDArray[Any]], template: Tree, what: str) -> Tree:
        try:
            tree = tree_unflatten_with_paths(template, arrays)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint {what}does not fit the model {self.model}: {error}") from None
        expected = tree_flatten_with_paths(template)
        for path, leaf in tree_flatten_with_paths(tree).items():
            if leaf.dtype != expected[path].dtype:
                raise CheckpointError(f"checkpoint {what}{path}: expected dtype {expected[path].dtype} (the checkpoint's config.dtype), got {leaf.dtype}")
            bad = int(leaf.size - np.count_nonzero(np.isfinite(leaf)))
            if bad:
                raise CheckpointError(f"checkpoint {what}{path}: {bad:,} of {leaf.size:,} values are NaN or infinite (the weights of a diverged run?)")
        return tree


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Reads a checkpoint (no pickle); shapes are checked later, against a model, by ``Checkpoint.params``.

    Args:
        path: an ``.npz`` file written by ``save_checkpoint``.

    Returns:
        The checkpoint.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a .npz checkpoint file") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({error})") from None
    if METADATA_KEY not in contents:
        raise CheckpointError(f"{path}: not a lenet_fn checkpoint (no '{METADATA_KEY}' entry)")
    try:
        metadata = json.loads(str(contents.pop(METADATA_KEY)[()]))
    except (json.JSONDecodeError, IndexError, TypeError) as error:
        raise CheckpointError(f"{path}: the metadata entry is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or "model" not in metadata:
        raise CheckpointError(f"{path}: not a lenet_fn checkpoint (metadata format is {metadata.get('format') if isinstance(metadata, dict) else metadata!r})")
    arrays: dict[str, npt.NDArray[Any]] = {}
    extra: dict[str, dict[str, npt.NDArray[Any]]] = {}
    for key, array in contents.items():
        if NAMESPACE_SEPARATOR in key:
            namespace, name = key.split(NAMESPACE_SEPARATOR, 1)
            extra.setdefault(namespace, {})[name] = array
        else:
            arrays[key] = array
    return Checkpoint(metadata=metadata, arrays=arrays, extra=extra)


def load_model(path: Path) -> tuple[Model[Any], Any, dict[str, Any]]:
    """The model, parameters and metadata of a checkpoint (keys and shapes checked)."""
    checkpoint = load_checkpoint(path)
    try:
        model = get_model(checkpoint.model)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    params = checkpoint.params(model.init(np.random.default_rng(0), dtype=checkpoint_dtype(path, checkpoint.metadata)))
    return model, params, checkpoint.metadata


def checkpoint_dtype(path: Path, metadata: Mapping[str, Any]) -> str:
    """The float type a checkpoint's config names (float32 when it has no config); a one-line
    ``CheckpointError`` for a config that is not a mapping or a dtype that is not a float type."""
    config = metadata.get("config")
    if config is None:
        return "float32"
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: metadata config: expected a mapping of the run's settings, got {type(config).__name__}")
    dtype = config.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise CheckpointError(f"{path}: metadata config.dtype: expected 'float32' or 'float64', got {dtype!r}")
    return str(dtype)
