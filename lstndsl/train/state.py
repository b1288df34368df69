"""What one training run holds while it runs: the `Run` (config, data, model, optimizer, device,
counters), the `Progress` counters a resume restores, the `RunResult` `main` returns, and the
`StopTraining` a failure raises.

What it is: plain dataclasses, no behaviour beyond small derived values. What it is not: the
loop (loop.py) or what is printed (report.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compiler.stn import STNModel
from lstndsl.train import distributed as dist
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import Dataset
from lstndsl.train.progress import Console, EpochTimer
from lstndsl.train.tboard import Board
from lstndsl.train.thetaloss import ThetaSupervision


class StopTraining(Exception):
    """The run cannot go on (non-finite loss or weights, θ collapse); `.reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Progress:
    """Counters a resumed run restores: what has been done so far."""

    #: finished epochs
    epoch: int = 0
    #: batches done in the unfinished epoch `epoch + 1`
    batch_in_epoch: int = 0
    #: optimizer steps so far
    step: int = 0
    #: one record per finished epoch (the metrics.jsonl lines); the early-stopping state
    history: list[dict[str, Any]] = field(default_factory=list)
    #: training sums of the unfinished epoch (all ranks reduced)
    partial: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    best_val_top1: float | None = None
    #: wall seconds of this run so far (all sessions), and training images / seconds so far
    elapsed: float = 0.0
    train_images: float = 0.0
    train_seconds: float = 0.0

    def state(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Run:
    """Everything one run works with (built by `main`, passed to the epoch functions)."""

    config: TrainConfig
    ctx: dist.DistContext
    device: torch.device
    console: Console
    out: Path
    dataset: Dataset
    spec_text: str | None
    model: STNModel  # what compiler.build returned (model_without_ddp)
    net: nn.Module  # the model, DDP-wrapped under torchrun: what training calls
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    supervision: ThetaSupervision | None
    #: the per-step learning-rate schedule (None: constant lr, the paper's)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    #: TensorBoard's event writer (rank 0; a no-op until opened, elsewhere and after a failure)
    board: Board = field(default_factory=Board)
    progress: Progress = field(default_factory=Progress)
    #: the texts of the specs after the first (several transformers), in order
    more_spec_texts: tuple[str, ...] = ()
    timer: EpochTimer | None = None
    #: MACs for one image by convention (None when no counter), and how they were counted
    macs: dict[str, int] | None = None
    macs_note: str = ""
    #: when this session started (perf_counter) and the run's wall seconds before it
    session_start: float = 0.0
    elapsed_before: float = 0.0
    #: seconds of this session's first (compiling) step under --compile; None until it ran,
    #: 0.0 without --compile (excluded from training time and images/s)
    warmup_seconds: float | None = 0.0

    def wall_time(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.session_start

    @property
    def size(self) -> tuple[int, int]:
        return (self.dataset.image_size, self.dataset.image_size)

    def train_batches(self) -> int:
        n = self.dataset.num_batches(
            "train", self.config.batch_size, world_size=self.ctx.world_size
        )
        return min(n, self.config.limit_batches) if self.config.limit_batches else n


@dataclass
class RunResult:
    out: Path
    summary: dict[str, Any]
    #: 0 finished, 1 stopped by a failure (non-finite loss, θ collapse)
    exit_code: int
