"""The trainer's options beyond the paper: --optimizer, --schedule with --warmup-epochs,
--label-smoothing, --clip-grad. Torch's own classes, the learning rates they produce step by step
(the STN group keeping its ratio under every schedule), bad values as exit 2, what the plan line
says, and what --resume refuses to change. Exact resume under them: tests/test_train_resume.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.optim import lr_scheduler
from train_helpers import STN, write_folder

from lstndsl.train.config import TrainConfig
from lstndsl.train.optim import budget_steps, describe, make_optimizer, make_scheduler, update

FAST = ["--backbone", "test_resnet", "--image-size", "32", "--pictures", "0"]


def config(**changes: Any) -> TrainConfig:
    return TrainConfig(**{"spec": str(STN), "backbone": "test_resnet", **changes})


def two_groups(mult: float = 0.5, lr: float = 0.1) -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD(
        [{"params": [a], "lr": lr, "name": "backbone"}, {"params": [b], "lr": lr * mult}], lr=lr
    )


def lrs(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[list[float]]:
    """The lr of every group at each of `steps` optimizer steps."""
    seen = []
    for _ in range(steps):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return seen


# --- the optimizers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "expect"),
    [
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999), "weight_decay": 0.0}),
        ("adamw", torch.optim.AdamW, {"betas": (0.9, 0.999), "weight_decay": 0.05}),
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.05}),
    ],
)
def test_each_optimizer_is_torchs_own_over_the_two_groups(
    name: str, cls: type, expect: dict[str, Any]
) -> None:
    from lstndsl.train.model import build_model

    wd = 0.0 if name == "adam" else 0.05
    cfg = config(optimizer=name, lr=0.02, stn_lr_mult=0.25, weight_decay=wd)
    model = build_model(cfg, STN.read_text(), 10, 32)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    assert type(opt) is cls
    assert [g["name"] for g in opt.param_groups] == ["backbone", "stn"]
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.005]
    for key, value in expect.items():
        assert opt.param_groups[0][key] == value
    assert opt.param_groups[0]["fused"] is True


def test_sgd_momentum_is_given_or_0_9() -> None:
    assert config(optimizer="sgd").sgd_momentum == 0.9
    assert config(optimizer="sgd", momentum=0.5).sgd_momentum == 0.5


# --- the schedules ------------------------------------------------------------------------------


def test_warm_up_ramps_linearly_then_the_lr_stays() -> None:
    opt = two_groups()
    sched = make_scheduler(opt, config(warmup_epochs=1), steps_per_epoch=4)
    assert isinstance(sched, lr_scheduler.LinearLR)
    seen = lrs(opt, sched, 7)
    assert [s[0] for s in seen] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1])
    assert all(s[1] == pytest.approx(s[0] / 2) for s in seen)


def test_cosine_after_warm_up_ends_at_zero_with_the_budget() -> None:
    cfg = config(schedule="cosine", warmup_epochs=1, max_epochs=4)
    opt = two_groups()
    sched = make_scheduler(opt, cfg, steps_per_epoch=4)
    assert isinstance(sched, lr_scheduler.SequentialLR)
    assert budget_steps(cfg, 4) == 16
    seen = lrs(opt, sched, 17)
    horizon = 12  # 16 steps of budget, 4 of them warm-up
    want = [0.025, 0.05, 0.075, 0.1] + [
        0.05 * (1 + math.cos(math.pi * t / horizon)) for t in range(horizon + 1)
    ]
    assert [s[0] for s in seen] == pytest.approx(want, abs=1e-12)
    assert seen[-1][0] == pytest.approx(0.0, abs=1e-12)
    assert all(s[1] == pytest.approx(s[0] / 2, abs=1e-12) for s in seen)


def test_cosine_over_a_step_budget() -> None:
    cfg = config(schedule="cosine", max_epochs=100, max_steps=10)
    opt = two_groups(mult=0.0)  # a frozen STN group stays frozen
    sched = make_scheduler(opt, cfg, steps_per_epoch=4)
    assert isinstance(sched, lr_scheduler.CosineAnnealingLR) and sched.T_max == 10
    seen = lrs(opt, sched, 11)
    assert [s[0] for s in seen] == pytest.approx(
        [0.05 * (1 + math.cos(math.pi * t / 10)) for t in range(11)], abs=1e-12
    )
    assert all(s[1] == 0.0 for s in seen)


def test_step_multiplies_by_gamma_every_step_epochs() -> None:
    cfg = config(schedule="step", step_epochs=2, step_gamma=0.5)
    opt = two_groups(mult=3.0)
    sched = make_scheduler(opt, cfg, steps_per_epoch=3)
    assert isinstance(sched, lr_scheduler.StepLR)
    seen = lrs(opt, sched, 13)
    assert [s[0] for s in seen] == pytest.approx([0.1] * 6 + [0.05] * 6 + [0.025])
    assert all(s[1] == pytest.approx(3 * s[0]) for s in seen)


def test_the_paper_has_no_scheduler() -> None:
    assert make_scheduler(two_groups(), config(), steps_per_epoch=4) is None
    assert config().step_schedule == (30, 0.1)  # --schedule step alone: torchvision's


# --- the step: clipping, smoothing -----------------------------------------------------------


@pytest.mark.parametrize("scaled", [False, True], ids=["fp32", "fp16-scaler"])
def test_clip_grad_bounds_the_global_norm_keeping_the_direction(scaled: bool) -> None:
    """The clip sees the true gradients: under fp16's scaler (loss × 1024) they are unscaled
    first, and the step and the clipped gradients are the same as without it."""
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    v = torch.nn.Parameter(torch.tensor([12.0]))
    opt = torch.optim.SGD([w, v], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=scaled)
    loss = (w**2).sum() / 2 + (v**2).sum() / 2  # gradient (3, 4, 12): norm 13
    update(opt, scaler, loss, params=[w, v], clip_grad=1.3, scheduler=None)
    assert w.grad is not None and v.grad is not None
    assert w.grad.tolist() == pytest.approx([0.3, 0.4], rel=1e-5)
    assert v.grad.tolist() == pytest.approx([1.2], rel=1e-5)
    assert w.tolist() == pytest.approx([2.97, 3.96], rel=1e-5)
    update(
        opt,
        scaler,
        (w**2).sum() / 2 + (v**2).sum() / 2,
        params=[w, v],
        clip_grad=None,
        scheduler=None,
    )
    assert w.grad.tolist() == pytest.approx([2.97, 3.96], rel=1e-5)  # no clip: untouched


def test_label_smoothing_is_the_training_loss_only() -> None:
    from lstndsl.train.step import step

    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)

    def forward(x: torch.Tensor, *, return_theta: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        return net(x), {}

    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    wrapper = type("Net", (torch.nn.Module,), {"forward": lambda self, x, **kw: forward(x, **kw)})
    out = step(
        wrapper(), x, y, torch.arange(5), amp=torch.no_grad, size=(4, 4), label_smoothing=0.2
    )
    logp = F.log_softmax(net(x), dim=1)
    nll = -logp[torch.arange(5), y].mean()
    want = 0.8 * nll - 0.2 * logp.mean(dim=1).mean()
    assert out.ce.item() == pytest.approx(want.item(), rel=1e-6)


# --- the CLI: values, the plan line, resume ---------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--optimizer", "lion"], "invalid choice: 'lion'"),
        (["--schedule", "linear"], "invalid choice: 'linear'"),
        (["--momentum", "0.9"], "--momentum is SGD's: it needs --optimizer sgd"),
        (["--optimizer", "sgd", "--momentum", "1"], "--momentum must lie in [0, 1)"),
        (["--warmup-epochs", "-1"], "--warmup-epochs must be non-negative"),
        (["--step-epochs", "5"], "they need --schedule step"),
        (["--schedule", "step", "--step-epochs", "0"], "--step-epochs must be at least 1"),
        (["--schedule", "step", "--step-gamma", "1.5"], "--step-gamma must lie in (0, 1]"),
        (["--label-smoothing", "1"], "--label-smoothing must lie in [0, 1)"),
        (["--clip-grad", "0"], "--clip-grad must be positive"),
        (["--clip-grad", "nan"], "--clip-grad must be finite"),
    ],
)
def test_bad_values_are_exit_2(cli: Callable[..., Any], flags: list[str], message: str) -> None:
    result = cli("train", STN, *FAST, *flags)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_the_plan_line_names_optimizer_and_schedule() -> None:
    paper = describe(config(), steps_per_epoch=4)
    assert paper == "Adam lr 0.001 (β 0.9, 0.999), weight decay 0; constant lr"
    beyond = config(
        optimizer="sgd",
        lr=0.05,
        schedule="cosine",
        warmup_epochs=2,
        max_epochs=10,
        label_smoothing=0.1,
        clip_grad=5.0,
    )
    assert describe(beyond, steps_per_epoch=4) == (
        "SGD lr 0.05 (momentum 0.9), weight decay 0; linear warm-up over 2 epochs (8 steps), "
        "then cosine to 0 over 32 steps, updated every step; label smoothing 0.1; gradient norm "
        "clipped at 5"
    )
    stepped = config(optimizer="adamw", weight_decay=0.05, schedule="step", step_epochs=3)
    assert describe(stepped, steps_per_epoch=4) == (
        "AdamW lr 0.001 (β 0.9, 0.999), weight decay 0.05; step: lr × 0.1 every 3 epochs, "
        "updated every step"
    )


def one_epoch(base: Path, *flags: str) -> list[str]:
    """argv of a one-epoch run on the tiny folder data (2 batches of 4) into base/run."""
    data = write_folder(base / "data")
    return [
        "train",
        str(STN),
        *FAST,
        *("--dataset", f"folder:{data}", "--batch-size", "4", "--limit-batches", "2"),
        *("--max-epochs", "1", *flags, "--out", str(base / "run")),
    ]


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A finished one-epoch run under SGD + cosine on the tiny folder data (2 batches of 4)."""
    from lstndsl.cli import main

    base = tmp_path_factory.mktemp("cosine")
    args = one_epoch(base, "--optimizer", "sgd", "--schedule", "cosine")
    assert main(args) == 0
    return base / "run", args


def test_resume_refuses_another_optimizer_or_schedule(
    cli: Callable[..., Any], cosine_run: tuple[Path, list[str]]
) -> None:
    _, args = cosine_run
    result = cli(*args, "--resume", "--optimizer", "adam", "--schedule", "step")
    assert result.code == 2
    assert (
        "--resume cannot change the run's optimizer 'sgd' -> 'adam', schedule 'cosine' -> "
        "'step'" in result.err
    )


def test_resume_under_cosine_refuses_a_new_budget(
    cli: Callable[..., Any], cosine_run: tuple[Path, list[str]]
) -> None:
    _, args = cosine_run
    result = cli(*args, "--resume", "--max-epochs", "3")
    assert result.code == 2
    assert (
        "--resume cannot change the run's max_epochs 1 -> 3 (the cosine schedule anneals over "
        "the budget the run started with)" in result.err
    )


def test_resume_under_a_step_schedule_may_extend_the_budget(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    args = one_epoch(tmp_path, "--schedule", "step", "--step-epochs", "1", "--step-gamma", "0.5")
    assert cli(*args).code == 0
    result = cli(*args, "--resume", "--max-epochs", "2")
    assert result.code == 0, result.err
    import json

    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["lr"] for line in lines] == pytest.approx([0.0005, 0.00025])
