"""θ in the trainer (issue 5): the ideal θ through the compiled sampler, the θ loss and its
gradient, weak and noisy labels, the recovery metric and θ statistics, and `--theta-labels 0`
being, number for number, the unsupervised run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import lstndsl
from compiler.build import build
from compiler.stn import SpatialTransformer, STNModel
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import Dataset, open_dataset
from lstndsl.train.digits import distort_digits, load_mnist_5k
from lstndsl.train.loop import main
from lstndsl.train.progress import Console
from lstndsl.train.splits import STREAM_DISTORT, rng_for
from lstndsl.train.thetaloss import ThetaSupervision
from lstndsl.train.thetastats import collapse_reason, grid_distance, per_image

REPO = Path(__file__).resolve().parents[1]
LSTN = REPO / "specs" / "lstn.spec"


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return open_dataset("digits", seed=0)  # the 64×64 canvas


def test_the_ideal_theta_through_the_compiled_sampler_gives_back_the_centred_digit(
    digits: Dataset,
) -> None:
    stn = build(lstndsl.load(LSTN), input_size=64)
    assert isinstance(stn, SpatialTransformer)
    idx = digits.split["val"][:200]
    batch = digits.load(idx)
    # the same digits, centred, upright and unscaled: regenerate them from the same seed
    raw, _ = load_mnist_5k()
    made = distort_digits(raw, rng_for(0, STREAM_DISTORT))
    assert torch.equal(made.distorted[torch.from_numpy(idx)], digits.source.images[idx])
    centred = made.centred[torch.from_numpy(idx)].float().div(255).expand(-1, 3, -1, -1)
    assert batch.theta is not None
    with torch.no_grad():
        undone = stn.sample(batch.images, batch.theta)
    err = (undone - centred).abs().mean(dim=(1, 2, 3)) / centred.mean(dim=(1, 2, 3))
    before = (batch.images - centred).abs().mean(dim=(1, 2, 3)) / centred.mean(dim=(1, 2, 3))
    # two bilinear resamplings and uint8 rounding blur thin strokes a little; without undoing
    # the distortion the digit is elsewhere entirely
    assert err.mean() < 0.3 and before.mean() > 1.2
    assert bool((err < 0.6 * before).all())


def test_theta_loss_is_zero_at_the_ideal_theta_and_reaches_the_localization_net(
    digits: Dataset,
) -> None:
    theta = digits.source.theta
    assert theta is not None
    sup = ThetaSupervision(theta, digits.split["train"], labels=1.0, noise=0.0, seed=0)
    idx = torch.from_numpy(digits.split["train"][:16])
    loss, k = sup.loss(theta[idx].clone().requires_grad_(), idx, (64, 64))
    assert k == 16 and loss is not None and loss.item() == 0.0
    # validation images carry no θ label: the loss skips them
    assert sup.loss(theta[:4], torch.from_numpy(digits.split["val"][:4]), (64, 64)) == (None, 0)

    torch.manual_seed(0)
    model = build(lstndsl.load(LSTN), backbone="test_resnet", num_classes=10, input_size=64)
    assert isinstance(model, STNModel)
    stn = model.transformers["input"]
    optimizer = torch.optim.Adam(stn.parameters(), lr=1e-3)
    batch = digits.load(idx.numpy())
    first_conv = next(stn.localization.parameters())
    losses, reached = [], []
    for _ in range(6):
        loss, _ = sup.loss(stn.theta(batch.images), batch.indices, (64, 64))
        assert loss is not None
        optimizer.zero_grad()
        loss.backward()
        losses.append(loss.item())
        reached.append(float(first_conv.grad.abs().sum()) if first_conv.grad is not None else 0.0)
        optimizer.step()
    # the head's last layer starts at zero weights (identity θ), so the first backward stops
    # there; from the second step on the gradient reaches the first convolution
    assert reached[0] == 0.0 and all(r > 0 for r in reached[1:])
    assert losses[-1] < losses[0]
    # the loss is the recovery error in half-image units
    with torch.no_grad():
        pred = stn.theta(batch.images)
    pixels = grid_distance(pred, batch.theta, (64, 64)).mean().item()
    assert sup.loss(pred, batch.indices, (64, 64))[0].item() == pytest.approx(pixels / 32)


def test_weak_labels_are_a_fixed_share_of_the_training_images(digits: Dataset) -> None:
    theta = digits.source.theta
    assert theta is not None
    train = digits.split["train"]
    weak = ThetaSupervision(theta, train, labels=0.1, noise=0.0, seed=0)
    assert weak.count == 350 and int(weak.labelled.sum()) == 350
    assert bool(weak.labelled[torch.from_numpy(train)].sum() == 350)  # all in the train split
    again = ThetaSupervision(theta, train, labels=0.1, noise=0.0, seed=0)
    other = ThetaSupervision(theta, train, labels=0.1, noise=0.0, seed=1)
    assert torch.equal(weak.labelled, again.labelled)
    assert not torch.equal(weak.labelled, other.labelled)
    assert ThetaSupervision(theta, train, labels=0.0, noise=0.0, seed=0).count == 0
    noisy = ThetaSupervision(theta, train, labels=1.0, noise=0.05, seed=0)
    jitter = (noisy.targets - theta).flatten()
    assert abs(float(jitter.mean())) < 0.002 and float(jitter.std()) == pytest.approx(0.05, 0.02)
    assert torch.equal(
        noisy.targets, ThetaSupervision(theta, train, labels=1.0, noise=0.05, seed=0).targets
    )


def test_recovery_error_is_zero_at_ideal_and_grows_with_a_known_perturbation(
    digits: Dataset,
) -> None:
    theta = digits.source.theta
    assert theta is not None
    ideal = theta[:32]
    assert grid_distance(ideal, ideal, (64, 64)).abs().max().item() == 0.0
    for dx in (0.05, 0.1, 0.2):  # an x-shift of δ moves every sampling point δ·W/2 pixels
        moved = ideal.clone()
        moved[:, 0, 2] += dx
        assert grid_distance(moved, ideal, (64, 64)).tolist() == pytest.approx([32 * dx] * 32)
    # a homography with last row (0, 0, 1) is the affine map: same distances
    full = torch.cat([ideal, torch.tensor([0.0, 0.0, 1.0]).expand(32, 1, 3)], dim=1)
    moved = full.clone()
    moved[:, 1, 2] += 0.1
    assert grid_distance(moved, ideal, (64, 64)).tolist() == pytest.approx([3.2] * 32, abs=1e-4)


def test_theta_statistics_of_known_transforms() -> None:
    a = math.radians(30)
    theta = torch.tensor(
        [
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # identity
            [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]],  # zoom out 2×: 3/4 of the grid outside
            [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],  # 30°
            [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]],  # a quarter of the image to the right
        ]
    )
    s = per_image(theta, (64, 64))
    assert s["scale"].tolist() == pytest.approx([1, 2, 1, 1])
    assert s["rotation"].tolist() == pytest.approx([0, 0, 30, 0], abs=1e-4)
    assert s["translation"].tolist() == pytest.approx([0, 0, 0, 16])
    assert s["outside"].tolist() == pytest.approx([0, 0.75, s["outside"][2].item(), 0.25])
    assert 0 < s["outside"][2] < 0.25  # a rotated square pokes out at its corners
    kw: dict[str, Any] = {"max_outside": 0.9, "min_scale": 0.02}
    assert collapse_reason({"outside": 0.75, "scale": 2.0}, **kw) is None
    out = {"outside": 0.95, "scale": 5.0, "translation": 0.0}
    assert "zooms out to nothing" in (collapse_reason(out, **kw) or "")
    away = {"outside": 1.0, "scale": 0.3, "translation": 45.0}
    assert "looks beside the image (100% of" in (collapse_reason(away, **kw) or "")
    assert "zooms in to a point" in (collapse_reason({"outside": 0.0, "scale": 0.01}, **kw) or "")


def run(out: Path, data: Dataset, **changes: Any) -> dict[str, Any]:
    config = TrainConfig(
        **{
            "spec": str(LSTN),
            "backbone": "test_resnet",
            "image_size": 32,
            "max_epochs": 2,
            "limit_batches": 2,
            "pictures": 0,
            "out": str(out),
            **changes,
        }
    )
    result = main(config, dataset=data, console=Console(echo=False))
    assert result.exit_code == 0
    return result.summary


def numbers(out: Path) -> list[dict[str, Any]]:
    timing = {"time", "images_per_s"}
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def test_no_theta_labels_is_exactly_the_unsupervised_run(tmp_path: Path) -> None:
    data = open_dataset("digits", seed=0, image_size=32)
    plain = run(tmp_path / "plain", data)
    zero = run(tmp_path / "zero", data, theta_loss=1.0, theta_labels=0.0, theta_noise=0.1)
    assert numbers(tmp_path / "zero") == numbers(tmp_path / "plain")
    same = ("val_top1", "test_top1", "test_top5", "test_loss", "test_theta_error")
    assert {k: zero[k] for k in same} == {k: plain[k] for k in same}
    # and the supervised run is a different run, whose θ loss is logged
    supervised = run(tmp_path / "sup", data, theta_loss=1.0)
    records = numbers(tmp_path / "sup")
    assert all(r["train_theta_loss"] > 0 for r in records)
    assert all(r["train_loss"] > r["train_ce"] for r in records)
    assert supervised["theta_labels"] == 1.0 and zero["theta_labels"] == 0.0
    assert numbers(tmp_path / "plain")[0]["train_theta_loss"] is None


class FirstStep(BaseException):
    """Ends a run at its first optimizer step, once the gradients are recorded."""


def first_gradients(out: Path, data: Dataset, weight: float) -> dict[str, list[torch.Tensor]]:
    """The gradients the first optimizer step of a run with θ-loss weight `weight` receives,
    by parameter group (`stn`: every transformer's parameters; `backbone`)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    grads: dict[str, list[torch.Tensor]] = {}

    def record(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        for group in optimizer.param_groups:
            grads[group["name"]] = [
                torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in group["params"]
            ]
        raise FirstStep

    handle = register_optimizer_step_pre_hook(record)
    try:
        with pytest.raises(FirstStep):
            run(out, data, theta_loss=weight, max_epochs=1, limit_batches=1)
    finally:
        handle.remove()
    return grads


def test_the_theta_loss_weight_scales_the_gradient_the_transformer_receives(
    tmp_path: Path,
) -> None:
    data = open_dataset("digits", seed=0, image_size=32)
    g = {w: first_gradients(tmp_path / f"w{w}", data, w) for w in (0.0, 1.0, 3.0)}
    # the same first batch and initial weights: the runs differ by W × the θ loss's gradient
    for w in (1.0, 3.0):
        for a, b in zip(g[w]["backbone"], g[0.0]["backbone"], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-7)  # θ reaches no backbone weight
    once, thrice = (
        torch.cat([(a - b).flatten() for a, b in zip(g[w]["stn"], g[0.0]["stn"], strict=True)])
        for w in (1.0, 3.0)
    )
    assert once.norm() > 1e-3  # the θ loss reaches the transformer...
    assert float((thrice - 3 * once).norm() / thrice.norm()) < 1e-4  # ...3× as strongly at W=3


def test_the_step_adds_the_weighted_theta_loss_to_the_cross_entropy() -> None:
    """`step`'s loss is CE + W × θ loss, the θ loss of the input transformer's θ (0 without
    supervision, whatever W)."""
    from contextlib import nullcontext

    from lstndsl.train.step import step

    torch.manual_seed(0)
    model = build(lstndsl.load(LSTN), backbone="test_resnet", num_classes=3, input_size=32)
    assert isinstance(model, STNModel)
    x, y, idx = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), torch.arange(4)
    shifted = torch.eye(2, 3).repeat(4, 1, 1)
    shifted[:, 0, 2] = 0.2  # ideal θ away from the fresh transformer's identity
    sup = ThetaSupervision(shifted, idx.numpy(), labels=1.0, noise=0.0, seed=0)
    kw: dict[str, Any] = {"amp": nullcontext, "size": (32, 32), "supervision": sup}
    out = step(model, x, y, idx, theta_weight=3.0, supervised="input", **kw)
    assert out.theta_loss is not None and int(out.labelled) == 4
    # the fresh transformer samples at the identity: 0.2 units = 3.2 px = 0.2 half-images
    assert float(out.theta_loss.detach()) == pytest.approx(0.2, abs=1e-5)
    assert float(out.loss.detach()) == pytest.approx(float(out.ce.detach()) + 3 * 0.2, abs=1e-5)
    plain = step(model, x, y, idx, supervised="input", **kw)  # W defaults to 0
    assert float(plain.loss.detach()) == pytest.approx(float(plain.ce.detach()), abs=1e-6)
    unsupervised = step(model, x, y, idx, amp=nullcontext, size=(32, 32), theta_weight=3.0)
    assert unsupervised.theta_loss is None and torch.equal(unsupervised.loss, unsupervised.ce)
