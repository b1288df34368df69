"""What a run writes into its checkpoints and reads back on `--resume`: `save_last` (everything
an exact resume needs), `save_best` (the selected weights) and `restore`.

What it is: the payloads, built from a `Run`. What it is not: the file format, atomic writes or
the RNG state (checkpoint.py), nor when to write (loop.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lstndsl.errors import UsageError
from lstndsl.train import checkpoint as ckpt
from lstndsl.train import distributed as dist
from lstndsl.train import resume
from lstndsl.train.splits import split_fingerprint
from lstndsl.train.state import Progress, Run, StopTraining


def payload(run: Run) -> dict[str, Any]:
    """What both checkpoints carry: the model and what it takes to rebuild it."""
    return {
        "format": ckpt.FORMAT,
        "config": run.config.to_json(),
        "spec_text": run.spec_text,
        "more_spec_texts": list(run.more_spec_texts),
        "num_classes": run.dataset.num_classes,
        "image_size": run.dataset.image_size,
        "class_names": list(run.dataset.class_names),
        "model": run.model.state_dict(),
        "split_fingerprint": split_fingerprint(run.dataset.split),
    }


def finite_weights(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def save_last(run: Run) -> None:
    """Write `last.pt` (rank 0), refusing weights that are no longer finite."""
    if not finite_weights(run.model):
        raise StopTraining(
            f"the weights stopped being finite by step {run.progress.step}; "
            + resume.kept_note(run.out)
        )
    run.progress.elapsed = run.wall_time()
    if run.ctx.is_main:
        data = payload(run)
        data.update(
            optimizer=run.optimizer.state_dict(),
            scheduler=None if run.scheduler is None else run.scheduler.state_dict(),
            scaler=run.scaler.state_dict(),
            progress=run.progress.state(),
            rng=ckpt.rng_state(),
        )
        ckpt.save_atomic(data, run.out / ckpt.LAST)
    dist.barrier()


def save_best(run: Run) -> None:
    if run.ctx.is_main:
        data = payload(run)
        data["epoch"] = run.progress.best_epoch
        data["val_top1"] = run.progress.best_val_top1
        ckpt.save_atomic(data, run.out / ckpt.BEST)
    dist.barrier()


def restore(run: Run, data: dict[str, Any]) -> None:
    """Put a run back where `last.pt` left it."""
    run.model.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    if run.scheduler is not None:  # after the optimizer: its groups carry the current lr
        state = data.get("scheduler")
        if not isinstance(state, dict):
            raise UsageError(
                f"{run.out / ckpt.LAST} carries no learning-rate schedule state, but the run's "
                f"config has schedule {run.config.schedule}, {run.config.warmup_epochs} warm-up "
                "epochs"
            )
        run.scheduler.load_state_dict(state)
    if data.get("scaler"):
        run.scaler.load_state_dict(data["scaler"])
    run.progress = Progress(**data["progress"])
    if not run.ctx.is_main:
        run.progress.partial = {}  # rank 0 carries the reduced partial sums
    ckpt.set_rng_state(data["rng"])
