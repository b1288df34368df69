"""TensorBoard: a run's directory holds event files that TensorBoard's own reader
(`EventAccumulator`) reads back as the numbers of metrics.jsonl and summary.json, the transform
pictures and the spec and config texts; a resumed run appends without showing an epoch twice;
a failure to write events is a warning, never a failed run; only rank 0 writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import LSTN, STN, write_folder

from lstndsl.cli import main as cli_main
from lstndsl.train.tboard import SCALARS, Board, scalars

TINY = [
    "--backbone",
    "test_resnet",
    "--image-size",
    "32",
    "--limit-batches",
    "2",
    "--pictures",
    "2",
]
#: every size limit off: the reader keeps every event
ALL = {"scalars": 0, "images": 0, "tensors": 0}


def read(out: Path) -> EventAccumulator:
    events = EventAccumulator(str(out), size_guidance=ALL)
    events.Reload()
    return events


def series(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of L-STN + test_resnet on the digits (θ known: θ-recovery error logged)."""
    out = tmp_path_factory.mktemp("tb") / "run"
    args = ["train", str(LSTN), *TINY, "--max-epochs", "2", "--out", str(out)]
    assert cli_main(args) == 0
    return out


def test_the_events_are_the_metrics_number_for_number(digits_run: Path) -> None:
    events = read(digits_run)
    records = metrics(digits_run)
    assert [r["epoch"] for r in records] == [1, 2]
    # the tags a reader looks for, each equal to its metrics.jsonl field at every epoch
    named = {
        "loss/train": "train_loss",
        "loss/val": "val_loss",
        "top1/train": "train_top1",
        "top1/val": "val_top1",
        "top5/val": "val_top5",
        "theta_error/val": "val_theta_error",
        "theta_error/train": "train_theta_error",
        "lr/backbone": "lr",
        "lr/stn": "lr_stn",
        "speed/images_per_s": "images_per_s",
    }
    for tag, key in named.items():
        got = series(events, tag)
        assert [s for s, _ in got] == [1, 2], tag
        assert [v for _, v in got] == pytest.approx([r[key] for r in records], rel=1e-6), tag
    for stat in ("scale", "rotation", "translation", "outside"):
        got = series(events, f"theta/input/{stat}")
        want = [r["thetas"]["input"][stat] for r in records]
        assert [v for _, v in got] == pytest.approx(want, rel=1e-6, abs=1e-9), stat
    # and every scalar the records carry is there, nothing else per epoch
    per_epoch = {tag for r in records for tag in scalars(r)}
    assert per_epoch <= set(events.Tags()["scalars"])
    assert {t for t in events.Tags()["scalars"] if not t.startswith("test/")} == per_epoch
    assert "loss/train_theta" not in per_epoch  # no θ loss in this run: no empty series


def test_the_test_numbers_come_once_after_the_selection(digits_run: Path) -> None:
    events = read(digits_run)
    summary = json.loads((digits_run / "summary.json").read_text())
    assert series(events, "test/top1") == [(2, pytest.approx(summary["test_top1"], rel=1e-6))]
    assert series(events, "test/theta_error") == [
        (2, pytest.approx(summary["test_theta_error"], rel=1e-6))
    ]


def test_the_transform_picture_of_every_epoch_and_the_selected_one(digits_run: Path) -> None:
    events = read(digits_run)
    pictures = events.Images("transform")
    assert [p.step for p in pictures] == [0, 1, 2]
    from PIL import Image

    png = Image.open(digits_run / "pictures" / "transform-e001.png")
    assert (pictures[1].width, pictures[1].height) == png.size
    assert [p.step for p in events.Images("transform/selected")] == [2]


def test_the_spec_and_config_as_text(digits_run: Path) -> None:
    events = read(digits_run)
    tags = events.Tags()["tensors"]
    assert "spec/lstn.spec/text_summary" in tags and "config/text_summary" in tags
    [spec] = events.Tensors("spec/lstn.spec/text_summary")
    text = spec.tensor_proto.string_val[0].decode()
    assert spec.step == 0
    assert "    " + LSTN.read_text().splitlines()[0] in text  # a Markdown code block
    [config] = events.Tensors("config/text_summary")
    assert '"backbone": "test_resnet"' in config.tensor_proto.string_val[0].decode()


# --- resume, failures, ranks --------------------------------------------------------------------


def test_a_resumed_run_appends_without_showing_an_epoch_twice(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", str(STN), *TINY, "--dataset", f"folder:{data}", "--batch-size", "4"]
    assert cli_main([*args, "--max-epochs", "1", "--out", str(out)]) == 0
    assert cli_main([*args, "--max-epochs", "3", "--out", str(out), "--resume"]) == 0
    assert len(list(out.glob("events.out.tfevents.*"))) == 2  # one file per session
    events = read(out)
    records = metrics(out)
    got = series(events, "top1/val")
    assert [s for s, _ in got] == [1, 2, 3]
    assert [v for _, v in got] == pytest.approx([r["val_top1"] for r in records], rel=1e-6)
    assert [p.step for p in events.Images("transform")] == [0, 1, 2, 3]
    # each session's test at the epochs it had trained
    assert [s for s, _ in series(events, "test/top1")] == [1, 3]


def test_events_a_later_session_rewrites_are_purged(tmp_path: Path) -> None:
    """A session killed after writing epoch 2's events but before last.pt recorded epoch 2:
    the resume opens at purge_step 2, and the reader shows its epoch 2, not both."""
    first = Board.open(tmp_path, main=True, purge_step=0, warn=print)
    for epoch, value in ((1, 10.0), (2, 20.0)):
        first.epoch({"epoch": epoch, "val_top1": value})
    first.close()
    second = Board.open(tmp_path, main=True, purge_step=2, warn=print)
    for epoch, value in ((2, 21.0), (3, 31.0)):
        second.epoch({"epoch": epoch, "val_top1": value})
    second.close()
    assert series(read(tmp_path), "top1/val") == [(1, 10.0), (2, 21.0), (3, 31.0)]


def test_only_rank_0_writes(tmp_path: Path) -> None:
    board = Board.open(tmp_path, main=False, purge_step=0, warn=print)
    board.epoch({"epoch": 1, "val_top1": 1.0})
    board.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["__init__", "add_scalar"])
def test_a_failure_to_write_events_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, where, broken)
    data = write_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", str(STN), *TINY, "--dataset", f"folder:{data}", "--batch-size", "4"]
    assert cli_main([*args, "--max-epochs", "2", "--out", str(out)]) == 0
    log = (out / "log.txt").read_text()
    assert log.count("warning: TensorBoard events stop here") == 1
    assert "No space left on device" in log
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
    assert json.loads((out / "summary.json").read_text())["test_top1"] is not None


def test_the_scalar_tags_name_their_fields() -> None:
    record = {key: float(i) for i, (_, key) in enumerate(SCALARS)}
    record.update(epoch=1, thetas={"a": {"scale": 1.5, "outside": None}})
    got = scalars(record)
    assert got["top1/val"] == record["val_top1"] and got["lr/stn"] == record["lr_stn"]
    assert got["theta/a/scale"] == 1.5 and "theta/a/outside" not in got
    assert len(got) == len(SCALARS) + 1
