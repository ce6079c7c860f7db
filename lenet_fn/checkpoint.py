"""Checkpoints: parameter trees in ``.npz`` files with JSON metadata, written atomically, read without pickle.

Layout of a file: one array per parameter, keyed by its tree path (``c1.w``); optional extra
arrays under a namespace (``velocity/c1.w``, ``resume/order``); and ``metadata``, a JSON string
holding the format, the library version, the model name and whatever the writer adds (config,
epoch, metrics). Loading checks every key and shape against the model. No pickle is read; a
checkpoint of a model of your own names its import path, and ``load_model`` imports that module.
Loading reads the zip directory and every array's header before any array, so a file announcing
more than it can hold, or more than a checkpoint holds, is refused before memory is spent on it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.atomic import write_atomically
from lenet_fn.bounded_read import ArchiveError, NpyMember, check_directory, read_header, read_member
from lenet_fn.models import get_model
from lenet_fn.protocol import Model
from lenet_fn.version import __version__
from lenet_fn.params import tree_flatten_with_paths, tree_unflatten_with_paths

Tree = TypeVar("Tree")

FORMAT = "lenet_fn.checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "metadata"
NAMESPACE_SEPARATOR = "/"

MAX_EXPANSION = 8
"""A checkpoint's arrays take at most this many times its file's size: ``save_checkpoint`` stores
them (1:1), and deflated float weights shrink little (the shipped weights 1.05:1; with a zero
velocity and an epoch's order 2.4:1), so more is a bomb, not weights."""
SMALL_CHECKPOINT_ALLOWANCE = 16 << 20
"""Bytes of arrays any checkpoint may announce, whatever its size: a small deflated checkpoint of
zeros (a fresh model's velocity deflates ~90:1) still loads."""
METADATA_MAX_CHARACTERS = 1 << 22
"""The longest metadata read, 4 Mi characters (16 MiB as NumPy stores text): a run writes its
config, a generator state and ~200 characters per epoch, so this holds 20,000 epochs."""
METADATA_MAX_DEPTH = 64
"""The deepest nesting of the metadata's JSON: a run's nests 3 levels (history, entry, value)."""

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_AS_PARENTHESES = str.maketrans("[{]}", "(())")


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


def _not_a_checkpoint(start: bytes) -> str:
    """What a file that is no zip archive is, from its first bytes."""
    if not start:
        return "an empty file"
    if start.startswith(b"\x93NUMPY"):
        return "a .npy array (np.save), not an archive of arrays"
    if start[:1] == b"\x80" and start[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle, which lenet_fn never loads"
    return f"a file starting with {start[:8]!r}"


def _open_archive(path: Path, file: BinaryIO) -> zipfile.ZipFile:
    """The zip archive of an open file, or a one-line error saying what the file is instead."""
    start = file.read(8)
    file.seek(0)
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error) as error:
        if start[:2] != b"PK":
            raise CheckpointError(f"{path}: not a lenet_fn .npz checkpoint: expected a .npz (zip) archive written by lenet_fn, got {_not_a_checkpoint(start)}") from None
        raise CheckpointError(f"{path}: not a readable .npz checkpoint: a truncated or damaged zip archive ({error})") from None


def _check_expansion(path: Path, members: list[zipfile.ZipInfo], file_size: int) -> None:
    """Refuses arrays announcing more than ``MAX_EXPANSION`` times the file (or the allowance)."""
    announced = sum(info.file_size for info in members)
    allowed = max(MAX_EXPANSION * file_size, SMALL_CHECKPOINT_ALLOWANCE)
    if announced > allowed:
        raise CheckpointError(
            f"{path}: its members announce {announced:,} bytes in a file of {file_size:,}, expected at most {allowed:,} "
            f"(a checkpoint's arrays take at most {MAX_EXPANSION} times its size): not a lenet_fn checkpoint"
        )


def _nested_deeper_than(text: str, depth: int) -> bool:
    """Whether JSON ``text`` opens arrays and objects deeper than ``depth`` at any point, found
    without recursion (and whether or not they are ever closed): strings blanked, then the running
    count of opening minus closing brackets."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub('""', text)).translate(_AS_PARENTHESES)
    steps = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    running = np.cumsum(np.where(steps == ord("("), 1, -1))
    return bool(running.size) and int(running.max()) > depth


def _read_metadata(path: Path, archive: zipfile.ZipFile, member: NpyMember) -> dict[str, Any]:
    """The metadata entry, its size and nesting checked before it is read and parsed."""
    if member.dtype.kind != "U" or member.shape != ():
        raise CheckpointError(f"{path}: the metadata entry: expected a JSON string (a 0-d unicode array), got {member.dtype} of shape {member.shape}")
    characters = member.dtype.itemsize // 4
    if characters > METADATA_MAX_CHARACTERS:
        raise CheckpointError(f"{path}: the metadata entry holds {characters:,} characters, expected at most {METADATA_MAX_CHARACTERS:,}")
    text = str(read_member(archive, member)[()])
    if _nested_deeper_than(text, METADATA_MAX_DEPTH):
        raise CheckpointError(f"{path}: the metadata entry nests deeper than {METADATA_MAX_DEPTH} levels, expected a few (config, history)")
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: the metadata entry is not valid JSON ({type(error).__name__}: {error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or "model" not in metadata:
        raise CheckpointError(f"{path}: not a lenet_fn checkpoint (metadata format is {metadata.get('format') if isinstance(metadata, dict) else metadata!r})")
    return metadata


def _check_array(path: Path, member: NpyMember) -> None:
    """A parameter or namespaced extra: numbers, named by a tree path or ``namespace/path``."""
    namespace, separator, name = member.key.partition(NAMESPACE_SEPARATOR)
    if not namespace or (separator and not name):
        raise CheckpointError(f"{path}: member {member.info.filename!r}: expected a name of the form path.npy or namespace/path.npy")
    if member.dtype.kind not in "biufc":
        raise CheckpointError(f"{path}: {member.key}: expected an array of numbers, got dtype {member.dtype}")


def _read_checkpoint(path: Path, archive: zipfile.ZipFile, file_size: int) -> Checkpoint:
    """Inspects the directory and every header, reads the metadata, then the arrays."""
    check_directory(archive.infolist(), file_size)
    _check_expansion(path, archive.infolist(), file_size)
    members = {member.key: member for member in map(partial(read_header, archive), archive.infolist())}
    if METADATA_KEY not in members:
        raise CheckpointError(f"{path}: not a lenet_fn checkpoint (no '{METADATA_KEY}' entry)")
    metadata_member = members.pop(METADATA_KEY)
    for member in members.values():
        _check_array(path, member)
    metadata = _read_metadata(path, archive, metadata_member)
    arrays: dict[str, npt.NDArray[Any]] = {}
    extra: dict[str, dict[str, npt.NDArray[Any]]] = {}
    for key, member in members.items():
        if NAMESPACE_SEPARATOR in key:
            namespace, name = key.split(NAMESPACE_SEPARATOR, 1)
            extra.setdefault(namespace, {})[name] = read_member(archive, member)
        else:
            arrays[key] = read_member(archive, member)
    return Checkpoint(metadata=metadata, arrays=arrays, extra=extra)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Reads a checkpoint (no pickle); shapes are checked later, against a model, by ``Checkpoint.params``.

    Nothing is read before it is known to fit: the zip directory first (only ``.npy`` members,
    sizes the file can hold, arrays at most ``MAX_EXPANSION`` times the file), then each member's
    header (plain numbers of exactly the member's size), then the metadata (at most
    ``METADATA_MAX_CHARACTERS``, nested at most ``METADATA_MAX_DEPTH`` deep), and only then the
    arrays, each into one array of its announced size.

    Args:
        path: an ``.npz`` file written by ``save_checkpoint``.

    Returns:
        The checkpoint.
    """
    path = Path(path)
    try:
        with path.open("rb") as file, _open_archive(path, file) as archive:
            return _read_checkpoint(path, archive, os.fstat(file.fileno()).st_size)
    except ArchiveError as error:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint: {error}") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a .npz checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read the file ({error.strerror or error})") from None


def load_model(path: Path) -> tuple[Model[Any], Any, dict[str, Any]]:
    """The model, parameters and metadata of a checkpoint (keys and shapes checked)."""
    checkpoint = load_checkpoint(path)
    try:
        model = get_model(checkpoint.model)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    params = checkpoint.params(model.init(np.random.default_rng(0), dtype=checkpoint_dtype(path, checkpoint.metadata)))
    return model, params, checkpoint.metadata


def checkpoint_config(path: Path, metadata: Mapping[str, Any], *, required: bool) -> dict[str, Any] | None:
    """The run settings a checkpoint's metadata holds (None when it has none and they are not
    ``required``); a one-line ``CheckpointError`` for anything but a mapping."""
    config = metadata.get("config")
    if config is None and not required:
        return None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: metadata config: expected a mapping of the run's settings, got {type(config).__name__}")
    return config


def checkpoint_dtype(path: Path, metadata: Mapping[str, Any]) -> str:
    """The float type a checkpoint's config names (float32 when it has no config); a one-line
    ``CheckpointError`` for a config that is not a mapping or a dtype that is not a float type."""
    config = checkpoint_config(path, metadata, required=False)
    if config is None:
        return "float32"
    dtype = config.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise CheckpointError(f"{path}: metadata config.dtype: expected 'float32' or 'float64', got {dtype!r}")
    return str(dtype)
