"""Setting a run up, before its first epoch: its data with the split, where the model runs,
its θ supervision, and a new run directory's first files.

What it is not: the run directory's claim and checks (rundir.py, resume.py), building the model
(model.py) or training (loop.py, which calls these).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from compiler.stn import STNModel
from lstndsl.errors import UsageError
from lstndsl.train import distributed as dist
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import Dataset, DatasetError, open_dataset
from lstndsl.train.device import use_channels_last
from lstndsl.train.inputs import CONFIG, METRICS, resolve_image_size, spec_copy_names
from lstndsl.train.thetaloss import ThetaSupervision


def open_data(
    config: TrainConfig, out: Path, saved: dict[str, Any] | None, dataset: Dataset | None
) -> Dataset:
    """The run's data with its split: the run directory's split.json on a resume, else
    --split-file, else drawn from the seed (a sweep hands in the dataset it opened)."""
    try:
        split_file = out / "split.json" if saved is not None else config.split_file
        if dataset is None:
            dataset = open_dataset(
                config.dataset,
                seed=config.seed,
                image_size=resolve_image_size(config),
                split_file=split_file,
            )
        elif split_file is not None:
            from lstndsl.train.data import load_split

            dataset = dataset.with_split(load_split(split_file, dataset), str(split_file))
    except DatasetError as err:
        raise UsageError(err.message) from err
    if config.theta_loss > 0 and not dataset.has_theta:
        raise UsageError(
            f"--theta-loss needs images whose transforms are known (the embedded digits); "
            f"{config.dataset} has none"
        )
    return dataset


def place(
    model: STNModel, config: TrainConfig, ctx: dist.DistContext, device: torch.device, size: int
) -> tuple[STNModel, nn.Module]:
    """The model on its device and memory format, and what training calls (DDP-wrapped under
    torchrun, compiled with --compile)."""
    model = model.to(device)
    if use_channels_last(device, config.channels_last, size):
        model = model.to(memory_format=torch.channels_last)
    net = dist.wrap(model, ctx, device)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    return model, net


def theta_supervision(
    config: TrainConfig, model: STNModel, dataset: Dataset
) -> ThetaSupervision | None:
    """The θ labels of the input transformer's supervision, when the run asks for it."""
    if not (config.theta_supervised and model.input_transformer is not None):
        return None
    assert dataset.source.theta is not None
    return ThetaSupervision(
        dataset.source.theta,
        dataset.split["train"],
        labels=config.theta_labels,
        noise=config.theta_noise,
        seed=config.seed,
    )


def first_files(out: Path, config: TrainConfig, dataset: Dataset, texts: list[str]) -> None:
    """A new run's directory: config.json, split.json, the spec copies, an empty
    metrics.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(config.dumps(), encoding="utf-8")
    dataset.write_split(out)
    for name, text in zip(spec_copy_names(config.spec_paths), texts, strict=True):
        (out / name).write_text(text, encoding="utf-8")
    (out / METRICS).write_text("", encoding="utf-8")
