"""A run's settings: ``TrainConfig`` (everything that decides what a run computes) and the defaults.

The defaults depend on the model and the optimiser (``defaults_for``); ``python -m lenet_fn.train``
fills every flag it was not given from them.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from lenet_fn.arrays import integer_at_least, integer_in_range, number_in_range, one_of, optional_integer_at_least, positive_number
from lenet_fn.augment import MAX_SHEAR, MAX_TRANSLATE, DistortionRanges
from lenet_fn.data import TRAIN_IMAGES
from lenet_fn.models import MODELS
from lenet_fn.optim import SCHEDULES, SDLM_MU
from lenet_fn.protocol import is_import_path

BUILTIN_MODELS = tuple(MODELS)
"""The names ``--model`` takes besides an import path."""
MAX_REPEAT = 1000
"""The most times an image may appear per epoch: the epoch's order of 60,000 x 1000 indices
takes 480 MB (the paper's enlarged set is ``repeat=10``)."""
WARMUP_FRACTION = 0.1
"""A run given no ``--warmup`` warms up over at most this fraction of its steps."""
MAX_HOLDOUT = TRAIN_IMAGES.shape[0] - 1
"""The most training images a run may hold out (one is left to train on)."""


@attrs.frozen
class ModelDefaults:
    """The default optimiser settings of one model (what ``python -m lenet_fn.train`` uses)."""

    lr: float
    batch_size: int
    schedule: str
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup: int = 0
    distort: bool = False
    sdlm_every: int = 0


OPTIMIZERS = ("momentum", "sdlm")

# SDLM as in the paper: one step of eta / (mu + h_kk) per batch, eta 5e-4, no momentum. Batches of
# 16, the curvature re-estimated every 50 steps (without the re-estimates whole feature maps died in
# the first epoch), the cosine schedule: chosen on held-out images, where momentum 0.9 with
# eta 5e-5 came second (the docs' results page). Chosen on LeNet-5; the other models share them.
_SDLM_DEFAULTS = ModelDefaults(lr=5e-4, batch_size=16, schedule="cosine", momentum=0.0, warmup=500, sdlm_every=50)

CUSTOM_DEFAULTS = ModelDefaults(lr=0.01, batch_size=64, schedule="cosine", weight_decay=5e-4)
"""Momentum SGD's settings for a model of your own (found by import path): the ReLU models' kind
of run at half the smaller of their rates."""

DEFAULTS: dict[str, ModelDefaults] = {
    "lenet5": ModelDefaults(lr=0.003, batch_size=32, schedule="paper", warmup=500, distort=True),
    "lenet5+sdlm": _SDLM_DEFAULTS,
    "lenet5-relu+sdlm": _SDLM_DEFAULTS,
    "mlp+sdlm": _SDLM_DEFAULTS,
    "lenet5-relu": ModelDefaults(lr=0.02, batch_size=64, schedule="cosine", weight_decay=5e-4),
    "mlp": ModelDefaults(lr=0.05, batch_size=64, schedule="cosine", weight_decay=5e-4),
}


def model_reference(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    """attrs validator: a built-in model's name or an import path ``module:NAME`` (not imported here)."""
    if not isinstance(value, str) or not (value in BUILTIN_MODELS or is_import_path(value)):
        raise ValueError(f"{attribute.name}: expected one of {', '.join(BUILTIN_MODELS)} or an import path module:NAME, got {value!r}")


@attrs.frozen
class TrainConfig:
    """Everything that decides what a run computes (stored in its checkpoints; a resumed run keeps it).

    Attributes:
        model: ``lenet5``, ``lenet5-relu``, ``mlp``, or the import path of a model of your own
            (``my_package.my_module:MY_NET``).
        epochs: passes over the training set.
        repeat: times every training image appears in one epoch (in one shuffled order; with
            ``distort`` each appearance is warped afresh). The paper's distortion runs passed over
            60,000 originals + 540,000 distortions per epoch: ``repeat=10``.
        batch_size: images per step.
        lr: the base learning rate.
        schedule: its per-epoch multipliers, a key of ``SCHEDULES``.
        warmup: steps over which the rate rises linearly from ``lr / warmup`` to its scheduled value.
        optimizer: ``momentum`` (one rate for every parameter) or ``sdlm`` (per-parameter rates
            ``lr / (sdlm_mu + h_kk)`` from the Gauss-Newton curvature ``h_kk``, estimated on
            ``sdlm_samples`` training images at the start of every epoch and every ``sdlm_every``
            steps within it).
        sdlm_mu: SDLM's damping.
        sdlm_samples: images used to estimate the curvature.
        sdlm_every: with SDLM, steps between re-estimates of the curvature within an epoch, each on
            the next ``sdlm_samples`` images of the epoch's order (0: only at the epoch's start,
            as in the paper).
        distort: warp every training image by a random affine map (``lenet_fn.augment``), drawn
            from a generator seeded by (seed, epoch, batch).
        translate, scale, squeeze, shear: the ranges of the warps (``DistortionRanges``).
        momentum: heavy-ball momentum.
        weight_decay: L2 coefficient.
        seed: seeds the initial weights and the order of every epoch.
        limit: train on the first ``limit`` training images only (None: all 60,000, or all those
            before the held-out ones).
        holdout: measure on the last ``holdout`` training images instead of the test set, and
            train on the ones before them, so that settings can be chosen without the test set
            (10,000: train on 50,000); None: train on the training set, measure on the test set.
        threads: worker threads; each batch is split into this many parts (this changes the
            rounding of the sums, so it is part of what a run computes).
        dtype: ``float32`` or ``float64``.
    """

    model: str = attrs.field(default="lenet5", validator=model_reference)
    epochs: int = attrs.field(default=20, validator=integer_at_least("epochs", 1))
    repeat: int = attrs.field(default=1, validator=integer_in_range("repeat", 1, MAX_REPEAT))
    batch_size: int = attrs.field(default=DEFAULTS["lenet5"].batch_size, validator=integer_at_least("batch_size", 1))
    lr: float = attrs.field(default=DEFAULTS["lenet5"].lr, validator=positive_number("lr"))
    schedule: str = attrs.field(default=DEFAULTS["lenet5"].schedule, validator=one_of("schedule", list(SCHEDULES)))
    momentum: float = attrs.field(default=DEFAULTS["lenet5"].momentum, validator=number_in_range("momentum", 0.0, 1.0))
    weight_decay: float = attrs.field(
        default=DEFAULTS["lenet5"].weight_decay, validator=number_in_range("weight_decay", 0.0, math.inf)
    )
    warmup: int = attrs.field(default=DEFAULTS["lenet5"].warmup, validator=integer_at_least("warmup", 0))
    optimizer: str = attrs.field(default="momentum", validator=one_of("optimizer", OPTIMIZERS))
    sdlm_mu: float = attrs.field(default=SDLM_MU, validator=positive_number("sdlm_mu"))
    sdlm_samples: int = attrs.field(default=500, validator=integer_at_least("sdlm_samples", 1))
    sdlm_every: int = attrs.field(default=0, validator=integer_at_least("sdlm_every", 0))
    distort: bool = attrs.field(default=DEFAULTS["lenet5"].distort, validator=attrs.validators.instance_of(bool))
    translate: float = attrs.field(default=DistortionRanges().translate, validator=number_in_range("translate", 0.0, MAX_TRANSLATE))
    scale: float = attrs.field(default=DistortionRanges().scale, validator=number_in_range("scale", 0.0, 1.0))
    squeeze: float = attrs.field(default=DistortionRanges().squeeze, validator=number_in_range("squeeze", 0.0, 1.0))
    shear: float = attrs.field(default=DistortionRanges().shear, validator=number_in_range("shear", 0.0, MAX_SHEAR))
    seed: int = attrs.field(default=0, validator=integer_at_least("seed", 0))
    limit: int | None = attrs.field(default=None, validator=optional_integer_at_least("limit", 1))
    holdout: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer_in_range("holdout", 1, MAX_HOLDOUT)))
    threads: int = attrs.field(default=1, validator=integer_at_least("threads", 1))
    dtype: str = attrs.field(default="float32", validator=one_of("dtype", ["float32", "float64"]))

    @property
    def distortion_ranges(self) -> DistortionRanges:
        """The ranges of the warps, as ``augment.distort`` takes them."""
        return DistortionRanges(translate=self.translate, scale=self.scale, squeeze=self.squeeze, shear=self.shear)

    @property
    def evaluated_on(self) -> str:
        """What the run's test error measures: ``test`` images, or ``held-out`` ones (with ``holdout``)."""
        return "test" if self.holdout is None else "held-out"

    def lr_at(self, epoch: int, step: int | None = None) -> float:
        """The learning rate of epoch ``epoch`` (0-based) at global step ``step`` (0-based).

        ``step=None`` gives the epoch's scheduled rate without the warm-up factor.
        """
        rate = self.lr * SCHEDULES[self.schedule](epoch, self.epochs)
        if step is not None and step < self.warmup:
            rate *= (step + 1) / self.warmup
        return rate

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def defaults_for(model: str, optimizer: str) -> ModelDefaults:
    """The default settings of ``model`` (a built-in name or an import path) under ``optimizer``."""
    if optimizer == "sdlm":
        return DEFAULTS.get(f"{model}+sdlm", _SDLM_DEFAULTS)
    return DEFAULTS.get(model, CUSTOM_DEFAULTS)
