"""Peak memory and time of lenet_fn's readers on hostile files, and on the real dataset and weights.

    python benchmarks/hostile_files.py [--package-root DIR] [--size-gib 2]

Builds, in a temporary directory deleted afterwards: a gzip IDX file whose header announces the
training images (60000x28x28) and whose zeros inflate to 2 GiB (about 2 MB on disk); a raw IDX
file made 2 GiB long by a hole; the shipped checkpoint with an extra 2 GiB member of deflated
zeros; the shipped checkpoint with metadata nested 100,000 deep. Each read runs in a fresh
interpreter, which reports the read's time and its memory in MiB: "resident" once lenet_fn is
imported, "peak" the kernel's high-water mark (VmHWM, reset at that moment), "growth" the
difference; the first row reads nothing. ``--package-root`` measures another copy
of the package (e.g. an older commit unpacked with ``git archive``).

This is a measurement, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
MNIST = REPOSITORY / "data" / "mnist"
sys.path.insert(0, str(REPOSITORY))

from tests.test_hostile_files import (  # noqa: E402  (the builders live with the tests that use them)
    GIB, WEIGHTS, checkpoint_members, deep_metadata, deflated_member, gzip_bomb, measure, npy_header, sparse_idx, write_zip,
)  # fmt: skip

READ = """
import sys, time
from lenet_fn import checkpoint, data
start = time.perf_counter()
try:
    {call}
    outcome = "read"
except BaseException as error:
    outcome = type(error).__name__ + ": " + " ".join(str(error).split())[:110]
print(f"{{time.perf_counter() - start:7.3f}} s  {{outcome}}")
"""


def build_cases(folder: Path, size: int) -> list[tuple[str, str]]:
    """(label, call) pairs; the calls read ``sys.argv[1]`` where they need a file."""
    bomb = gzip_bomb(folder / "bomb-idx3-ubyte.gz", (60000, 28, 28), size)
    sparse = sparse_idx(folder / "sparse-idx3-ubyte", (60000, 28, 28), size)
    junk = deflated_member("junk.npy", npy_header("|u1", (size - 128,)), size)
    extra = write_zip(folder / "extra.npz", [*checkpoint_members(), junk])
    deep = write_zip(folder / "deep.npz", checkpoint_members(metadata=deep_metadata(100_000)))
    return [
        ("import lenet_fn (baseline)", "pass"),
        (f"gzip bomb {bomb.stat().st_size / 1e6:.1f} MB, expected train images", f"data.read_idx({str(bomb)!r}, expected=data.TRAIN_IMAGES)"),
        ("gzip bomb, no expected file", f"data.read_idx({str(bomb)!r})"),
        ("sparse raw 2 GiB, expected train images", f"data.read_idx({str(sparse)!r}, expected=data.TRAIN_IMAGES)"),
        ("sparse raw 2 GiB, no expected file", f"data.read_idx({str(sparse)!r})"),
        (f"npz + 2 GiB deflated member ({extra.stat().st_size / 1e6:.1f} MB)", f"checkpoint.load_checkpoint({str(extra)!r})"),
        ("npz + 2 GiB member, load_model", f"checkpoint.load_model(__import__('pathlib').Path({str(extra)!r}))"),
        ("npz, metadata 100,000 deep", f"checkpoint.load_checkpoint({str(deep)!r})"),
        ("load_mnist(data/mnist)", f"data.load_mnist({str(MNIST)!r})"),
        ("load_checkpoint(weights/lenet5.npz)", f"checkpoint.load_checkpoint({str(WEIGHTS)!r})"),
        ("load_model(weights/lenet5.npz)", f"checkpoint.load_model(__import__('pathlib').Path({str(WEIGHTS)!r}))"),
    ]


def mnist_seconds(package_root: Path, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of load_mnist on data/mnist, in one fresh interpreter."""
    code = (
        "import time\nfrom lenet_fn import data\n"
        f"for _ in range({repeats}):\n"
        f"    start = time.perf_counter(); data.load_mnist({str(MNIST)!r}); print(time.perf_counter() - start)"
    )
    return [float(line) for line in measure(code, package_root=package_root).printed.splitlines()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-root", type=Path, default=REPOSITORY, help="the directory holding the lenet_fn to measure")
    parser.add_argument("--size-gib", type=float, default=2.0, help="how large the bombs inflate")
    parser.add_argument("--repeats", type=int, default=5, help="load_mnist timings")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        cases = build_cases(Path(folder), int(args.size_gib * GIB))
        print(f"{'case':<52} {'resident':>8} {'peak':>8} {'growth':>8}  time, outcome")
        for label, call in cases:
            run = measure(READ.format(call=call), package_root=args.package_root)
            print(f"{label:<52} {run.resident:8.1f} {run.peak:8.1f} {run.growth:8.1f}  {run.printed}", flush=True)
    seconds = mnist_seconds(args.package_root, args.repeats)
    print(f"load_mnist: median {statistics.median(seconds):.3f} s, min {min(seconds):.3f} s over {len(seconds)} calls")


if __name__ == "__main__":
    main()
