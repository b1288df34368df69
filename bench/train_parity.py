"""Accuracy parity: the trainer's fp32 default against its fastest CPU flags, same seeds, same
budget, on the embedded digits.

    .venv/bin/python bench/train_parity.py                       # seeds 0,1,2; 3 epochs
    .venv/bin/python bench/train_parity.py --seeds 0,1,2,3,4 --epochs 5
    OMP_NUM_THREADS=1 .venv/bin/python bench/train_parity.py --epochs 2 --jobs 2

Every (configuration, seed) is one `lstndsl train specs/lstn.spec --backbone resnet18
--theta-loss 10 --max-epochs E --seed S` run in a subprocess (seeds interleaved across the
configurations, so a shared machine's load drifts over both alike; with `--jobs 2` the two
configurations of a seed run at the same time); the table gives, per
configuration, the mean ± sample std over seeds of summary.json's validation top-1 (the
selected epoch's), test top-1, validation and test θ-recovery error (px), and training
images/s (a by-product, not the speed benchmark: that is bench/train_speed.py). What it is
not: a test; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"fp32 (default)": [], "--amp bf16 --channels-last": ["--amp", "bf16", "--channels-last"]}
FIELDS = [
    ("val_top1", "val top-1 %"),
    ("test_top1", "test top-1 %"),
    ("val_theta_error", "val θ err px"),
    ("test_theta_error", "test θ err px"),
    ("images_per_s", "train img/s"),
]


def one_run(flags: list[str], seed: int, epochs: int, out: Path) -> dict[str, float]:
    cmd = [
        str(REPO / ".venv" / "bin" / "lstndsl"),
        "train",
        str(REPO / "specs" / "lstn.spec"),
        "--backbone",
        "resnet18",
        "--theta-loss",
        "10",
        "--max-epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--pictures",
        "0",
        "--out",
        str(out),
        *flags,
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {k: float(summary[k]) for k, _ in FIELDS}


def cell(values: list[float]) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", default="0,1,2", help="seeds (0,1,2)")
    p.add_argument("--epochs", type=int, default=3, help="--max-epochs of every run (3)")
    p.add_argument("--jobs", type=int, default=1, help="runs at the same time (1)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(
        f"bench/train_parity.py: lstn + resnet18, θ loss 10, {args.epochs} epochs, seeds "
        f"{seeds}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    tasks = [(seed, name) for seed in seeds for name in CONFIGS]
    with (
        tempfile.TemporaryDirectory(prefix="parity-") as tmp,
        ThreadPoolExecutor(args.jobs) as pool,
    ):

        def task(seed: int, name: str) -> tuple[int, str, dict[str, float]]:
            out = Path(tmp) / f"{len(CONFIGS[name])}-{seed}"
            return seed, name, one_run(CONFIGS[name], seed, args.epochs, out)

        for future in as_completed([pool.submit(task, *t) for t in tasks]):
            seed, name, row = future.result()
            results[name].append(row)
            print(f"  seed {seed} {name}: " + json.dumps(row), flush=True)
    print("\n| configuration | " + " | ".join(label for _, label in FIELDS) + " |")
    print("|---|" + "---|" * len(FIELDS))
    for name, rows in results.items():
        cells = [cell([r[k] for r in rows]) for k, _ in FIELDS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
