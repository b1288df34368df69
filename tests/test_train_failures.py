"""Runs that cannot go on stop with a message saying why and keep the last good checkpoint:
a non-finite loss (here: NaN images injected into one training batch) and a θ collapse (here: a
frozen spatial transformer pinned at a 4× zoom-out, so 94 % of its sampling grid is outside).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from train_helpers import STN, write_folder

from lstndsl.train import checkpoint as ckpt
from lstndsl.train import loop
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import Batch, Dataset
from lstndsl.train.progress import Console


def tiny(out: Path, **changes: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "spec": str(STN),
        "backbone": "test_resnet",
        "dataset": f"folder:{write_folder(out.parent / 'data')}",
        "image_size": 32,
        "max_epochs": 2,
        "batch_size": 4,
        "pictures": 0,
        "out": str(out),
    }
    return TrainConfig(**{**base, **changes})


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Dataset.load
    loads: list[str] = []

    def poisoned(self: Dataset, indices: Any, number: int = 0) -> Batch:
        batch = original(self, indices, number)
        idx = np.asarray(indices)
        loads.extend(n for n in ("train", "val", "test") if np.isin(idx, self.split[n]).any())
        if loads.count("train") == 3 and loads[-1] == "train":  # the third batch (step 3)
            return dataclasses.replace(batch, images=torch.full_like(batch.images, float("nan")))
        return batch

    monkeypatch.setattr(Dataset, "load", poisoned)
    out = tmp_path / "run"
    result = loop.main(tiny(out, checkpoint_every=1), console=Console(echo=False))
    assert result.exit_code == 1
    summary = result.summary
    assert summary["failed"]
    assert summary["stop_reason"].startswith("non-finite loss (nan) at epoch 1, batch 3 (step 3)")
    assert ckpt.load(out / "last.pt")["progress"]["step"] == 2  # written before the bad step
    assert not (out / "best.pt").exists()
    assert summary["test_top1"] is None and "test" not in loads
    log = (out / "log.txt").read_text()
    assert "stopped: non-finite loss" in log and "the test split is left unread" in log


def test_a_collapsed_theta_stops_the_run_with_which_collapse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = loop.build_model

    def zoomed_out(*args: Any) -> nn.Module:
        model = build(*args)
        last = list(model.transformers["input"].head.children())[-1]
        with torch.no_grad():
            last.bias.copy_(torch.tensor([4.0, 0.0, 0.0, 0.0, 4.0, 0.0]))
        return model

    monkeypatch.setattr(loop, "build_model", zoomed_out)
    out = tmp_path / "run"
    result = loop.main(tiny(out, stn_lr_mult=0.0), console=Console(echo=False))
    assert result.exit_code == 1
    assert result.summary["stop_reason"] == (
        "θ collapsed: the transformer zooms out to nothing (94% of its sampling grid lies "
        "outside the image; mean scale 4, mean shift 0.0px) after epoch 1"
    )
    assert result.summary["epochs"] == 0
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
