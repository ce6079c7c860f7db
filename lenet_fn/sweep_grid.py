"""The runs of a sweep: the train command's flags, with a comma-separated list of values for each
axis to sweep (or a TOML or JSON file of settings), every combination a setting, and each setting
trained once per seed.

``plan_sweep(["--lr", "0.001,0.003", "--batch-size", "16,32"], seeds="0-2")`` is 4 settings x 3
seeds = 12 runs. Every run's flags are read by the train command's own flags and defaults
(``train_cli.add_train_flags``, ``config_from_flags``), so a run of a sweep computes what
``python -m lenet_fn.train`` computes with the same flags (``SweepRun.train_command``). One
default differs: ``--threads`` is 1 unless given, as a sweep runs one run per core.

A file of settings, in TOML (``[[settings]]`` tables) or JSON (``{"settings": [...]}``), names the
train command's flags without their dashes; a list is an axis of that setting, and the file may
give the ``seeds``::

    seeds = "0-2"
    [[settings]]
    optimizer = "momentum"
    [[settings]]
    optimizer = "sdlm"
    lr = [1e-4, 5e-4]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs

from lenet_fn.cli import UsageError
from lenet_fn.config import TrainConfig
from lenet_fn.train_cli import add_train_flags, config_from_flags, model_of

SWEEP_THREADS = 1
"""The thread count of a sweep's runs unless ``--threads`` is given: one run per core."""
_REFUSED = {
    "seed": "a sweep takes its seeds as --seeds (e.g. --seeds 0-2)",
    "resume": "a sweep resumes its runs by itself: run the same sweep again",
    "out": "each run of a sweep has a directory of its own, named by its settings, in the sweep's --out",
    "dataset": "the dataset is the whole sweep's (--dataset), not one run's",
    "help": "python -m lenet_fn.train --help lists the flags",
}
_SEEDS = re.compile(r"(\d+)(?:-(\d+))?")

Choice = tuple[str, ...]
"""The flag and value of one position of an axis (``("--lr", "0.001")``), or a switch alone."""


@attrs.frozen
class SweepRun:
    """One run of a sweep.

    Attributes:
        config: its settings (the seed among them).
        setting: the flags that set its setting apart from the sweep's others (``--lr 0.001``),
            the same for each seed; every flag when the sweep has one setting.
        flags: the train command's flags that compute the same run (the seed among them).
    """

    config: TrainConfig
    setting: str
    flags: tuple[str, ...]

    @property
    def train_command(self) -> str:
        """The ``python -m lenet_fn.train`` command that trains the same run alone."""
        return shlex.join(["python", "-m", "lenet_fn.train", *self.flags])


@attrs.frozen
class Axis:
    """The values a sweep takes for one flag.

    Attributes:
        name: the flag's name without dashes, ``-`` between words (``batch-size``).
        choices: one ``Choice`` per value.
    """

    name: str
    choices: tuple[Choice, ...]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are a ``UsageError`` (one line) instead of usage and an exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _run_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m lenet_fn.sweep", add_help=False, allow_abbrev=False)
    add_train_flags(parser)
    return parser


MAX_SEEDS = 1000
"""The most seeds a sweep takes (each is a run of every setting)."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from ``0-2``, ``0,3,5`` or ``0-2,7``: a ``UsageError`` for anything else or a repeat."""
    seeds: list[int] = []
    for part in text.split(","):
        match = _SEEDS.fullmatch(part.strip())
        if match is None or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise UsageError(f"--seeds: expected seeds such as 0-2 or 0,3,5 (integers >= 0, ranges low-high), got {text!r}")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise UsageError(f"--seeds: expected at most {MAX_SEEDS:,} seeds, got {text!r}")
        seeds.extend(range(low, high + 1))
    repeated = sorted(seed for seed, times in collections.Counter(seeds).items() if times > 1)
    if repeated:
        raise UsageError(f"--seeds: expected each seed once, got {repeated[0]} more than once in {text!r}")
    return tuple(seeds)


def _flag_values(tokens: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """``(flag, value)`` for each flag of ``tokens`` (``--lr 0.1`` or ``--lr=0.1``; a switch's value is None)."""
    rest = list(tokens)
    while rest:
        token = rest.pop(0)
        if not token.startswith("--") or token == "--":
            raise UsageError(f"{token}: expected a flag of python -m lenet_fn.train (such as --lr 0.001,0.003), got a value with no flag before it")
        if "=" in token:
            flag, value = token.split("=", 1)
            yield flag, value
        elif rest and not rest[0].startswith("--"):
            yield token, rest.pop(0)
        else:
            yield token, None


def _name(flag: str) -> str:
    """The setting a flag sets: ``--no-distort`` and ``--distort`` both ``distort``, ``--batch_size`` ``batch-size``."""
    bare = flag.removeprefix("--").replace("_", "-")
    return bare.removeprefix("no-") if bare.startswith("no-") else bare


def _refuse(name: str, where: str) -> None:
    if name in _REFUSED:
        raise UsageError(f"{where}--{name}: {_REFUSED[name]}")


def axes_from_flags(tokens: Sequence[str]) -> list[Axis]:
    """The axes of the train flags ``tokens``, each value list split at its commas: a
    ``UsageError`` for an empty value, a value listed twice, or a flag given twice."""
    axes: list[Axis] = []
    for flag, value in _flag_values(tokens):
        name = _name(flag)
        _refuse(name, "")
        if any(axis.name == name for axis in axes):
            raise UsageError(f"{flag}: given twice; list its values once, separated by commas (such as {flag} 0.001,0.003)")
        if value is None:
            axes.append(Axis(name, ((flag,),)))
            continue
        parts = value.split(",")
        if any(not part.strip() for part in parts):
            raise UsageError(f"{flag}: expected values separated by commas (such as {flag} 0.001,0.003), got an empty one in {value!r}")
        _check_once(flag, parts)
        axes.append(Axis(name, tuple((flag, part.strip()) for part in parts)))
    return axes


def _check_once(flag: str, values: Sequence[object]) -> None:
    repeated = [value for value in values if list(values).count(value) > 1]
    if repeated:
        raise UsageError(f"{flag}: expected each value once, got {repeated[0]} more than once")


def _file_choice(name: str, value: object) -> Choice | None:
    """A file's value as the train command's flag: a switch for a boolean (None: not a scalar)."""
    if isinstance(value, bool):
        return (f"--{name}",) if value else (f"--no-{name}",)
    if isinstance(value, (int, float, str)):
        return (f"--{name}", repr(value) if isinstance(value, float) else str(value))
    return None


def _file_axis(name: str, value: object, where: str) -> Axis:
    """One key of a file's setting as an axis: a scalar, or a non-empty list of scalars."""
    values = value if isinstance(value, list) else [value]
    choices = [_file_choice(name, item) for item in values]
    if not values or any(choice is None for choice in choices):
        raise UsageError(f"{where}{name}: expected a number, a string, true or false, or a non-empty list of them, got {json.dumps(value)}")
    _check_once(f"{where}{name}", [json.dumps(item) for item in values])
    return Axis(name, tuple(choice for choice in choices if choice is not None))


def _load_document(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--file {path}: cannot read it ({type(error).__name__}: {error})") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        if path.suffix.lower() != ".toml":
            raise UsageError(f"--file {path}: expected a .toml or .json file of settings, got a {path.suffix or 'suffixless'} file")
        if sys.version_info < (3, 11):
            raise UsageError(f"--file {path}: reading TOML needs Python 3.11 or newer (tomllib); write the settings as JSON")
        import tomllib

        return tomllib.loads(text)
    except ValueError as error:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise UsageError(f"--file {path}: not valid {path.suffix.lower().lstrip('.').upper()} ({error})") from None


def read_settings_file(path: Path) -> tuple[list[list[Axis]], str | None]:
    """The settings of a TOML or JSON file (each a list of axes) and the seeds it gives (or None)."""
    document = _load_document(path)
    if not isinstance(document, dict) or not set(document) <= {"settings", "seeds"} or not isinstance(document.get("settings"), list):
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise UsageError(f"--file {path}: expected 'settings' (a list of tables of train flags) and optionally 'seeds', got {found}")
    seeds = document.get("seeds")
    if seeds is not None and not (isinstance(seeds, str) or (isinstance(seeds, list) and all(type(seed) is int for seed in seeds))):
        raise UsageError(f"--file {path}: seeds: expected a string such as \"0-2\" or a list of integers, got {json.dumps(seeds)}")
    settings: list[list[Axis]] = []
    for index, entry in enumerate(document["settings"]):
        where = f"--file {path}: settings[{index}]: "
        if not isinstance(entry, dict):
            raise UsageError(f"{where}expected a table of train flags, got {json.dumps(entry)}")
        for key in entry:
            _refuse(_name(key), where)
        settings.append([_file_axis(_name(key), value, where) for key, value in entry.items()])
    if not settings:
        raise UsageError(f"--file {path}: settings: expected at least one setting, got none")
    return settings, seeds if isinstance(seeds, str) or seeds is None else ",".join(map(str, seeds))


def _config(tokens: Sequence[str], where: str) -> TrainConfig:
    """The settings the train command reads from ``tokens``, its model checked (a ``UsageError``
    prefixed with ``where`` otherwise)."""
    try:
        config = config_from_flags(_run_parser().parse_args(tokens))
        model_of(config)
    except UsageError as error:
        raise UsageError(f"{where}{error}") from None
    return config


def _labels(settings: Sequence[Sequence[Choice]]) -> list[str]:
    """Each setting's flags that not every setting shares (all of them when there is one)."""
    shared = set.intersection(*(set(setting) for setting in settings)) if len(settings) > 1 else set()
    return [" ".join(token for choice in setting if choice not in shared for token in choice) or "the defaults" for setting in settings]


def _settings(common: list[Axis], entries: list[list[Axis]], file_name: str) -> list[tuple[list[Choice], str]]:
    """Every combination of the axes: (choices, where to point an error at)."""
    combined: list[tuple[list[Choice], str]] = []
    for index, entry in enumerate(entries):
        clash = sorted({axis.name for axis in entry} & {axis.name for axis in common})
        if clash:
            raise UsageError(f"--{clash[0]}: given both on the command line and in {file_name}'s settings[{index}]; give it in one place")
        axes = [*common, *entry]
        if not any(axis.name == "threads" for axis in axes):
            axes.append(Axis("threads", (("--threads", str(SWEEP_THREADS)),)))
        where = f"--file {file_name}: settings[{index}]: " if file_name else ""
        combined.extend((list(choices), where) for choices in itertools.product(*(axis.choices for axis in axes)))
    return combined


def plan_sweep(flags: Sequence[str] = (), *, seeds: str | Sequence[int] | None = None, settings_file: Path | None = None) -> list[SweepRun]:
    """The runs of a sweep, each setting once per seed (settings in the order given, seeds within).

    Args:
        flags: the train command's flags, a comma-separated list of values for each axis
            (``["--lr", "0.001,0.003", "--model", "mlp"]``); with ``settings_file``, the flags
            every setting of the file shares.
        seeds: ``"0-2"``, ``"0,3"``, or a sequence of seeds; default: the file's, else seed 0.
        settings_file: a TOML or JSON file of settings (the module's docstring shows one).

    Returns:
        The runs.

    Raises:
        UsageError: an unknown flag or value, an empty axis, a repeated value or flag, two
            settings that are the same (one line, naming the flag).
    """
    common = axes_from_flags(flags)
    entries, file_seeds = read_settings_file(settings_file) if settings_file is not None else ([[]], None)
    if seeds is not None and file_seeds is not None:
        raise UsageError(f"--seeds: also given by {settings_file}; give the seeds in one place")
    chosen = seeds if seeds is not None else (file_seeds or "0")
    seed_list = parse_seeds(chosen) if isinstance(chosen, str) else parse_seeds(",".join(str(seed) for seed in chosen))
    settings = _settings(common, entries, str(settings_file or ""))
    labels = _labels([choices for choices, _ in settings])
    runs = []
    for (choices, where), label in zip(settings, labels):
        tokens = [token for choice in choices for token in choice]
        for seed in seed_list:
            flags_of_run = (*tokens, "--seed", str(seed))
            runs.append(SweepRun(config=_config(flags_of_run, where), setting=label, flags=flags_of_run))
    _check_distinct(runs)
    return runs


def _check_distinct(runs: Sequence[SweepRun]) -> None:
    first: dict[TrainConfig, SweepRun] = {}
    for run in runs:
        other = first.setdefault(run.config, run)
        if other is not run:
            raise UsageError(f"settings '{other.setting}' and '{run.setting}': expected different settings, got the same run twice (seed {run.config.seed})")


def seeds_of(runs: Sequence[SweepRun]) -> tuple[int, ...]:
    """The seeds of ``runs``, each once, in order."""
    return tuple(dict.fromkeys(run.config.seed for run in runs))


def settings_of(runs: Sequence[SweepRun]) -> tuple[str, ...]:
    """The settings of ``runs``, each once, in order."""
    return tuple(dict.fromkeys(run.setting for run in runs))


def describe_config(config: TrainConfig) -> dict[str, Any]:
    """The settings of a run without its seed: what the seeds of one setting share."""
    return {key: value for key, value in config.to_dict().items() if key != "seed"}
