"""What `lstndsl train` says when its input cannot be used: bad dataset names and directories,
unknown backbones, bad values, a spec whose numbers disagree (at its line and column). Each is
an exit code and a message, never a traceback, and nothing is trained or written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

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


# --- runs that cannot learn, and bad files: exit 2 naming what is wrong ---------------------------


def test_a_seed_beyond_every_generator_is_a_usage_error(cli: Callable[..., Any]) -> None:
    result = cli("train", STN, *FAST, "--seed", "99999999999999999999999")
    assert result.code == 2
    assert "lstndsl: error: --seed must be an integer in 0..9223372036854775807" in result.err


def _tiny_folder(root: Path, classes: dict[str, int]) -> Path:
    from PIL import Image

    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (20 * i, 0, 0)).save(root / name / f"{i}.png")
    return root


def test_batch_norm_with_one_example_per_batch_stops_before_training(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    data = _tiny_folder(tmp_path / "data", {"a": 6, "b": 6})
    out = tmp_path / "run"
    result = cli(
        "train", STN, *FAST, "--batch-size", "1", "--dataset", f"folder:{data}", "--out", out
    )
    assert result.code == 2
    assert "lstndsl: error: --batch-size 1: the model has batch norm (backbone." in result.err
    assert (
        "), which cannot train on fewer than 2 examples per batch; use --batch-size 2 or more"
    ) in result.err
    assert not out.exists()


def test_a_folder_with_one_class_is_refused(cli: Callable[..., Any], tmp_path: Path) -> None:
    data = _tiny_folder(tmp_path / "data", {"cat": 9})
    result = cli("train", STN, *FAST, "--dataset", f"folder:{data}", "--out", tmp_path / "run")
    assert result.code == 2
    assert f"folder: {data} has one class folder only (cat/): a classifier needs at least two" in (
        result.err
    )


def test_single_class_and_zero_step_training_splits_are_refused(tmp_path: Path) -> None:
    from torch import nn

    from lstndsl.errors import UsageError
    from lstndsl.train.config import TrainConfig
    from lstndsl.train.data import open_dataset
    from lstndsl.train.guards import check_can_learn
    from lstndsl.train.splits import Split

    data = _tiny_folder(tmp_path / "data", {"a": 6, "b": 6})
    dataset = open_dataset(f"folder:{data}", seed=0, image_size=8)
    labels = dataset.source.labels.numpy()
    only_a = np.flatnonzero(labels == 0)
    b = np.flatnonzero(labels == 1)

    def with_train(train: np.ndarray) -> Any:
        s, rest = dataset.split, np.setdiff1d(b, train)
        split = Split(
            s.dataset, s.seed, s.num_examples, s.fingerprint, train, rest[:2], rest[2:], ""
        )
        return dataset.with_split(split)

    config = TrainConfig(spec=None, no_stn=True, backbone="x", batch_size=4)
    linear = nn.Linear(3, 2)  # no batch norm
    with pytest.raises(UsageError, match=r"holds one class only \('a', 6 examples\)"):
        check_can_learn(config, with_train(only_a), linear)
    with pytest.raises(UsageError, match=r"a budget of zero steps: .* with 1 training example"):
        check_can_learn(config, with_train(np.array([only_a[0], b[0]])), linear, world_size=2)
    with pytest.raises(UsageError, match=r"a budget of zero steps: .*--batch-size 1"):
        check_can_learn(config.replace(batch_size=1), with_train(np.r_[only_a, b[:1]]), linear)
    check_can_learn(config, with_train(np.r_[only_a, b[:1]]), linear)  # two classes: fine


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A valid PNG header that claims width×height pixels, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def test_a_decompression_bomb_png_is_refused_by_name(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    data = _tiny_folder(tmp_path / "data", {"a": 3, "b": 3})
    bomb = data / "b" / "bomb.png"
    _png_claiming(bomb, 100_000, 100_000)
    result = cli("train", STN, *FAST, "--dataset", f"folder:{data}", "--out", tmp_path / "run")
    assert result.code == 2
    assert f"folder: cannot decode image {bomb}: " in result.err
    assert "Traceback" not in result.err


def test_cifar_labels_that_are_not_integers_are_refused(tmp_path: Path) -> None:
    import pickle

    from test_data import write_cifar

    from lstndsl.train.data import DatasetError, open_dataset

    root = write_cifar(tmp_path / "cifar")
    batch = pickle.loads((root / "data_batch_2").read_bytes())
    batch[b"labels"] = [1.7] + [float(v) for v in batch[b"labels"][1:]]
    (root / "data_batch_2").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError) as caught:
        open_dataset(f"cifar10:{root}", seed=0)
    assert caught.value.message == (
        f"cifar10: {root / 'data_batch_2'}: label 0 is 1.7, not an integer class in 0..9"
    )
    batch[b"labels"][0] = 1.0  # whole numbers stored as floats are fine
    (root / "data_batch_2").write_bytes(pickle.dumps(batch))
    assert open_dataset(f"cifar10:{root}", seed=0).source.labels.dtype == torch.int64


def test_a_batches_meta_that_is_not_utf8_is_refused(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    import pickle

    from test_data import write_cifar

    root = write_cifar(tmp_path / "cifar")
    names = [f"class{i}".encode() for i in range(10)]
    names[3] = b"caf\xe9"  # latin-1, not UTF-8
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    result = cli("train", STN, *FAST, "--dataset", f"cifar10:{root}", "--out", tmp_path / "run")
    assert result.code == 2
    assert f"cifar10: {root / 'batches.meta'}: its label_names are not UTF-8 text" in result.err
