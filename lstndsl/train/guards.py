"""A run that cannot learn stops before it starts: exit 2 with the reason, nothing trained.

What it is: `check_can_learn` (batch norm with fewer than two examples per batch, an empty or
single-class training split, a budget of zero optimizer steps), asked of the built model and
the opened dataset before the first step. What it is not: the checks of values on their own
(config.py) or of files (resume.py, datasets.py).
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from lstndsl.errors import UsageError
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import Dataset

#: the loop skips batches smaller than this (batch norm cannot train on one example)
MIN_BATCH = 2


def first_batchnorm(model: nn.Module) -> str | None:
    """The name of the model's first batch-norm layer (None: it has none)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return name or type(module).__name__
    return None


def check_can_learn(
    config: TrainConfig, dataset: Dataset, model: nn.Module, world_size: int = 1
) -> None:
    """Raise UsageError when training could not take a single useful step."""
    bn = first_batchnorm(model)
    if bn is not None and config.batch_size < MIN_BATCH:
        raise UsageError(
            f"--batch-size {config.batch_size}: the model has batch norm ({bn}), which cannot "
            f"train on fewer than {MIN_BATCH} examples per batch; use --batch-size 2 or more"
        )
    train = dataset.split["train"]
    if len(train) == 0:
        raise UsageError(f"the training split of {dataset.name} is empty: nothing to learn from")
    labels = dataset.source.labels.numpy()[train]
    classes = np.unique(labels)
    if len(classes) < 2:
        name = dataset.class_names[int(classes[0])]
        raise UsageError(
            f"the training split of {dataset.name} holds one class only ('{name}', "
            f"{len(train)} examples): a classifier has nothing to tell apart"
        )
    per_rank = math.ceil(len(train) / world_size)
    if config.batch_size < MIN_BATCH or per_rank < MIN_BATCH:
        raise UsageError(
            f"a budget of zero steps: batches of fewer than {MIN_BATCH} examples are skipped, and "
            f"--batch-size {config.batch_size} with {per_rank} training examples per process "
            "leaves none"
        )
