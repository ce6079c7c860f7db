"""A sweep's runs (lenet_fn.sweep_grid): the train command's flags with lists for the axes, a TOML
or JSON file of settings, seeds, the runs' names, and one line for every kind of bad input. No
training here."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest

from lenet_fn import sweep_cli, train_cli
from lenet_fn.cli import UsageError
from lenet_fn.config import TrainConfig
from lenet_fn.data import Mnist
from lenet_fn.models import get_model
from lenet_fn.state import prepare_data
from lenet_fn.sweep_grid import parse_seeds, plan_sweep
from lenet_fn.sweep_task import run_name

REPOSITORY = Path(__file__).resolve().parents[1]
DOCUMENTED = [REPOSITORY / "README.md", REPOSITORY / "docs" / "sweeps.md", REPOSITORY / "docs" / "experiments" / "results.md"]


def _documented_sweeps() -> list[tuple[str, list[str]]]:
    """(where, argv) of every ``python -m lenet_fn.sweep`` line in the bash blocks of the pages that show one."""
    found = []
    for page in DOCUMENTED:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                command = line.split("#")[0].strip()
                if command.startswith("python -m lenet_fn.sweep"):
                    found.append((f"{page.name}: {command}", shlex.split(command)[3:]))
    return found


DOCUMENTED_SWEEPS = _documented_sweeps()


def test_every_combination_of_the_axes_is_a_setting_trained_once_per_seed() -> None:
    runs = plan_sweep(["--model", "mlp", "--lr", "0.001,0.003", "--batch-size", "16,32"], seeds="0-2")
    assert len(runs) == 12
    assert [(run.config.lr, run.config.batch_size, run.config.seed) for run in runs[:4]] == [
        (0.001, 16, 0), (0.001, 16, 1), (0.001, 16, 2), (0.001, 32, 0)
    ]  # fmt: skip
    assert [run.setting for run in runs[::3]] == ["--lr 0.001 --batch-size 16", "--lr 0.001 --batch-size 32",
                                                  "--lr 0.003 --batch-size 16", "--lr 0.003 --batch-size 32"]  # fmt: skip
    assert {run.config.threads for run in runs} == {1} and {run.config.model for run in runs} == {"mlp"}


def test_a_run_of_a_sweep_has_the_settings_the_train_command_reads_from_its_flags() -> None:
    for run in plan_sweep(["--optimizer", "momentum,sdlm", "--epochs", "3", "--limit", "5000", "--holdout", "1000"], seeds="4"):
        alone = train_cli.config_from_flags(train_cli._parser().parse_args(run.flags))
        assert alone == run.config and run.train_command.startswith("python -m lenet_fn.train --optimizer ")
    sdlm = plan_sweep(["--optimizer", "sdlm"])[0].config
    assert (sdlm.batch_size, sdlm.momentum, sdlm.distort, sdlm.sdlm_every, sdlm.holdout) == (16, 0.0, False, 50, None)
    assert plan_sweep(["--threads", "2"])[0].config.threads == 2  # given, it is kept


@pytest.mark.parametrize(
    ("text", "seeds"), [("0", (0,)), ("0-2", (0, 1, 2)), ("0,3,5", (0, 3, 5)), ("0-2,7", (0, 1, 2, 7)), (" 4 - 5", None)]
)
def test_seeds_are_a_list_of_numbers_and_ranges(text: str, seeds: tuple[int, ...] | None) -> None:
    if seeds is None:
        with pytest.raises(UsageError, match="expected seeds such as 0-2"):
            parse_seeds(text)
    else:
        assert parse_seeds(text) == seeds


def test_a_runs_name_is_a_hash_of_its_settings_seed_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    run = plan_sweep(["--model", "mlp", "--lr", "0.003"])[0]
    same = plan_sweep(["--model=mlp", "--lr=3e-3"])[0]
    name = run_name(run.config)
    assert name == run_name(same.config) and name.startswith("mlp-s0-") and len(name) == len("mlp-s0-") + 12
    for change in ({"seed": 1}, {"lr": 0.0031}, {"holdout": 10000}, {"threads": 2}, {"epochs": 21}):
        assert run_name(attrs.evolve(run.config, **change)) != name, change
    monkeypatch.setattr("lenet_fn.sweep_task.__version__", "0.0.0")
    assert run_name(run.config) != name


def test_a_file_of_settings_gives_the_runs_the_flags_give(tmp_path: Path) -> None:
    toml = tmp_path / "sweep.toml"
    toml.write_text('seeds = "0-1"\n[[settings]]\noptimizer = "momentum"\n[[settings]]\noptimizer = "sdlm"\nlr = [1e-4, 5e-4]\ndistort = true\n')
    document = {"seeds": [0, 1], "settings": [{"optimizer": "momentum"}, {"optimizer": "sdlm", "lr": [0.0001, 0.0005], "distort": True}]}
    (tmp_path / "sweep.json").write_text(json.dumps(document))
    from_toml = plan_sweep(["--epochs", "2"], settings_file=toml)
    from_json = plan_sweep(["--epochs", "2"], settings_file=tmp_path / "sweep.json")
    assert [run.config for run in from_toml] == [run.config for run in from_json] and len(from_toml) == 6
    assert [run.setting for run in from_toml[::2]] == ["--optimizer momentum", "--optimizer sdlm --lr 0.0001 --distort", "--optimizer sdlm --lr 0.0005 --distort"]
    assert {run.config.epochs for run in from_toml} == {2} and from_toml[2].config.distort and from_toml[2].config.lr == 1e-4


def _main(argv: list[str], tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = sweep_cli.main([*argv, "--out", str(tmp_path / "sweep")], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--foo", "1"], "unrecognized arguments: --foo 1"),
        (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["--epochs", "1,x"], "argument --epochs: invalid int value: 'x'"),
        (["--lr", "0.1,"], "--lr: expected values separated by commas (such as --lr 0.001,0.003), got an empty one in '0.1,'"),
        (["--lr", ""], "--lr: expected values separated by commas (such as --lr 0.001,0.003), got an empty one in ''"),
        (["--seeds", ""], "--seeds: expected seeds such as 0-2 or 0,3,5 (integers >= 0, ranges low-high), got ''"),
        (["--seeds", "2-0"], "--seeds: expected seeds such as 0-2 or 0,3,5 (integers >= 0, ranges low-high), got '2-0'"),
        (["--seeds", "0-2,1"], "--seeds: expected each seed once, got 1 more than once in '0-2,1'"),
        (["--lr", "0.1,0.1"], "--lr: expected each value once, got 0.1 more than once"),
        (["--lr", "0.1", "--lr", "0.2"], "--lr: given twice; list its values once, separated by commas (such as --lr 0.001,0.003)"),
        (["--lr", "0.003,3e-3"], "settings '--lr 0.003' and '--lr 3e-3': expected different settings, got the same run twice (seed 0)"),
        (["--lr", "-1"], "--lr: expected a finite number > 0, got -1.0"),
        (["--holdout", "60000"], "--holdout: expected an integer in [1, 59999], got 60000"),
        (["--model", "mlp", "--optimizer", "sdlm", "--distort", "--translate", "1,30"], "--translate: expected a number in [0.0, 28.0), got 30.0"),
        (["--seed", "1"], "--seed: a sweep takes its seeds as --seeds (e.g. --seeds 0-2)"),
        (["--resume", "runs/x/last.npz"], "--resume: a sweep resumes its runs by itself: run the same sweep again"),
        (["0.1"], "0.1: expected a flag of python -m lenet_fn.train (such as --lr 0.001,0.003), got a value with no flag before it"),
        (["--model", "nosuch"], "--model: expected one of lenet5, lenet5-relu, mlp or an import path module:NAME, got 'nosuch'"),
        (["--model", "mlp", "--optimizer", "sdlm", "--model", "x"], "--model: given twice; list its values once, separated by commas (such as --model 0.001,0.003)"),
        (["--processes", "0"], "--processes: expected an integer >= 1, got 0"),
        (["--scheduler", "localhost"], "--scheduler: expected a Dask scheduler's address such as tcp://HOST:8786, got 'localhost'"),
        (["--processes", "2", "--scheduler", "tcp://127.0.0.1:8786"],
         "--processes: sets local processes; a cluster's workers are set where they start (dask worker --nworkers N)"),
        (["--dataset", "/nonexistent"], "/nonexistent: no such directory (expected a directory holding the four MNIST files)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_what_was_expected(argv: list[str], message: str, tmp_path: Path) -> None:
    status, out, err = _main(argv, tmp_path)
    assert (status, out) == (2, "") and err.splitlines()[-1] == f"error: {message}" and err.count("error") == 1, err
    assert not (tmp_path / "sweep").exists() or not any((tmp_path / "sweep").iterdir())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[settings]]\nlr = []\n", "settings[0]: lr: expected a number, a string, true or false, or a non-empty list of them, got []"),
        ("[[settings]]\nlr = [[1]]\n", "settings[0]: lr: expected a number, a string, true or false, or a non-empty list of them, got [[1]]"),
        ("[[settings]]\nseed = 1\n", "settings[0]: --seed: a sweep takes its seeds as --seeds (e.g. --seeds 0-2)"),
        ("[[settings]]\nlr = 0.1\nlrr = 2\n", "settings[0]: unrecognized arguments: --lrr 2"),
        ("[[settings]]\nepochs = 2\n", "--epochs: given both on the command line and in {file}'s settings[0]; give it in one place"),
        ("settings = []\n", "settings: expected at least one setting, got none"),
        ("runs = 3\n", "expected 'settings' (a list of tables of train flags) and optionally 'seeds', got ['runs']"),
        ("[[settings]\n", "not valid TOML ("),  # then tomllib's words, which change between Python versions
    ],
)
def test_a_bad_file_of_settings_is_one_line_naming_the_entry(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(content)
    status, out, err = _main(["--file", str(path), "--epochs", "1"], tmp_path)
    expected = message.format(file=path) if message.startswith("--epochs") else f"--file {path}: {message}"
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"error: {expected}") if expected.endswith("(") else err == f"error: {expected}\n"


def test_a_dry_run_lists_the_runs_and_trains_nothing(tmp_path: Path) -> None:
    status, out, err = _main(["--model", "mlp", "--lr", "0.01,0.05", "--seeds", "0,1", "--dry-run"], tmp_path)
    lines = out.splitlines()
    assert status == 0 and err == "" and len(lines) == 4 and not (tmp_path / "sweep").exists()
    assert lines[0].split("  ")[1:] == ["new", "python -m lenet_fn.train --model mlp --lr 0.01 --threads 1 --seed 0"]


def test_holdout_measures_on_the_last_training_images_and_trains_on_the_ones_before() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    dataset = Mnist(images, labels, images[:3], labels[:3])
    model = get_model("mlp")
    held = prepare_data(model, dataset, holdout=4, limit=5)
    assert held.train_y.tolist() == [0, 1, 2, 3, 4] and held.test_y.tolist() == [6, 7, 8, 9]
    plain = prepare_data(model, dataset, limit=5)
    assert plain.test_y.tolist() == [0, 1, 2] and np.array_equal(plain.train_x, held.train_x)
    with pytest.raises(ValueError, match=r"holdout: expected an integer in \[1, 9\] \(training images to hold out\), got 10"):
        prepare_data(model, dataset, holdout=10)


def test_a_checkpoints_settings_without_holdout_still_load() -> None:
    old = TrainConfig().to_dict()
    del old["holdout"]
    assert TrainConfig.from_dict(old) == TrainConfig() and TrainConfig().holdout is None


def test_importing_the_sweep_does_not_import_dask() -> None:
    script = "import sys, lenet_fn, lenet_fn.sweep, lenet_fn.sweep_dask\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_the_pages_show_sweep_commands() -> None:
    assert {where.split(":")[0] for where, _ in DOCUMENTED_SWEEPS} == {page.name for page in DOCUMENTED} and len(DOCUMENTED_SWEEPS) >= 8


@pytest.mark.parametrize(("where", "argv"), DOCUMENTED_SWEEPS, ids=[where for where, _ in DOCUMENTED_SWEEPS])
def test_every_documented_sweep_command_is_a_sweep(where: str, argv: list[str], tmp_path: Path) -> None:
    """Each command plans its runs (as --dry-run; the runs themselves are measurements), its
    settings file being the page's TOML example."""
    if "--out" in argv:
        del argv[argv.index("--out") : argv.index("--out") + 2]
    if "--file" in argv:
        page = next(page for page in DOCUMENTED if page.name == where.split(":")[0])
        (tmp_path / "sweep.toml").write_text(re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)[0])
        argv[argv.index("--file") + 1] = str(tmp_path / "sweep.toml")
    status, out, err = _main([*argv, "--dry-run"], tmp_path)
    assert status == 0 and err == "" and out.count("  new  python -m lenet_fn.train ") == len(out.splitlines()) >= 2, f"{where}\n{err}"


def test_a_seed_range_past_the_limit_is_refused_at_once() -> None:
    with pytest.raises(UsageError, match=r"^--seeds: expected at most 1,000 seeds, got '0-99999999'$"):
        parse_seeds("0-99999999")
    assert len(parse_seeds("0-999")) == 1000
