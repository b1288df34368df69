"""summary.json's `images_per_s` counts training time only (issue 11): not the validation, the
pictures, the checkpoints (at an epoch's end or mid-epoch) or a compiled session's first step.

How, without timing anything: `time.perf_counter` is replaced by a clock that moves only when
the test says so. Each training step moves it by one second; evaluation, pictures and
checkpoints by 1,000 s each. Counted right, the rate is exactly the training images over the
steps taken; any of the slow parts counted would cut it by orders of magnitude. Tiny run:
timm's `test_resnet` behind the L-STN spec, 32×32 digits, 3 batches of 8 per epoch, 2 epochs.
What it is not: a speed measurement (that is bench/train_speed.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from train_helpers import LSTN

from lstndsl.train import loop
from lstndsl.train.config import TrainConfig
from lstndsl.train.progress import Console

STEP_SECONDS = 1.0
SLOW_SECONDS = 1000.0


def test_images_per_s_counts_training_time_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    def costs(seconds: float, real: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            clock[0] += seconds
            return real(*args, **kwargs)

        return timed

    monkeypatch.setattr(loop, "step", costs(STEP_SECONDS, loop.step))
    for slow in ("evaluate", "draw_transforms", "save_last", "save_best"):
        monkeypatch.setattr(loop, slow, costs(SLOW_SECONDS, getattr(loop, slow)))
    config = TrainConfig(
        spec=str(LSTN),
        out=str(tmp_path / "run"),
        backbone="test_resnet",
        image_size=32,
        batch_size=8,
        limit_batches=3,
        max_epochs=2,
        checkpoint_every=2,  # one mid-epoch checkpoint per epoch, inside the timed loop
        pictures=2,
    )
    summary = loop.main(config, console=Console(echo=False)).summary
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    images = sum(r["train_images"] for r in records)
    assert summary["steps"] == 6 and images == 48
    assert summary["images_per_s"] == pytest.approx(images / (summary["steps"] * STEP_SECONDS))
    # the wall clock saw the slow parts (so the test would notice them counted)
    assert summary["wall_time"] > 4 * SLOW_SECONDS
