"""One tiny training run, end to end, in-process: the files it writes, what they say, the order
in which the splits are read (the test split only after selection), and the selection itself.

Tiny means: timm's `test_resnet` (374k parameters, built offline) behind the L-STN spec, 32×32
digits, 4 training batches per epoch, 3 epochs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from train_helpers import LSTN, once, shared_base, write_folder

from lstndsl.train import checkpoint as ckpt
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import Dataset
from lstndsl.train.loop import main
from lstndsl.train.progress import Console
from lstndsl.train.report import epoch_line

TINY = {"backbone": "test_resnet", "image_size": 32, "limit_batches": 4, "pictures": 4}

#: the summary.json keys issue 4 spells out (a contract: never renamed or removed)
SUMMARY_KEYS = {
    "selected_epoch",
    "val_top1",
    "val_top5",
    "test_top1",
    "test_top5",
    "params",
    "macs",
    "wall_time",
    "images_per_s",
}
#: the metrics.jsonl keys issue 4 spells out (losses, accuracies, learning rate, time, images/s,
#: θ statistics), and issue 5's θ-recovery error
METRICS_KEYS = {
    "epoch",
    "train_loss",
    "val_loss",
    "train_top1",
    "val_top1",
    "val_top5",
    "lr",
    "time",
    "images_per_s",
    "theta",
    "val_theta_error",
}


def tiny(out: Path, **changes: Any) -> TrainConfig:
    return TrainConfig(**{"spec": str(LSTN), "out": str(out), "max_epochs": 3, **TINY, **changes})


@dataclass(frozen=True)
class Reference:
    out: Path
    summary: dict[str, Any]
    #: which split each Dataset.load call read, in order
    reads: list[str]


def make_reference(where: Path) -> None:
    """A 3-epoch run, with every Dataset.load call logged by the split its examples belong to."""
    reads: list[str] = []
    original = Dataset.load

    def logged(self: Dataset, indices: Any, number: int = 0) -> Any:
        idx = np.asarray(indices)
        for name in ("train", "val", "test"):
            if np.isin(idx, self.split[name]).any():
                reads.append(name)
        return original(self, indices, number)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Dataset, "load", logged)
        main(tiny(where / "run"), console=Console(echo=False))
    (where / "reads.json").write_text(json.dumps(reads))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Reference:
    """The run, made once per session (whichever xdist worker asks first)."""
    where = once(shared_base(tmp_path_factory, worker_id), "train-reference", make_reference)
    out = where / "run"
    summary = json.loads((out / "summary.json").read_text())
    return Reference(out, summary, json.loads((where / "reads.json").read_text()))


def test_a_run_writes_every_file(reference: Reference) -> None:
    result = reference
    out = result.out
    for name in ("lstn.spec", "config.json", "split.json", "metrics.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    for name in ("last.pt", "best.pt"):
        assert (out / name).is_file(), name
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert pictures == [
        "curves.png",
        "transform-e000.png",
        "transform-e001.png",
        "transform-e002.png",
        "transform-e003.png",
        "transform-selected.png",
    ]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    assert (out / "lstn.spec").read_text() == LSTN.read_text()
    assert TrainConfig.from_json(json.loads((out / "config.json").read_text())) == tiny(out)


def test_metrics_have_one_line_per_epoch_with_the_contract_keys(
    reference: Reference,
) -> None:
    result = reference
    lines = (result.out / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["step"] for r in records] == [4, 8, 12]
    for r in records:
        assert set(r) >= METRICS_KEYS
        assert r["train_images"] == 4 * 16
        assert 0 <= r["val_top1"] <= r["val_top5"] <= 100
        assert set(r["theta"]) == {"scale", "rotation", "translation", "outside"}
        assert r["val_theta_error"] > 0 and r["lr"] == 1e-3 and r["lr_stn"] == 1e-3


def test_selection_is_on_validation_and_the_summary_reports_it(
    reference: Reference,
) -> None:
    result = reference
    summary = result.summary
    assert set(summary) >= SUMMARY_KEYS
    records = [json.loads(line) for line in (result.out / "metrics.jsonl").read_text().splitlines()]
    accs = [r["val_top1"] for r in records]
    chosen = accs.index(max(accs)) + 1
    assert summary["selected_epoch"] == chosen
    assert summary["val_top1"] == records[chosen - 1]["val_top1"]
    assert summary["val_theta_error"] == records[chosen - 1]["val_theta_error"]
    assert ckpt.load(result.out / "best.pt")["epoch"] == chosen
    # 750 test images: every accuracy is a whole number of them
    assert round(summary["test_top1"] * 7.5, 6) == round(summary["test_top1"] * 7.5)
    assert summary["split"] == {"train": 3500, "val": 750, "test": 750}
    assert summary["params"] == summary["params_stn"] + summary["params_backbone"]
    assert summary["params_stn"] == 9_040  # the L-STN at 32×32: 3,690 + a 160-wide head
    assert summary["macs"] is None or summary["macs"] > 0
    assert summary["epochs"] == 3 and summary["steps"] == 12 and not summary["failed"]


def test_the_test_split_is_read_once_and_only_after_selection(
    reference: Reference,
) -> None:
    reads = reference.reads
    first_test = reads.index("test")
    assert "test" not in reads[:first_test]
    assert "train" not in reads[first_test:]  # training was over when the test split was read
    block = reads[first_test:]
    assert block.count("test") == len([r for r in block if r == "test"])
    # one pass over 750 images in evaluation batches of 64: 12 loads, contiguous
    tests = [i for i, r in enumerate(reads) if r == "test"]
    assert tests == list(range(first_test, first_test + 12))


def test_checkpoints_rebuild_the_model_and_load_without_pickled_code(
    reference: Reference,
) -> None:
    result = reference
    last = torch.load(result.out / "last.pt", weights_only=True)
    assert last["progress"]["epoch"] == 3 and last["progress"]["step"] == 12
    assert set(last["rng"]) >= {"torch", "numpy", "python"}
    model = ckpt.rebuild_model(result.out / "best.pt")
    x = torch.zeros(2, 3, 32, 32)
    assert model(x).shape == (2, 10)


def test_a_non_terminal_log_has_one_line_per_epoch(
    reference: Reference,
) -> None:
    result = reference
    log = (result.out / "log.txt").read_text().splitlines()
    epochs = [line for line in log if line.startswith("epoch ")]
    assert len(epochs) == 3
    assert epochs[0].startswith("epoch   1/3  train loss ")
    assert "θ-err" in epochs[0] and "img/s" in epochs[0]
    assert any(line.startswith("  data      rts: 10 classes, 32×32") for line in log)
    assert any(line.startswith("  timing: ") for line in log)


def test_epoch_line_formats_a_record() -> None:
    record = {
        "epoch": 2,
        "train_loss": 1.5,
        "train_top1": 40.0,
        "val_loss": 1.25,
        "val_top1": 50.0,
        "val_top5": 90.0,
        "val_theta_error": 3.5,
        "theta": {"scale": 0.9, "rotation": 12.0, "translation": 2.0, "outside": 0.05},
        "time": 75.0,
        "images_per_s": 48.0,
        "best": True,
    }
    assert epoch_line(record, 10) == (
        "epoch   2/10  train loss 1.5000 top-1 40.00%  val loss 1.2500 top-1 50.00% top-5 "
        "90.00%  θ-err 3.50px  θ scale 0.90 rot 12.0° shift 2.0px out 5%  1m15s 48 img/s  *"
    )


def test_the_run_stops_where_the_rule_says_and_stays_stopped(tmp_path: Path) -> None:
    from lstndsl.train.stopping import stopping_epoch

    rule = {"stop_window": 2, "stop_tolerance": 100.0, "min_epochs": 2}
    data = f"folder:{write_folder(tmp_path / 'data')}"
    config = tiny(tmp_path / "run", dataset=data, max_epochs=6, pictures=0, batch_size=8, **rule)
    first = main(config, console=Console(echo=False))
    accs = [json.loads(line)["val_top1"] for line in (first.out / "metrics.jsonl").open()]
    stop = stopping_epoch(accs, window=2, tolerance=100.0, min_epochs=2)
    # with ±100 points every window agrees: the run stops at the first epoch >= 2 that did not
    # beat its predecessor
    expected = next((e for e in range(2, 7) if accs[e - 1] <= accs[e - 2]), None)
    assert stop == expected and first.summary["epochs"] == (stop or 6)
    if stop is not None:
        assert first.summary["stop_reason"].startswith(f"early stopping after epoch {stop}")
        # resuming a run the rule has stopped trains nothing more
        again = main(config.replace(resume=True, max_epochs=8), console=Console(echo=False))
        assert again.summary["epochs"] == stop
        assert again.summary["test_top1"] == first.summary["test_top1"]


def test_arms_with_and_without_a_transformer_start_from_the_same_backbone() -> None:
    from lstndsl.train import checkpoint as ckpt
    from lstndsl.train.model import build_model

    text = LSTN.read_text()
    ckpt.seed_everything(3)
    with_stn = build_model(TrainConfig(spec="lstn.spec", backbone="test_resnet"), text, 10, 32)
    ckpt.seed_everything(3)
    alone = build_model(TrainConfig(spec=None, no_stn=True, backbone="test_resnet"), None, 10, 32)
    mine, theirs = with_stn.backbone.state_dict(), alone.backbone.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_max_steps_ends_inside_an_epoch_and_the_stn_has_its_own_learning_rate(
    tmp_path: Path,
) -> None:
    data = f"folder:{write_folder(tmp_path / 'data')}"  # 26 training images: 7 batches of 4
    config = tiny(
        tmp_path / "run",
        dataset=data,
        batch_size=4,
        limit_batches=None,
        max_steps=10,
        pictures=0,
        stn_lr_mult=0.5,
    )
    result = main(config, console=Console(echo=False))
    records = [json.loads(line) for line in (result.out / "metrics.jsonl").open()]
    assert [(r["epoch"], r["step"], r.get("partial_epoch", False)) for r in records] == [
        (1, 7, False),
        (2, 10, True),
    ]
    assert records[1]["train_images"] == 12
    assert result.summary["stop_reason"] == "max_steps (10) reached"
    assert (records[0]["lr"], records[0]["lr_stn"]) == (1e-3, 5e-4)
