"""Benchmark: training images/s of the authors' pipeline against lstndsl's trainer, by default
and with each fast-path flag, side by side and interleaved in one run.

    .venv/bin/python bench/train_speed.py                          # 64, 128, 224 px; 3 specs
    .venv/bin/python bench/train_speed.py --sizes 224 --specs lstn --rounds 6 --steps 2
    .venv/bin/python bench/train_speed.py --compile                 # adds the torch.compile arms

One training step, for every contender: a batch of 16 digits (resized from their 64 px canvas
to SIZE), forward through the spatial transformer + resnet18, cross-entropy, backward, Adam
(lr 1e-3). The contenders:
- authors: per-image PIL bilinear resize, ToTensor, Normalize, DataLoader (0 workers,
  shuffled), fp32 eager NCHW, torch's default Adam (the per-parameter loop on the CPU);
- lstndsl default: `Dataset.batches` (in-memory uint8, batched resize) and the trainer's own
  step (`lstndsl.train.step.step` + backward + fused Adam), memory format by the trainer's auto
  rule (channels-last on the CPU from 128 px), fp32, eager: what `lstndsl train` runs;
- the same with one flag: `--amp bf16`, `--channels-last`, `--no-channels-last`, `--compile`,
  and the combinations `--amp bf16 --channels-last` (and with `--compile`).
Arms with `--compile` are compiled (and warmed up) before the race; their compile time is
printed apart, never counted as training time.

Then the spatial transformer alone (L-STN, STN and V-STN; fp32 eager NCHW; a batch of 16 at
SIZE): one training step of the transformer's output against a fixed target (MSE), backward,
Adam; the paper's claim is L-STN's FLOPs at a third of STN's.

How it is timed: every round runs every contender for `--steps` steps, in alternating order;
each contender reports the median over `--rounds` rounds, so the load of a shared machine,
which drifts over seconds, hits all of them alike. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import cycle
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

import lstndsl
from compiler.build import build
from lstndsl.train.baseline import naive_baseline
from lstndsl.train.data import Dataset, open_dataset
from lstndsl.train.device import adam_options, autocast, use_channels_last
from lstndsl.train.step import step

REPO = Path(__file__).resolve().parents[1]
BATCH = 16
CPU = torch.device("cpu")
AUTHORS = "authors (PIL DataLoader, fp32 NCHW)"
K = TypeVar("K")


@dataclass(frozen=True)
class Flags:
    """One lstndsl arm: the trainer's flags."""

    amp: str | None = None
    channels_last: bool | None = None
    compile: bool = False

    def label(self) -> str:
        parts = []
        if self.amp:
            parts.append(f"--amp {self.amp}")
        if self.channels_last is True:
            parts.append("--channels-last")
        if self.channels_last is False:
            parts.append("--no-channels-last")
        if self.compile:
            parts.append("--compile")
        return "lstndsl " + (" ".join(parts) if parts else "default")


def arms(with_compile: bool) -> list[Flags]:
    out = [
        Flags(),
        Flags(amp="bf16"),
        Flags(channels_last=True),
        Flags(channels_last=False),
        Flags(amp="bf16", channels_last=True),
    ]
    if with_compile:
        out += [Flags(compile=True), Flags(amp="bf16", channels_last=True, compile=True)]
    return out


def race(contenders: dict[K, Callable[[], object]], rounds: int) -> dict[K, float]:
    """Median seconds per call of each contender; turns alternate in order every round."""
    times: dict[K, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        names = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in names:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def ours(dataset: Dataset) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        for batch in dataset.batches("train", BATCH, epoch=epoch):
            yield batch.images, batch.labels, batch.indices
        epoch += 1


def authors_batches(dataset: Dataset) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    loader = torch.utils.data.DataLoader(
        naive_baseline(dataset, "train"),
        batch_size=BATCH,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in cycle([None]):
        yield from loader


def fresh_model(spec: lstndsl.Spec, size: int) -> nn.Module:
    torch.manual_seed(0)
    model = build(spec, backbone="resnet18", num_classes=10, input_size=size)
    return model.train()


def authors_arm(spec: lstndsl.Spec, dataset: Dataset, size: int) -> Callable[[int], None]:
    model = fresh_model(spec, size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    source = authors_batches(dataset)

    def run(count: int) -> None:
        for _ in range(count):
            images, labels = next(source)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def lstndsl_arm(
    spec: lstndsl.Spec, dataset: Dataset, size: int, flags: Flags
) -> Callable[[int], None]:
    """The trainer's step with these flags (what train_one_epoch does per batch)."""
    model = fresh_model(spec, size)
    last = use_channels_last(CPU, flags.channels_last, size)
    if last:
        model = model.to(memory_format=torch.channels_last)
    net: Any = model
    if flags.compile:
        net = torch.compile(net)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **adam_options(CPU))
    amp = autocast(CPU, flags.amp)
    source = ours(dataset)

    def run(count: int) -> None:
        for _ in range(count):
            images, labels, indices = next(source)
            if last:
                images = images.contiguous(memory_format=torch.channels_last)
            out = step(net, images, labels, indices, amp=amp, size=(size, size))
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()

    return run


def transformer_arm(spec: lstndsl.Spec, size: int) -> Callable[[int], None]:
    model = fresh_model(spec, size)
    stn = cast(nn.Module, next(iter(model.transformers.values())))
    optimizer = torch.optim.Adam(stn.parameters(), lr=1e-3, **adam_options(CPU))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, size, size, generator=gen)
    target = torch.randn(BATCH, 3, size, size, generator=gen)

    def run(count: int) -> None:
        for _ in range(count):
            loss = F.mse_loss(stn(x), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def setting(
    specs: dict[str, lstndsl.Spec], size: int, args: argparse.Namespace
) -> dict[tuple[str, str], float]:
    """Seconds per step of every (spec, contender) at this size, raced together."""
    dataset = open_dataset("digits", seed=0, image_size=size)
    contenders: dict[tuple[str, str], Callable[[int], None]] = {}
    for name, spec in specs.items():
        contenders[(name, AUTHORS)] = authors_arm(spec, dataset, size)
        for flags in arms(args.compile):
            contenders[(name, flags.label())] = lstndsl_arm(spec, dataset, size, flags)
        contenders[(name, "transformer alone")] = transformer_arm(spec, size)
    for key, run in contenders.items():  # warm-up: oneDNN kernels, compilation, first batches
        start = time.perf_counter()
        run(2)
        if "--compile" in key[1]:
            took = time.perf_counter() - start
            print(f"  {key[0]} {key[1]} at {size}px: compile + 2 steps {took:.0f} s (not counted)")
    steps = args.steps
    medians = race({k: partial(r, steps) for k, r in contenders.items()}, args.rounds)
    return {k: v / steps for k, v in medians.items()}


def report(
    specs: list[str], size: int, sec: dict[tuple[str, str], float], with_compile: bool
) -> None:
    print(f"\n{size}×{size}, batch {BATCH}: training images/s (× the authors' pipeline)")
    labels = [AUTHORS] + [f.label() for f in arms(with_compile)]
    print(f"  {'contender':44}" + "".join(f"{s:>16}" for s in specs))
    for label in labels:
        cells = []
        for s in specs:
            rate = BATCH / sec[(s, label)]
            ratio = sec[(s, AUTHORS)] / sec[(s, label)]
            cells.append(f"{rate:8.2f} ({ratio:4.2f}×)")
        print(f"  {label:44}" + "".join(f"{c:>16}" for c in cells))
    ms = "".join(f"{1000 * sec[(s, 'transformer alone')]:>13.1f} ms" for s in specs)
    print(f"  {'transformer alone, training step':44}{ms}")
    if "lstn" in specs and "stn" in specs:
        r = sec[("lstn", "transformer alone")] / sec[("stn", "transformer alone")]
        print(f"  L-STN transformer step / STN transformer step: {r:.2f}×")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="64,128,224", help="image sides (64,128,224)")
    p.add_argument("--specs", default="stn,vstn,lstn", help="specs/NAME.spec (stn,vstn,lstn)")
    p.add_argument("--steps", type=int, default=3, help="steps per contender per round (3)")
    p.add_argument("--rounds", type=int, default=8, help="rounds; medians over them (8)")
    p.add_argument("--compile", action="store_true", help="add the --compile arms")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.specs.split(",")
    specs = {n: lstndsl.load(str(REPO / "specs" / f"{n}.spec")) for n in names}
    print(
        f"bench/train_speed.py: resnet18 behind {', '.join(names)}; {torch.get_num_threads()} "
        f"torch threads; {args.rounds} rounds × {args.steps} steps; load average "
        f"{os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    for size in (int(s) for s in args.sizes.split(",")):
        sec = setting(specs, size, args)
        report(names, size, sec, args.compile)
        print(f"  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
