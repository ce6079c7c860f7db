"""A user's own training step composed of the public functions, on one thread: images/s.

    python benchmarks/composed_step.py [--batch-size 256] [--steps 10] [--reuse-freed-memory]

What a script written against the library (not its commands) gets: ``lenet5_forward``,
``map_loss_forward``/``map_loss_backward``, ``lenet5_backward`` and ``momentum_step`` in a loop,
BLAS on one thread; ``--reuse-freed-memory`` first makes the one call the commands make
(``lenet_fn.runtime.reuse_freed_memory``). ``bench_train.py`` runs it in a fresh process, so that
allocator settings of its own do not leak in.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.losses import map_loss_backward, map_loss_forward
from lenet_fn.models import LENET5, lenet5_backward, lenet5_forward
from lenet_fn.optim import momentum_init, momentum_step
from lenet_fn.runtime import reuse_freed_memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reuse-freed-memory", action="store_true")
    args = parser.parse_args()
    if args.reuse_freed_memory:
        reuse_freed_memory()
    dataset = load_mnist(repository_dataset_dir())
    x = LENET5.prepare(dataset.train_images[: args.batch_size], np.float32)
    labels = dataset.train_labels[: args.batch_size].astype(np.intp)
    params = LENET5.init(np.random.default_rng(0))
    velocity = momentum_init(params)
    best = float("inf")
    with threadpool_limits(1, user_api="blas"):
        for repeat in range(6):
            started = time.perf_counter()
            for _ in range(args.steps):
                distances, cache = lenet5_forward(params, x)
                _, loss_cache = map_loss_forward(distances, labels)
                grads = lenet5_backward(map_loss_backward(loss_cache), cache)
                params, velocity = momentum_step(params, grads, velocity, lr=1e-4, momentum=0.9)
            if repeat:  # the first repeat warms up
                best = min(best, (time.perf_counter() - started) / args.steps)
    print(f"{args.batch_size / best:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
