"""The optimizer, the learning-rate schedule and the update step, from torch's own classes.

What it is: `make_optimizer` (torch.optim.Adam, AdamW or SGD over the model's two parameter
groups: backbone at lr, the spatial transformers at lr × stn_lr_mult), `make_scheduler`
(torch.optim.lr_scheduler: CosineAnnealingLR or StepLR, after a LinearLR warm-up joined by
SequentialLR; None for a constant lr, the paper's), `update` (backward, unscale, clip the global
gradient norm, step, and advance the schedule), `describe` (the plan line's words) and
`protocol` (a sweep table's few words).

The schedule advances after every optimizer step, not every epoch: a warm-up of one epoch
ramps over that epoch's steps, and a `--max-steps` budget ends a cosine at 0. Every schedule
multiplies each group's own initial lr by the same factor, so the STN group keeps its ratio.
Warm-up: step i (0-based) of W warm-up steps uses lr × (i + 1) / W. Cosine: from lr to 0 over
the budget's steps after warm-up (max_epochs × steps per epoch, capped by max_steps; fixed at
the run's start, so a resume may not change the budget). Step: lr × gamma every step_epochs
epochs counted from the end of warm-up (torchvision's reference does both the same way).
The scheduler's state travels in last.pt (saves.py); resume is exact.
What it is not: the forward and the loss (step.py), the loop (loop.py), the knobs (config.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim import lr_scheduler

from compiler.stn import STNModel
from lstndsl.train.config import TrainConfig
from lstndsl.train.device import adam_options
from lstndsl.train.model import param_groups

Scheduler = lr_scheduler.LRScheduler


def make_optimizer(
    model: STNModel, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """The optimizer the config names, over the model's parameter groups."""
    groups = param_groups(model, config.lr, config.stn_lr_mult)
    fused = adam_options(device)  # SGD has the same fused kernels (CUDA and the CPU)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.sgd_momentum,
            weight_decay=config.weight_decay,
            **fused,
        )
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, **fused)


def budget_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps the budget allows: max_epochs × steps per epoch, capped by max_steps."""
    total = config.max_epochs * steps_per_epoch
    return min(total, config.max_steps) if config.max_steps is not None else total


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    return config.warmup_epochs * steps_per_epoch


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> Scheduler | None:
    """The per-step schedule (None: constant lr). Building it sets each group's lr to its
    first step's value."""
    warm = warmup_steps(config, steps_per_epoch)
    main: Scheduler | None = None
    if config.schedule == "cosine":
        horizon = max(1, budget_steps(config, steps_per_epoch) - warm)
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=horizon, eta_min=0.0)
    elif config.schedule == "step":
        epochs, gamma = config.step_schedule
        main = lr_scheduler.StepLR(optimizer, step_size=epochs * steps_per_epoch, gamma=gamma)
    if warm <= 1:  # one warm-up step at lr / 1 is no warm-up
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / warm, total_iters=warm - 1)
    if main is None:
        return ramp
    # SequentialLR's constructor undoes the step its second member's constructor took
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warm])


def update(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: torch.Tensor,
    *,
    params: Iterable[nn.Parameter],
    clip_grad: float | None,
    scheduler: Scheduler | None,
) -> None:
    """One optimizer step from `loss`: backward (scaled under fp16), clip the global gradient
    norm of `params` to `clip_grad` (on the unscaled gradients), step, advance the schedule.
    Nothing is read back to the host."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, clip_grad)
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        scheduler.step()


def describe(config: TrainConfig, steps_per_epoch: int) -> str:
    """The optimizer and schedule in the plan line's words."""
    if config.optimizer == "sgd":
        opt = f"SGD lr {config.lr:g} (momentum {config.sgd_momentum:g})"
    else:
        name = "AdamW" if config.optimizer == "adamw" else "Adam"
        opt = f"{name} lr {config.lr:g} (β {config.betas[0]:g}, {config.betas[1]:g})"
    opt += f", weight decay {config.weight_decay:g}"
    warm = warmup_steps(config, steps_per_epoch)
    ramp = (
        f"linear warm-up over {config.warmup_epochs} epoch{'s' * (config.warmup_epochs != 1)} "
        f"({warm} steps)"
        if warm > 1
        else ""
    )
    if config.schedule == "cosine":
        horizon = max(1, budget_steps(config, steps_per_epoch) - warm)
        sched = f"cosine to 0 over {horizon} steps"
    elif config.schedule == "step":
        epochs, gamma = config.step_schedule
        sched = f"step: lr × {gamma:g} every {epochs} epoch{'s' * (epochs != 1)}"
    else:
        sched = "constant lr"
    if ramp:
        sched = f"{ramp}, then {sched}"
    if ramp or config.schedule != "none":
        sched += ", updated every step"
    extra = ""
    if config.label_smoothing:
        extra += f"; label smoothing {config.label_smoothing:g}"
    if config.clip_grad is not None:
        extra += f"; gradient norm clipped at {config.clip_grad:g}"
    return f"{opt}; {sched}{extra}"


def protocol(config: TrainConfig) -> str:
    """The optimizer and schedule in a few words (a sweep's table notes): "Adam lr 0.001",
    "SGD lr 0.05, cosine schedule after 2 warm-up epochs, label smoothing 0.1"."""
    name = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[config.optimizer]
    parts = [f"{name} lr {config.lr:g}"]
    if config.weight_decay:
        parts[0] += f" (weight decay {config.weight_decay:g})"
    if config.schedule != "none":
        parts.append(f"{config.schedule} schedule")
    if config.warmup_epochs:
        parts.append(f"{config.warmup_epochs} warm-up epoch{'s' * (config.warmup_epochs != 1)}")
    if config.label_smoothing:
        parts.append(f"label smoothing {config.label_smoothing:g}")
    if config.clip_grad is not None:
        parts.append(f"gradient norm clipped at {config.clip_grad:g}")
    return ", ".join(parts)
