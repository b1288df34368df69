"""The embedded default, RTS MNIST (Jaderberg et al. 2015), and the older `digits` canvas kept
bit-identical so that old runs reproduce."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstndsl.train.config import TrainConfig
from lstndsl.train.data import open_dataset, parse_dataset_name
from lstndsl.train.digits import VARIANTS, distort_digits, load_mnist_5k

#: sha256 of the `digits` variant's distorted images at rng seed 0, as every lstndsl before
#: the RTS default made them (measured on the code of commit eb84cab)
OLD_CANVAS_SHA256 = "2229b875ce7552f44dd1d1c52de72ce1521a6bbc56c8350fd03f7290ed0e890a"


def test_the_old_canvas_is_bit_identical_to_what_old_runs_trained_on() -> None:
    raw, _ = load_mnist_5k()
    made = distort_digits(raw, np.random.default_rng(0), variant=VARIANTS["digits"])
    assert made.distorted.shape == (5000, 1, 64, 64)
    assert hashlib.sha256(made.distorted.numpy().tobytes()).hexdigest() == OLD_CANVAS_SHA256
    # and the no-variant call old code made is the same data
    again = distort_digits(raw, np.random.default_rng(0))
    assert torch.equal(again.distorted, made.distorted)


def test_rts_is_the_default_and_follows_jaderberg() -> None:
    assert TrainConfig(spec="x.spec", backbone="resnet18").dataset == "rts"
    assert parse_dataset_name("rts") == ("rts", None)
    assert parse_dataset_name("rts-mnist") == ("rts", None)
    assert parse_dataset_name("mnist") == ("digits", None)  # old configs keep their data
    raw, _ = load_mnist_5k()
    made = distort_digits(raw, np.random.default_rng(3), variant=VARIANTS["rts"])
    assert made.distorted.shape == (5000, 1, 42, 42)
    assert np.abs(made.angle).max() <= 45 and np.abs(made.angle).max() > 44
    assert 0.7 <= made.scale.min() < 0.71 and 1.19 < made.scale.max() <= 1.2
    # random placement: the upright scaled box stays on the canvas, and uses the room it has
    room = 21 - 14 * made.scale
    assert bool((np.abs(made.shift) <= room[:, None] + 1e-9).all())
    assert np.abs(made.shift).max() > 10  # a small digit travels up to 11.2 px
    # θ_ideal is the forward distortion in normalized units: shift in pixels / 21
    assert torch.allclose(made.theta_ideal[:, :, 2].double(), torch.from_numpy(made.shift / 21))


def test_rts_ideal_theta_recovers_the_digit_and_cuts_little_ink() -> None:
    raw, _ = load_mnist_5k()
    made = distort_digits(raw[::10], np.random.default_rng(7), variant=VARIANTS["rts"])
    centred, distorted = made.centred.float(), made.distorted.float()
    grid = F.affine_grid(made.theta_ideal, list(centred.shape), align_corners=False)
    back = F.grid_sample(distorted, grid, align_corners=False)
    err = (back - centred).abs().sum((1, 2, 3)) / centred.sum((1, 2, 3))
    identity = (distorted - centred).abs().sum((1, 2, 3)) / centred.sum((1, 2, 3))
    assert err.mean() < 0.35 and identity.mean() > 1.0
    # cropping: the ink on the canvas over the ink the scaled digit has (s²·ink): turned corners
    # are cut, but they rarely hold ink
    kept = distorted.sum((1, 2, 3)) / (centred.sum((1, 2, 3)) * torch.from_numpy(made.scale**2))
    assert kept.median() > 0.99 and kept.min() > 0.9


@pytest.mark.parametrize(("name", "side"), [("rts", 42), ("digits", 64)])
def test_the_embedded_datasets_keep_their_canvas_and_theta(name: str, side: int) -> None:
    ds = open_dataset(name, seed=0)
    assert ds.image_size == side and ds.has_theta and ds.num_classes == 10
    batch = next(ds.batches("train", 4, epoch=0))
    assert batch.images.shape == (4, 3, side, side) and batch.theta is not None
