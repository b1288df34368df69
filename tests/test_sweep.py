"""`lstndsl sweep`: arms on one shared split per seed, the table's mean ± std, strategies as arms,
and a rerun that skips finished arms.

The real sweep is tiny (test_resnet alone and behind L-STN, a 36-image folder dataset at 32×32,
1 epoch, seeds 0 and 1); the arithmetic of the table is checked on made-up summaries.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from train_helpers import LSTN as LSTN_PATH
from train_helpers import once, shared_base, write_folder

from lstndsl.errors import UsageError
from lstndsl.train.config import TrainConfig
from lstndsl.train.sweep import (
    UNSUPERVISED,
    Arm,
    Strategy,
    aggregate,
    markdown,
    mean_std,
    parse_strategies,
    plan,
)

LSTN = str(LSTN_PATH)


def test_mean_and_sample_std() -> None:
    assert mean_std([90.0, 92.0, 94.0]) == {"mean": 92.0, "std": 2.0, "n": 3}
    assert mean_std([90.0]) == {"mean": 90.0, "std": None, "n": 1}
    assert mean_std([None, 4.0, 6.0])["mean"] == 5.0


def test_strategies_parse_into_arms() -> None:
    got = parse_strategies("unsupervised,supervised,labels=0.1,labels=0.5+noise=0.05")
    assert got == [
        UNSUPERVISED,
        Strategy("supervised", supervised=True),
        Strategy("labels=0.1", supervised=True, labels=0.1),
        Strategy("labels=0.5+noise=0.05", supervised=True, labels=0.5, noise=0.05),
    ]
    assert got[2].config(2.0) == {"theta_loss": 2.0, "theta_labels": 0.1, "theta_noise": 0.0}
    assert UNSUPERVISED.config(2.0)["theta_loss"] == 0.0
    assert parse_strategies(None) == [UNSUPERVISED]
    with pytest.raises(UsageError, match="cannot read 'labels=2'"):
        parse_strategies("labels=2")


def test_plan_puts_each_backbone_alone_first() -> None:
    arms = plan(["a.spec", "b.spec"], ["r18", "r50"], [UNSUPERVISED], {"a.spec": "A"})
    assert [a.title for a in arms] == [
        "r18 alone",
        "r18 + A",
        "r18 + b",
        "r50 alone",
        "r50 + A",
        "r50 + b",
    ]
    sup = Arm("r18", "a.spec", Strategy("labels=0.1", True, labels=0.1), "A")
    assert sup.slug == "a-r18-labels0.1" and sup.title == "r18 + A (θ supervised, 10% labels)"


def fake(seed: int, top1: float, theta: float | None) -> dict[str, Any]:
    return {
        "seed": seed,
        "params": 11_190_682,
        "params_stn": 9_040,
        "macs": 1_844_280_560,
        "image_size": 64,
        "val_top1": top1 + 1,
        "test_top1": top1,
        "test_top5": 99.0,
        "test_theta_error": theta,
        "val_theta_error": None if theta is None else theta + 0.5,
        "selected_epoch": 3,
        "epochs": 5,
        "wall_time": 10.0,
        "failed": False,
    }


def test_the_table_reports_mean_and_std_over_seeds() -> None:
    arms = [Arm("resnet18", None), Arm("resnet18", "lstn.spec", UNSUPERVISED, "L-STN")]
    summaries = {
        "resnet18": [fake(0, 90.0, None), fake(1, 92.0, None), fake(2, 94.0, None)],
        "lstn-resnet18": [fake(0, 95.0, 3.0), fake(1, 96.0, 2.0), fake(2, 97.0, 1.0)],
    }
    rows = aggregate(arms, summaries)
    assert rows[0]["test_top1"] == {"mean": 92.0, "std": 2.0, "n": 3}
    table = markdown(rows, TrainConfig(spec=LSTN, backbone="resnet18"), [0, 1, 2])
    lines = table.splitlines()
    assert lines[0] == (
        "| Model | Parameters | MACs | Val top-1 (%) | Test top-1 (%) | Test top-5 (%) "
        "| θ error (px) | Epochs | Val θ error (px) | Wall time (min) |"
    )
    assert lines[2] == (
        "| resnet18 alone | 11.2M | 1.84G | 93.00 ± 2.00 | 92.00 ± 2.00 | 99.00 ± 0.00 | – "
        "| 5.0 ± 0.0 | – | 0.2 ± 0.0 |"
    )
    assert lines[3].startswith("| resnet18 + L-STN | 11.2M | 1.84G | 97.00 ± 1.00 | 96.00 ± 1.00")
    assert "| 2.00 ± 1.00 |" in lines[3] and lines[3].endswith("| 2.50 ± 1.00 | 0.2 ± 0.0 |")
    assert "mean ± sample standard deviation over 3 seeds (0, 1, 2)" in table


SWEEP = [
    "sweep",
    LSTN,
    "--backbones",
    "test_resnet",
    "--seeds",
    "0,1",
    "--image-size",
    "32",
    "--max-epochs",
    "1",
    "--batch-size",
    "8",
    "--pictures",
    "0",
]


def make_sweep(where: Path) -> None:
    from lstndsl.cli import main

    data = f"folder:{write_folder(where / 'images')}"
    assert main([*SWEEP, "--dataset", data, "--out", str(where / "s")]) == 0


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The sweep, made once per session (whichever xdist worker asks first)."""
    return once(shared_base(tmp_path_factory, worker_id), "sweep", make_sweep)


@pytest.fixture(scope="module")
def data(made: Path) -> str:
    return f"folder:{made / 'images'}"


@pytest.fixture(scope="module")
def swept(made: Path) -> Path:
    return made / "s"


def test_every_arm_of_a_seed_shares_one_split(swept: Path, data: str) -> None:
    def indices(path: Path) -> dict[str, list[int]]:
        data: dict[str, list[int]] = json.loads(path.read_text())["indices"]
        return data

    for seed in (0, 1):
        shared = indices(swept / f"split-s{seed}.json")
        for arm in ("test_resnet", "lstn-test_resnet"):
            assert indices(swept / f"s{seed}" / arm / "split.json") == shared
    assert indices(swept / "split-s0.json") != indices(swept / "split-s1.json")
    # and the split is stable: a fresh open of the same dataset and seed draws it again
    from lstndsl.train.data import open_dataset

    again = open_dataset(data, seed=0, image_size=32).split
    assert again.train.tolist() == indices(swept / "split-s0.json")["train"]


def test_the_sweep_writes_its_table(swept: Path) -> None:
    table = (swept / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| test_resnet")]
    assert [r.split(" | ")[0] for r in rows] == ["| test_resnet alone", "| test_resnet + L-STN"]
    assert "over 2 seeds (0, 1)" in table
    results = json.loads((swept / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    assert [len(v) for v in results["runs"].values()] == [2, 2]
    row = results["rows"][1]
    tops = [r["test_top1"] for r in results["runs"]["lstn-test_resnet"]]
    assert row["test_top1"]["mean"] == pytest.approx(sum(tops) / 2)


def test_every_arm_has_an_hparams_session(swept: Path) -> None:
    """OUT/hparams/s<seed>-<arm>/: TensorBoard's HParams tab, the arm's knobs and results."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = json.loads((swept / "results.json").read_text())["runs"]
    for arm in ("test_resnet", "lstn-test_resnet"):
        for summary in runs[arm]:
            events = EventAccumulator(str(swept / "hparams" / f"s{summary['seed']}-{arm}"))
            events.Reload()
            assert set(events.PluginTagToContent("hparams")) == {
                "_hparams_/experiment",
                "_hparams_/session_start_info",
                "_hparams_/session_end_info",
            }
            [top1] = events.Scalars("hparam/test_top1")
            assert top1.value == pytest.approx(summary["test_top1"], rel=1e-6)
            [params] = events.Scalars("hparam/params")
            assert params.value == summary["params"]


def test_a_rerun_skips_finished_arms(
    swept: Path, data: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    copy = shutil.copytree(swept, tmp_path / "s")  # the shared sweep stays as it was
    result = cli(*SWEEP, "--dataset", data, "--out", copy)
    assert result.code == 0
    assert result.out.count("finished earlier: reusing its summary.json") == 4
    assert "epoch   1/1" not in result.out
    assert (copy / "results.md").read_text() == (swept / "results.md").read_text()
    # the arms' hparams sessions are written once, not again
    assert len(list((copy / "hparams").glob("*/events.out.tfevents.*"))) == 4


def test_strategies_need_a_spec(cli: Callable[..., Any]) -> None:
    result = cli("sweep", "--backbones", "test_resnet", "--strategies", "supervised")
    assert result.code == 2
    assert "--strategies needs at least one SPEC" in result.err


def test_every_backbone_name_is_checked_before_any_arm_trains(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    r = cli("sweep", str(LSTN_PATH), "--backbones", "resnet18,resnt18", "--out", str(tmp_path))
    assert r.code == 2
    assert "unknown backbone 'resnt18'" in r.err and "did you mean 'resnet18'" in r.err
    assert "===" not in r.out  # no arm started
    assert list(tmp_path.iterdir()) == []
