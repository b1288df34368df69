"""What `lstndsl train` says when its input cannot be used: bad dataset names and directories,
unknown backbones, bad values, a spec whose numbers disagree (at its line and column). Each is
an exit code and a message, never a traceback, and nothing is trained or written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
STN = REPO / "specs" / "stn.spec"
FAST = ["--backbone", "test_resnet", "--image-size", "32"]


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (
            "cifar10:{tmp}/nope",
            "cifar10: directory {tmp}/nope does not exist; expected the CIFAR-10 python "
            "version: data_batch_1 … data_batch_5 and test_batch",
        ),
        ("caltech101:{tmp}", "caltech101: {tmp} has no class sub-folders; expected Caltech-101"),
        ("folder:{tmp}/file.txt", "folder: {tmp}/file.txt is a file, not a directory"),
        ("cifra10:{tmp}", "unknown dataset 'cifra10:{tmp}': did you mean cifar10:{tmp}?"),
        ("cifar10", "cifar10 needs a directory: write cifar10:DIR (no data is ever downloaded)"),
    ],
)
def test_bad_datasets_say_what_was_expected_where(
    cli: Callable[..., Any], tmp_path: Path, dataset: str, message: str
) -> None:
    (tmp_path / "file.txt").write_text("not a folder")
    out = tmp_path.parent / f"{tmp_path.name}-run"  # outside the data (an overlap is refused)
    result = cli("train", STN, *FAST, "--dataset", dataset.format(tmp=tmp_path), "--out", out)
    assert result.code == 2
    assert message.format(tmp=tmp_path) in result.err
    assert "Traceback" not in result.err
    assert not out.exists()


def test_an_unknown_backbone_gets_a_did_you_mean(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("train", STN, "--backbone", "resnt18", "--out", tmp_path / "run")
    assert result.code == 2
    assert "unknown backbone 'resnt18'" in result.err and "did you mean" in result.err
    assert "'resnet18'" in result.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "--backbone NAME is needed"),
        (["--backbone", "test_resnet", "--theta-labels", "1.5"], "--theta-labels is a fraction"),
        (["--backbone", "test_resnet", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--backbone", "test_resnet", "--no-stn", "--theta-loss", "1"], "cannot go with --no-stn"),
    ],
)
def test_bad_values_are_usage_errors(
    cli: Callable[..., Any], flags: list[str], message: str
) -> None:
    result = cli("train", STN, *flags)
    assert result.code == 2
    assert message in result.err


def test_theta_loss_needs_known_transforms(cli: Callable[..., Any], tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "data" / cls / f"{i}.png")
    result = cli(
        "train",
        STN,
        *FAST,
        "--dataset",
        f"folder:{tmp_path / 'data'}",
        "--theta-loss",
        "1",
        "--out",
        tmp_path / "run",
    )
    assert result.code == 2
    assert "--theta-loss needs images whose transforms are known" in result.err


def test_a_spec_that_does_not_check_stops_at_its_row(
    cli: Callable[..., Any], write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    bad = write_spec(STN.read_text().replace("| 1184       |", "| 1185       |"), "bad.spec")
    result = cli("train", bad, *FAST, "--out", tmp_path / "run")
    assert result.code == 1
    assert f"{bad}:15:61: error: parameters: declared 1185, inferred 1184" in result.err
    assert not (tmp_path / "run").exists()
