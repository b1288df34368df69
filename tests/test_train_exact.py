"""The trainer's rules, number for number, where a mutation pass (`make mutate`, issue 13) found
them unchecked: the early-stopping rule's defaults (the paper's window of ten epochs, ±0.25
points, never before epoch ten) and its first epoch, and the θ loss of a thin-plate spline
through both of its entry points.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compiler import transforms
from lstndsl.ir import Transform
from lstndsl.train.stopping import should_stop, stopping_epoch
from lstndsl.train.thetaloss import ThetaSupervision

FLAT = [50.0] * 10


def test_the_rules_defaults_are_ten_epochs_and_a_quarter_point() -> None:
    assert stopping_epoch(FLAT) == 10  # window 10 and min_epochs 10: the tenth flat epoch
    assert stopping_epoch(FLAT[:9]) is None
    assert should_stop(FLAT) and not should_stop(FLAT[:9])
    # one epoch 0.5 points below nine others: 0.45 from their mean, outside ±0.25
    dip = [*FLAT[:9], 49.5]
    assert stopping_epoch(dip) is None and not should_stop(dip)
    assert stopping_epoch(dip, tolerance=0.5) == 10
    # a window of 10 at min_epochs 10: eleven epochs whose last ten are flat stop at 10
    assert stopping_epoch([40.0, *FLAT]) == 11


def test_a_window_of_one_stops_after_the_first_epoch() -> None:
    assert stopping_epoch([50.0], window=1, tolerance=0.0, min_epochs=0) == 1
    assert stopping_epoch([50.0, 60.0], window=1, tolerance=0.0, min_epochs=2) is None
    assert stopping_epoch([], window=1, tolerance=0.0, min_epochs=0) is None
    # never right after an improvement, from the second epoch on
    assert not should_stop([50.0, 60.0], window=2, tolerance=100.0, min_epochs=0)
    assert should_stop([60.0, 50.0], window=2, tolerance=100.0, min_epochs=0)


TPS = Transform(kind="tps", points=(2, 4))


@pytest.fixture
def supervision() -> ThetaSupervision:
    ideal = torch.eye(2, 3).repeat(6, 1, 1)  # every image's ideal θ: the identity
    return ThetaSupervision(ideal, np.arange(6), labels=1.0, noise=0.0, seed=0)


def test_the_theta_loss_of_a_tps_is_its_grid_distance_in_half_image_units(
    supervision: ThetaSupervision,
) -> None:
    base = torch.tensor(transforms.identity_raw(TPS)).view(1, 8, 2).repeat(4, 1, 1)
    indices = torch.arange(4)
    loss, k = supervision.loss(base, indices, (16, 24), TPS)
    assert k == 4 and loss is not None and float(loss) == pytest.approx(0.0, abs=1e-6)
    moved = base.clone()
    moved[..., 0] += 0.1  # every control point 0.1 to the right: the grid moves 0.1 in x
    loss, _ = supervision.loss(moved, indices, (16, 24), TPS)
    # 0.1 normalized units = 0.1·W/2 = 1.2 pixels; in half-image units (min side 16 / 2 = 8)
    assert loss is not None and float(loss) == pytest.approx(1.2 / 8, abs=1e-5)
    masked, count = supervision.masked_loss(moved, indices, (16, 24), TPS)
    assert int(count) == 4 and float(masked) == pytest.approx(float(loss), abs=1e-6)


def shifted(dx: list[float]) -> torch.Tensor:
    """Identity θ moved dx[i] normalized units to the right, one per image."""
    theta = torch.eye(2, 3).repeat(len(dx), 1, 1)
    theta[:, 0, 2] = torch.tensor(dx)
    return theta


def test_the_trainers_theta_loss_is_the_mean_over_the_batchs_labelled_images() -> None:
    ideal = torch.eye(2, 3).repeat(8, 1, 1)
    weak = ThetaSupervision(ideal, np.arange(8), labels=0.5, noise=0.0, seed=0)
    labelled = weak.labelled.nonzero().flatten().tolist()
    unlabelled = (~weak.labelled).nonzero().flatten().tolist()
    assert len(labelled) == 4 and len(unlabelled) == 4
    dx = [0.05 * (i + 1) for i in range(8)]
    theta, size = shifted(dx), (16, 24)  # x: W/2 = 12 pixels per unit; half-image units: 8 px
    want = sum(dx[i] * 12 / 8 for i in labelled) / 4
    got, count = weak.masked_loss(theta, torch.arange(8), size)
    assert int(count) == 4 and float(got) == pytest.approx(want, rel=1e-5)
    host, k = weak.loss(theta, torch.arange(8), size)
    assert k == 4 and host is not None and float(host) == pytest.approx(want, rel=1e-5)
    # a batch with one labelled image among unlabelled ones: that image's distance alone
    one = torch.tensor([unlabelled[0], labelled[1], unlabelled[1]])
    got, count = weak.masked_loss(theta[one], one, size)
    assert int(count) == 1 and float(got) == pytest.approx(dx[labelled[1]] * 12 / 8, rel=1e-5)
    # none labelled: 0, and no image counted
    none = torch.tensor(unlabelled[:2])
    got, count = weak.masked_loss(theta[none], none, size)
    assert int(count) == 0 and float(got) == 0.0
    assert weak.loss(theta[none], none, size) == (None, 0)


def test_noisy_targets_come_from_the_runs_seed_on_their_own_stream() -> None:
    from lstndsl.train.splits import rng_for
    from lstndsl.train.thetaloss import STREAM_THETA_NOISE

    ideal = torch.eye(2, 3).repeat(5, 1, 1)
    noisy = [
        ThetaSupervision(ideal, np.arange(5), labels=1.0, noise=0.1, seed=s).targets for s in (0, 1)
    ]
    jitter = rng_for(1, STREAM_THETA_NOISE).normal(0.0, 0.1, size=(5, 2, 3))
    torch.testing.assert_close(noisy[1], ideal + torch.from_numpy(jitter).float())
    assert not torch.equal(noisy[0], noisy[1])
    exact = ThetaSupervision(ideal, np.arange(5), labels=1.0, noise=0.0, seed=1)
    assert torch.equal(exact.targets, ideal)
