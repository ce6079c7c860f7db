"""Training and evaluation speed of lenet_fn, against its loop references and (with --torch) PyTorch.

    python benchmarks/bench_train.py [--torch] [--batch-size 256] [--threads N]

Reports, in one run:
- images/s of the training step (forward, loss, backward, momentum step) of each model, float32;
- a per-layer breakdown of LeNet-5's step (forward and backward ms, one thread, so the layers do
  not overlap);
- images/s of evaluation (forward only, the 10,000 test images);
- images/s of the random affine distortions (``--distort``);
- the speed-up of the fast conv2d, pools and subsampling over their plain-loop references, per op
  and for a whole LeNet-5 step with the loop references swapped in (the seed's "ExeSpeedTest");
- with --torch (and PyTorch installed): the same LeNet-5 in PyTorch (same threads, batch, dtype)
  and the ratio of the two; evaluation against PyTorch's plain LeNet-5 on 1 and on 2 threads
  (called in turn, the fastest call of each); a
  script composing the public functions (``composed_step.py``, a fresh process, one thread)
  against PyTorch's same LeNet-5 on one thread; the step at the default run's batch of 32 on one
  thread against PyTorch's; the NumPy floor of the step and of evaluation (``numpy_floor.py``)
  against PyTorch's;
- the default run's epoch broken into its phases (``epoch_phases.py``), and the GFLOP/s of the
  step against what BLAS reaches on large matrices on the same threads.

This is a measurement, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from lenet_fn import ops, reference
from lenet_fn.augment import distort
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.bitmaps import rbf_centers
from lenet_fn.layers import RBF, Conv2D, Flatten, Linear, PartialConv2D, Squash, Subsampling
from lenet_fn.models import C3_TABLE, LENET5, MODELS
from lenet_fn.optim import momentum_init, momentum_step
from lenet_fn.parallel import Workers, default_threads
from lenet_fn.params import Conv2dParams, PartialConv2dParams, SubsampleParams
from lenet_fn.protocol import Model
from lenet_fn.network import sequential
from lenet_fn.runtime import reuse_freed_memory
from lenet_fn.train import DEFAULTS, forward_backward, predict_outputs

from epoch_phases import epoch_phases, sgemm_peak, step_flops
from numpy_floor import floors
from timing import best_of, fastest_alternating


def step_images_per_second(model: Model[Any], x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], workers: Workers, steps: int) -> float:
    params = model.init(np.random.default_rng(0))
    velocity = momentum_init(params)

    def step() -> None:
        nonlocal params, velocity
        _, grads, _ = forward_backward(model, params, x, labels, workers=workers)
        params, velocity = momentum_step(params, grads, velocity, lr=1e-4, momentum=0.9)

    return float(x.shape[0] / best_of(step, repeats=5, number=steps))


# --------------------------------------------------------------------------------------------
# LeNet-5 from layers: timed layer by layer, or computed by the loop references


def lenet5_layers(conv: type[Conv2D], partial_conv: type[PartialConv2D], subsampling: type[Subsampling]) -> list[Any]:
    """The paper's LeNet-5 as layers (the same numbers as ``models.LENET5``), with the given
    classes for its convolutions and subsamplings."""
    return [
        conv(1, 6, 5, scheme="lecun98", name="c1"), Squash(), subsampling(6, name="s2"), Squash(),
        partial_conv(C3_TABLE, 5, name="c3"), Squash(), subsampling(16, name="s4"), Squash(),
        conv(16, 120, 5, scheme="lecun98", name="c5"), Squash(), Flatten(), Linear(120, 84, scheme="lecun98", name="f6"), Squash(),
        RBF(rbf_centers(np.float64)),
    ]  # fmt: skip


def lenet5_of(layers: list[Any]) -> Model[Any]:
    return sequential(*layers, loss="map", prepare=LENET5.prepare, input_shape=(1, 32, 32))


@attrs.frozen
class LoopCache:
    x: np.ndarray[Any, Any]
    w: np.ndarray[Any, Any]


@attrs.frozen(repr=False)
class LoopConv2D(Conv2D):
    """``Conv2D`` computed by ``reference.conv2d_reference`` and its backward."""

    def forward(self, params: Any, x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Any]:
        return reference.conv2d_reference(x, params.w, params.b, stride=self.stride, padding=self.padding), LoopCache(x, params.w)

    def backward(self, d_out: np.ndarray[Any, Any], cache: Any, *, input_grad: bool = True) -> tuple[Any, Any]:
        d_x, d_w, d_b = reference.conv2d_backward_reference(d_out, cache.x, cache.w, stride=self.stride, padding=self.padding)
        return d_x, Conv2dParams(w=d_w, b=d_b)


@attrs.frozen(repr=False, eq=False)
class LoopPartialConv2D(PartialConv2D):
    """``PartialConv2D`` as the loop convolution of the dense kernel (zeros where the table has no connection)."""

    def forward(self, params: Any, x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Any]:
        dense = np.zeros(self.table.shape + params.w.shape[1:], dtype=params.w.dtype)
        dense[self.table] = params.w
        return reference.conv2d_reference(x, dense, params.b, stride=self.stride, padding=self.padding), LoopCache(x, dense)

    def backward(self, d_out: np.ndarray[Any, Any], cache: Any, *, input_grad: bool = True) -> tuple[Any, Any]:
        d_x, d_dense, d_b = reference.conv2d_backward_reference(d_out, cache.x, cache.w, stride=self.stride, padding=self.padding)
        return d_x, PartialConv2dParams(w=d_dense[self.table], b=d_b)


@attrs.frozen(repr=False)
class LoopSubsampling(Subsampling):
    """``Subsampling`` computed by ``reference.subsample_reference`` and its backward."""

    def forward(self, params: Any, x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Any]:
        return reference.subsample_reference(x, params.coeff, params.bias, size=self.size), LoopCache(x, params.coeff)

    def backward(self, d_out: np.ndarray[Any, Any], cache: Any, *, input_grad: bool = True) -> tuple[Any, Any]:
        d_x, d_coeff, d_bias = reference.subsample_backward_reference(d_out, cache.x, cache.w, size=self.size)
        return d_x, SubsampleParams(coeff=d_coeff, bias=d_bias)


LOOP_LENET5 = attrs.evolve(lenet5_of(lenet5_layers(LoopConv2D, LoopPartialConv2D, LoopSubsampling)), curvature=None, loss_curvature=None)
"""LeNet-5 on the loop references: the seed's speed, for the speed-up of the fast ops (no
curvature: the loop layers keep caches of their own)."""


@attrs.frozen(eq=False)
class Timed:
    """A layer whose forward and backward calls add their seconds to ``seconds[label]``."""

    layer: Any
    label: str
    seconds: dict[str, list[float]]

    @property
    def name(self) -> str:
        return self.label

    def __getattr__(self, attribute: str) -> Any:  # init, output_shape, curvature: the layer's own
        return getattr(self.layer, attribute)

    def forward(self, params: Any, x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Any]:
        started = time.perf_counter()
        result: tuple[np.ndarray[Any, Any], Any] = self.layer.forward(params, x)
        self.seconds.setdefault(self.label, [0.0, 0.0])[0] += time.perf_counter() - started
        return result

    def backward(self, d_out: np.ndarray[Any, Any], cache: Any, *, input_grad: bool = True) -> tuple[Any, Any]:
        started = time.perf_counter()
        result: tuple[Any, Any] = self.layer.backward(d_out, cache, input_grad=input_grad)
        self.seconds.setdefault(self.label, [0.0, 0.0])[1] += time.perf_counter() - started
        return result


def layer_breakdown(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], repeats: int = 5) -> list[tuple[str, float, float]]:
    """(layer, forward seconds, backward seconds) of one LeNet-5 step, each layer timed on its own."""
    seconds: dict[str, list[float]] = {}
    layers = lenet5_layers(Conv2D, PartialConv2D, Subsampling)
    timed = lenet5_of([Timed(layer, f"{index:>2} {layer.name or ''} {type(layer).__name__}", seconds) for index, layer in enumerate(layers)])
    params = timed.init(np.random.default_rng(0))
    forward_backward(timed, params, x, labels)  # warm up
    seconds.clear()
    for _ in range(repeats):
        forward_backward(timed, params, x, labels)
    return [(label, forward / repeats, backward / repeats) for label, (forward, backward) in seconds.items()]


def op_speedups(batch: int, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """(op, fast ms, loop ms) at LeNet-5's sizes, forward + backward."""
    f32 = np.float32
    rows = []
    x1 = rng.standard_normal((batch, 1, 32, 32)).astype(f32)
    w1, b1 = rng.standard_normal((6, 1, 5, 5)).astype(f32), np.zeros(6, f32)
    x3 = rng.standard_normal((batch, 6, 14, 14)).astype(f32)
    w3, b3 = rng.standard_normal((16, 6, 5, 5)).astype(f32), np.zeros(16, f32)
    for label, x, w, b in (("conv2d C1 1->6 32x32", x1, w1, b1), ("conv2d C3 6->16 14x14", x3, w3, b3)):
        out, cache = ops.conv2d_forward(x, w, b)
        d = rng.standard_normal(out.shape).astype(f32)
        fast = best_of(lambda: ops.conv2d_backward(d, ops.conv2d_forward(x, w, b)[1]), repeats=3, number=3)
        loop = best_of(lambda: (reference.conv2d_reference(x, w, b), reference.conv2d_backward_reference(d, x, w)), repeats=1, number=1)
        rows.append((label, fast, loop))
    x2 = rng.standard_normal((batch, 6, 28, 28)).astype(f32)
    d2 = rng.standard_normal((batch, 6, 14, 14)).astype(f32)
    coeff, bias = np.ones(6, f32), np.zeros(6, f32)
    pools: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("avg_pool2d 6x28x28", lambda: ops.avg_pool2d_backward(d2, ops.avg_pool2d_forward(x2)[1]),
         lambda: (reference.avg_pool2d_reference(x2), reference.avg_pool2d_backward_reference(d2, x2))),
        ("max_pool2d 6x28x28", lambda: ops.max_pool2d_backward(d2, ops.max_pool2d_forward(x2)[1]),
         lambda: (reference.max_pool2d_reference(x2), reference.max_pool2d_backward_reference(d2, x2))),
        ("subsample S2 6x28x28", lambda: ops.subsample_backward(d2, ops.subsample_forward(x2, coeff, bias)[1]),
         lambda: (reference.subsample_reference(x2, coeff, bias), reference.subsample_backward_reference(d2, x2, coeff))),
    ]  # fmt: skip
    for label, fast_run, loop_run in pools:
        rows.append((label, best_of(fast_run, repeats=3, number=3), best_of(loop_run, repeats=1, number=1)))
    return rows


# --------------------------------------------------------------------------------------------
# PyTorch


def torch_lenet5_images_per_second(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], threads: int, steps: int) -> float:
    """The same LeNet-5 (squash, trainable subsampling, C3 table, RBF + MAP loss, momentum SGD) in PyTorch."""
    import torch
    import torch.nn.functional as functional

    from lenet_fn.bitmaps import rbf_centers

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def uniform(*shape: int, fan_in: int) -> Any:
        return ((torch.rand(*shape) * 2 - 1) * (2.4 / fan_in)).requires_grad_()

    mask = torch.from_numpy(C3_TABLE.astype(np.float32))[:, :, None, None]
    params = {
        "c1w": uniform(6, 1, 5, 5, fan_in=25), "c1b": uniform(6, fan_in=25),
        "s2c": uniform(6, fan_in=4), "s2b": uniform(6, fan_in=4),
        "c3w": uniform(16, 6, 5, 5, fan_in=100), "c3b": uniform(16, fan_in=100),
        "s4c": uniform(16, fan_in=4), "s4b": uniform(16, fan_in=4),
        "c5w": uniform(120, 16, 5, 5, fan_in=400), "c5b": uniform(120, fan_in=400),
        "f6w": uniform(84, 120, fan_in=120), "f6b": uniform(84, fan_in=120),
    }  # fmt: skip
    centers = torch.from_numpy(np.array(rbf_centers()))
    optimiser = torch.optim.SGD(params.values(), lr=1e-4, momentum=0.9)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))

    def squash(t: Any) -> Any:
        return 1.7159 * torch.tanh(t * (2.0 / 3.0))

    def subsample(t: Any, coeff: Any, bias: Any) -> Any:
        return functional.avg_pool2d(t, 2) * 4 * coeff[:, None, None] + bias[:, None, None]

    def step() -> None:
        a = squash(functional.conv2d(inputs, params["c1w"], params["c1b"]))
        a = squash(subsample(a, params["s2c"], params["s2b"]))
        a = squash(functional.conv2d(a, params["c3w"] * mask, params["c3b"]))
        a = squash(subsample(a, params["s4c"], params["s4b"]))
        a = squash(functional.conv2d(a, params["c5w"], params["c5b"])).flatten(1)
        a = squash(functional.linear(a, params["f6w"], params["f6b"]))
        distances = ((a[:, None, :] - centers[None]) ** 2).sum(-1)
        rubbish = torch.full((distances.shape[0], 1), -0.1)
        loss = (distances.gather(1, targets[:, None])[:, 0] + torch.logsumexp(torch.cat([rubbish, -distances], 1), 1)).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return float(x.shape[0] / best_of(step, repeats=5, number=steps))


def torch_plain_lenet5(
    x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], test_x: np.ndarray[Any, Any], threads: int
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The common PyTorch LeNet-5 (tanh, average pooling, full C3, 84->10 linear, cross-entropy, SGD):
    a training step on ``x``, and an evaluation of ``test_x`` in chunks of ``len(x)``."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )  # fmt: skip
    optimiser = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))

    def step() -> None:
        loss: Any = nn.functional.cross_entropy(network(inputs), targets)  # Any: typed with torch, not without
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    test_inputs = torch.from_numpy(test_x)

    def evaluate() -> None:
        with torch.inference_mode():
            for start in range(0, test_x.shape[0], x.shape[0]):
                network(test_inputs[start : start + x.shape[0]])

    return step, evaluate


def torch_plain_lenet5_images_per_second(x: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], threads: int, steps: int) -> float:
    """Training images/s of ``torch_plain_lenet5``."""
    step, _ = torch_plain_lenet5(x, labels, x, threads)
    return float(x.shape[0] / best_of(step, repeats=5, number=steps))


# --------------------------------------------------------------------------------------------


def print_phases(dataset: Any, batch: int, step_speed: float, threads: int) -> None:
    """The default run's epoch by phase, and the step's GFLOP/s against BLAS on large matrices."""
    phases, whole = epoch_phases(dataset)
    print(f"\nthe default run's epoch (batch 32, distortions, {default_threads()} thread(s)), s per 60,000 images, each phase alone")
    for phase, seconds in phases.items():
        print(f"  {phase:<18} {seconds:6.2f}")
    print(f"  {'sum':<18} {sum(phases.values()):6.2f}")
    for way, seconds in whole.items():
        print(f"  the epoch as fit runs it, {way}: {seconds:.2f}")
    achieved = step_flops(batch) * step_speed / batch / 1e9
    peak = sgemm_peak(threads)
    print(f"\nLeNet-5 step at batch {batch}: {achieved:.1f} GFLOP/s of the {peak:.0f} that float32 BLAS reaches on "
          f"2048x2048 matrices on {threads} thread(s) ({100 * achieved / peak:.0f}%)")


def print_floor(batch: int, torch_one: float, torch_eval_one: float) -> None:
    """The NumPy floor of the step and of evaluation on one thread (``numpy_floor.py``) against
    the issue's targets: twice PyTorch's step, 1.5 times its evaluation."""
    step, evaluation = (batch / sum(pieces.values()) for pieces in floors(batch))
    print(f"  NumPy floor on 1 thread (numpy_floor.py): step {step:.0f} images/s, {step / torch_one:.2f}x PyTorch's same "
          f"LeNet-5; evaluation {evaluation:.0f} images/s, {evaluation / torch_eval_one:.2f}x its plain LeNet-5")


def print_torch(x5: Any, labels: Any, test_x: Any, args: argparse.Namespace, ours: dict[str, float], ours_eval: dict[str, float]) -> None:
    """PyTorch side by side: the training step (also at the default run's batch on one thread),
    evaluation on 1 and 2 threads, a composed script, and the NumPy floor."""
    try:
        torch_speed = torch_lenet5_images_per_second(x5, labels, args.threads, args.steps)
        plain_speed = torch_plain_lenet5_images_per_second(x5, labels, args.threads, args.steps)
    except ImportError:
        print("\n--torch: PyTorch is not installed (python -m pip install torch)")
        return
    import torch

    print(f"\nPyTorch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, float32")
    print(f"  the same LeNet-5 (squash, subsampling, C3 table, RBF, MAP): {torch_speed:7.0f} images/s"
          f"   lenet_fn / PyTorch = {ours['lenet5'] / torch_speed:.2f}")
    print(f"  plain LeNet-5 (tanh, average pooling, cross-entropy):      {plain_speed:7.0f} images/s"
          f"   lenet_fn lenet5 / this = {ours['lenet5'] / plain_speed:.2f}")
    small = DEFAULTS["lenet5"].batch_size
    torch_small = torch_lenet5_images_per_second(x5[:small], labels[:small], 1, 4 * args.steps)
    print(f"  the same LeNet-5 at batch {small} on 1 thread:                {torch_small:7.0f} images/s"
          f"   lenet_fn / PyTorch = {ours['lenet5 at the default batch'] / torch_small:.2f}")
    params = LENET5.init(np.random.default_rng(0))
    theirs_by_threads = {}
    for threads in (1, 2):
        _, evaluate = torch_plain_lenet5(x5, labels, test_x, threads)
        with Workers(threads) as workers:
            seconds = fastest_alternating(lambda: predict_outputs(LENET5, params, test_x, workers=workers), evaluate)
        mine, theirs = (test_x.shape[0] / value for value in seconds)
        theirs_by_threads[threads] = theirs
        print(f"  evaluation, {threads} thread(s): lenet_fn {mine:7.0f}, PyTorch plain LeNet-5 {theirs:7.0f} images/s   ratio {mine / theirs:.2f}"
              "   (the fastest of 5 calls each, in turn)")
    script = str(Path(__file__).resolve().parent / "composed_step.py")
    flags = ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    composed = [float(subprocess.run([sys.executable, script, *flags, *extra], check=True, capture_output=True, text=True).stdout)
                for extra in ([], ["--reuse-freed-memory"])]  # fmt: skip
    torch_one = torch_lenet5_images_per_second(x5, labels, 1, args.steps)
    print(f"  a script composing the public functions, 1 thread: {composed[0]:.0f} images/s ({composed[1]:.0f} after "
          f"runtime.reuse_freed_memory()), PyTorch's same LeNet-5 on 1 thread {torch_one:.0f}   ratios "
          f"{composed[0] / torch_one:.2f}, {composed[1] / torch_one:.2f}")
    print_floor(args.batch_size, torch_one, theirs_by_threads[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--steps", type=int, default=10, help="steps per timing repeat")
    parser.add_argument("--torch", action="store_true", help="also time the same LeNet-5 in PyTorch")
    args = parser.parse_args()
    reuse_freed_memory()
    dataset = load_mnist(repository_dataset_dir())
    rng = np.random.default_rng(0)
    rows = rng.choice(60000, size=args.batch_size, replace=False)
    labels = dataset.train_labels[rows].astype(np.intp)
    print(f"batch {args.batch_size}, float32, {args.threads} thread(s), numpy {np.__version__}")

    print("\ntraining step (forward, loss, backward, momentum step)")
    ours: dict[str, float] = {}
    ours_eval: dict[str, float] = {}
    test_inputs: dict[str, np.ndarray[Any, Any]] = {}
    with Workers(args.threads) as workers:
        for name, model in MODELS.items():
            x = model.prepare(dataset.train_images[rows], np.float32)
            ours[name] = step_images_per_second(model, x, labels, workers, args.steps)
            print(f"  {name:<12} {ours[name]:8.0f} images/s   ({60000 / ours[name]:5.1f} s per epoch of 60,000)")
        small = DEFAULTS["lenet5"].batch_size
        x_small = LENET5.prepare(dataset.train_images[rows[:small]], np.float32)
        small_speed = ours["lenet5 at the default batch"] = step_images_per_second(LENET5, x_small, labels[:small], Workers(1), 4 * args.steps)
        print(f"  lenet5 at batch {small} (the default run's): {small_speed:.0f} images/s on 1 thread "
              f"({60000 / small_speed:.1f} s per epoch)")

        print("\nevaluation (forward only, 10,000 test images)")
        for name, model in MODELS.items():
            test_x = test_inputs[name] = model.prepare(dataset.test_images, np.float32)
            seconds = best_of(lambda: predict_outputs(model, model.init(rng), test_x, workers=workers), repeats=3, number=1)
            ours_eval[name] = 10000 / seconds
            print(f"  {name:<12} {ours_eval[name]:8.0f} images/s")

    x5 = LENET5.prepare(dataset.train_images[rows], np.float32)
    warp_seconds = best_of(lambda: distort(x5, np.random.default_rng(0), fill=-0.1), repeats=5, number=args.steps)
    print(f"\naffine distortions (--distort), one thread: {args.batch_size / warp_seconds:8.0f} images/s")

    print(f"\nLeNet-5 per layer, one thread, batch {args.batch_size} (ms)")
    print(f"  {'layer':<32} {'forward':>8} {'backward':>9}")
    total_forward = total_backward = 0.0
    for label, forward_seconds, backward_seconds in layer_breakdown(x5, labels):
        print(f"  {label:<32} {1e3 * forward_seconds:8.2f} {1e3 * backward_seconds:9.2f}")
        total_forward, total_backward = total_forward + forward_seconds, total_backward + backward_seconds
    print(f"  {'sum of the layers':<32} {1e3 * total_forward:8.2f} {1e3 * total_backward:9.2f}")

    print(f"\nfast ops against the loop references, forward + backward, batch {args.batch_size} (ms)")
    for label, fast, loop in op_speedups(args.batch_size, rng):
        print(f"  {label:<24} fast {1e3 * fast:8.2f}   loops {1e3 * loop:9.1f}   speed-up {loop / fast:7.0f}x")
    loops = step_images_per_second(LOOP_LENET5, x5, labels, Workers(1), 1)
    print(f"  whole LeNet-5 step: {ours['lenet5']:.0f} images/s fast, {loops:.0f} images/s with the loop references "
          f"({ours['lenet5'] / loops:.0f}x; {60000 / loops:.0f} s per epoch)")

    print_phases(dataset, args.batch_size, ours["lenet5"], args.threads)
    if args.torch:
        print_torch(x5, labels, test_inputs["lenet5"], args, ours, ours_eval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
