"""Runs that cannot go on stop with a message saying why and keep the last good checkpoint:
a non-finite loss (here: NaN images injected into one training batch) and a θ collapse (here: a
frozen spatial transformer pinned at a 4× zoom-out, so 94 % of its sampling grid is outside).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import subprocess
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
    assert summary["stop_reason"] == (
        f"non-finite loss (nan) at epoch 1, batch 3 (step 3); the last good checkpoint "
        f"({out / 'last.pt'}) is kept"
    )
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


def _poison_train_batch(monkeypatch: pytest.MonkeyPatch, which: int) -> None:
    """NaN images in the `which`-th training batch loaded."""
    original = Dataset.load
    count = [0]

    def poisoned(self: Dataset, indices: Any, number: int = 0) -> Batch:
        batch = original(self, indices, number)
        if np.isin(np.asarray(indices), self.split["train"]).any():
            count[0] += 1
            if count[0] == which:
                return dataclasses.replace(batch, images=torch.full_like(batch.images, math.nan))
        return batch

    monkeypatch.setattr(Dataset, "load", poisoned)


def test_a_run_that_failed_before_its_first_checkpoint_can_be_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    config = tiny(out, max_epochs=1, limit_batches=2)
    with monkeypatch.context() as patch:
        _poison_train_batch(patch, 1)
        failed = loop.main(config, console=Console(echo=False))
    assert failed.exit_code == 1
    assert failed.summary["stop_reason"] == (
        "non-finite loss (nan) at epoch 1, batch 1 (step 1); no checkpoint had been written "
        "yet, so nothing is kept: run the same command again to start over"
    )
    assert not (out / "last.pt").exists()
    # the same command again: no "already holds a run", no "add --resume"
    again = loop.main(config, console=Console(echo=False))
    assert again.exit_code == 0 and again.summary["selected_epoch"] == 1
    log = (out / "log.txt").read_text()
    assert f"{out} holds a run that never reached a checkpoint: starting it again" in log


def test_a_full_disk_at_a_checkpoint_ends_the_run_with_exit_2_and_keeps_the_last_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """Simulated: the second write of last.pt fails with ENOSPC half-way through."""
    save = torch.save
    writes: list[str] = []

    def filling(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        writes.append(Path(f.name).name)
        if sum(".last.pt.tmp" in w for w in writes) == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", filling)
    out = tmp_path / "run"
    data = f"folder:{write_folder(tmp_path / 'data')}"
    result = cli(
        "train", STN, "--backbone", "test_resnet", "--image-size", "32", "--batch-size", "4",
        "--pictures", "0", "--checkpoint-every", "1", "--dataset", data, "--out", out,
    )  # fmt: skip
    assert result.code == 2
    assert (
        f"lstndsl: error: cannot write {out / 'last.pt'}: No space left on device; the "
        "previous last.pt is kept as it was"
    ) in result.err
    assert ckpt.load(out / "last.pt")["progress"]["step"] == 1
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temp file


def test_a_real_full_disk_ends_the_run_with_exit_2(tmp_path: Path, cli: Any) -> None:
    """An 8 MB tmpfs (root only): best.pt and one last.pt fit, a second last.pt does not."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        out = small / "run"
        data = f"folder:{write_folder(tmp_path / 'data')}"
        result = cli(
            "train", STN, "--backbone", "test_resnet", "--image-size", "32", "--batch-size",
            "4", "--limit-batches", "2", "--max-epochs", "3", "--pictures", "0", "--dataset",
            data, "--out", out,
        )  # fmt: skip
        assert result.code == 2, result.err
        assert f"cannot write {out / 'last.pt'}: No space left on device" in result.err
        assert ckpt.load(out / "last.pt")["progress"]["epoch"] == 1
    finally:
        subprocess.run(["umount", str(small)], check=True)
