"""Benchmark: training images/s of spatial transformer + backbone on this CPU, fed by our trainer's
data path against the same model fed by the authors' per-image PIL-resize DataLoader.

    .venv/bin/python bench/train_pipeline.py                 # about 5 minutes on 2 idle cores
    .venv/bin/python bench/train_pipeline.py --quick         # about 2 minutes, noisier
    .venv/bin/python bench/train_pipeline.py --backbone resnet50 --spec specs/stn.spec

What one training step is, for every contender: take a batch of 16, forward through L-STN +
backbone, cross-entropy, backward, Adam step (exactly what `lstndsl train` does per step). The
contenders differ only in where the batch comes from:
- ours: `Dataset.batches` (uint8 images in memory, gathered and resized per batch with two
  matrix products, normalized once) — the trainer's path;
- naive: `DataLoader(NaivePILDataset)` (per image: PIL bilinear resize, ToTensor, Normalize;
  shuffled, collated), with 0 and 2 worker processes — the authors' notebooks' path.
Settings: the embedded digits resized from their 64×64 canvas to 224 (what CIFAR-10's 32→224
costs in the paper's protocol), and at their own 64×64 (the default `lstndsl train` run).
Each setting also reports the data path alone (batches drained, no model), which shows how much
of a step the data costs. Contenders take turns step by step and each reports its median step,
so a shared machine's load, which drifts over seconds, hits all of them alike. Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial
from itertools import cycle
from pathlib import Path

import torch
import torch.nn.functional as F

import lstndsl
from compiler.build import build
from lstndsl.train.baseline import naive_baseline
from lstndsl.train.data import Dataset, open_dataset

REPO = Path(__file__).resolve().parents[1]
BATCH = 16
#: the ceiling: the same step on one batch already in memory (no data path at all)
MODEL_ONLY = "model alone (one batch reused)"


def race(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median time in seconds of each contender over `rounds` rounds; within a round the
    contenders take turns (in alternating order), so a shared machine's load, which drifts
    over seconds, hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        names = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in names:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def ours(dataset: Dataset) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        for batch in dataset.batches("train", BATCH, epoch=epoch):
            yield batch.images, batch.labels
        epoch += 1


def naive(dataset: Dataset, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    loader = torch.utils.data.DataLoader(
        naive_baseline(dataset, "train"),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    yield from cycle_loader(loader)


def cycle_loader(
    loader: torch.utils.data.DataLoader[tuple[torch.Tensor, int]],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for _ in cycle([None]):
        yield from loader


def trainer(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> Callable[[Iterator[tuple[torch.Tensor, torch.Tensor]], int], None]:
    def steps(source: Iterator[tuple[torch.Tensor, torch.Tensor]], count: int) -> None:
        for _ in range(count):
            images, labels = next(source)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return steps


def drain(source: Iterator[tuple[torch.Tensor, torch.Tensor]], count: int) -> None:
    for _ in range(count):
        next(source)


def setting(
    spec: lstndsl.Spec, backbone: str, size: int | None, steps: int, workers: list[int]
) -> list[tuple[str, float, float]]:
    """[(pipeline, training images/s, data-only images/s)] for one image size."""
    dataset = open_dataset("digits", seed=0, image_size=size)
    torch.manual_seed(0)
    model = build(spec, backbone=backbone, num_classes=10, input_size=dataset.image_size)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = trainer(model, optimizer)
    sources = {"ours (Dataset.batches)": ours(dataset)}
    for w in workers:
        sources[f"naive PIL DataLoader, {w} workers"] = naive(dataset, w)
    fixed = next(ours(dataset))
    sources[MODEL_ONLY] = cycle([fixed])
    # warm up: the first steps at a new shape build oneDNN kernels and are many times slower
    step(sources["ours (Dataset.batches)"], 4)
    for source in sources.values():  # and start the workers, fill the first batches
        step(source, 1)
    train = race({n: partial(step, s, 1) for n, s in sources.items()}, steps)
    data = race({n: partial(drain, s, 8) for n, s in sources.items()}, steps)
    return [(n, BATCH / train[n], 8 * BATCH / data[n]) for n in sources]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spec", default=str(REPO / "specs" / "lstn.spec"))
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = lstndsl.load(args.spec)
    load = os.getloadavg()[0]
    print(
        f"training images/s, {spec.name} + {args.backbone}, batch {BATCH}, Adam; "
        f"{torch.get_num_threads()} torch threads, load average {load:.1f} at start; "
        "median of steps taken in turns"
    )
    settings = (
        (224, "digits 64→224 (the paper's resize)", 4 if args.quick else 12),
        (None, "digits 64×64 (the default run)", 10 if args.quick else 40),
    )
    for size, label, steps in settings:
        rows = setting(spec, args.backbone, size, steps, [0, 2])
        print(f"\n{label}: {steps} steps each")
        print(f"  {'pipeline':36} {'train img/s':>12} {'data-only img/s':>16}")
        for name, rate, data in rows:
            shown = "-" if name == MODEL_ONLY else f"{data:.0f}"
            print(f"  {name:36} {rate:12.2f} {shown:>16}")
        base = rows[0][1]
        for name, rate, _ in rows[1:]:
            if name != MODEL_ONLY:
                print(f"  ours / {name}: {base / rate:.2f}× training throughput")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
