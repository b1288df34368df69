"""Benchmark of the inference path (compiler/fuse.py) on this CPU: localization-net forward at
batch 16, 224×224, for STN, V-STN and L-STN, unfused against fused, side by side in one run.

    .venv/bin/python bench/fuse.py               # about a minute on 2 idle cores
    .venv/bin/python bench/fuse.py --reps 5      # a few seconds, noisier
    .venv/bin/python bench/fuse.py --threads 1   # when other jobs share the cores

Variants of each net, all in eval mode under `torch.inference_mode()`, input NCHW float32:
- unfused: what `compiler.build` returns;
- folded: batch norm folded into the convolutions (`fuse(m, channels_last=False)`);
- channels-last: weights NHWC, nothing folded (`fuse(m, fold=False)`);
- fused: both (`fuse(m)`, the default inference path).
Timed: `localization(x)`, and the whole spatial transformer `m(x)` (localization net, head,
θ, grid, sampler) for unfused and fused. Every repetition runs every (net, variant) once, in
a shuffled order, so a shared machine's load hits all of them alike; the table gives medians
(and the spread, min..max); ratios are given of the medians and of the best rounds (on a
loaded machine the best round is the better estimate of the unloaded time). Nothing here is
a unit test.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import lstndsl
from compiler.build import build
from compiler.fuse import fuse

SPECS = Path(__file__).resolve().parents[1] / "specs"
NETS = {"STN": "stn.spec", "V-STN": "vstn.spec", "L-STN": "lstn.spec"}
VARIANTS = {
    "unfused": lambda m: m,
    "folded": lambda m: fuse(m, channels_last=False),
    "channels-last": lambda m: fuse(m, fold=False),
    "fused": lambda m: fuse(m),
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _realistic(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Batch-norm statistics from a batch, so the timed forward sees trained-like values."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        model.train()(x[:4])
    model.eval()


def measure(
    cases: dict[tuple[str, str], Callable[[], object]], reps: int, warmup: int, seed: int
) -> dict[tuple[str, str], list[float]]:
    """Seconds per call for each case, over `reps` interleaved rounds in shuffled order."""
    times: dict[tuple[str, str], list[float]] = {k: [] for k in cases}
    order = list(cases)
    rng = random.Random(seed)
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in cases.values():
                fn()
        for _ in range(reps):
            rng.shuffle(order)
            for key in order:
                t0 = time.perf_counter()
                cases[key]()
                times[key].append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=20, help="interleaved rounds (default 20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size)

    cases: dict[tuple[str, str], Callable[[], object]] = {}
    for net, file in NETS.items():
        model = build(lstndsl.load(SPECS / file), input_size=args.size)
        _realistic(model, x)
        for variant, make in VARIANTS.items():
            m = make(model)
            cases[(net, variant)] = lambda m=m: m.localization(x)
            if variant in ("unfused", "fused"):
                cases[(net, f"{variant} STN")] = lambda m=m: m(x)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__},"
        f" {torch.get_num_threads()} threads, oneDNN {torch.backends.mkldnn.is_available()};"
        f" load average {load:.1f} at start"
    )
    times = measure(cases, args.reps, args.warmup, seed=0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    spread = {k: (min(v) * 1e3, max(v) * 1e3) for k, v in times.items()}

    print(
        f"\nlocalization-net forward, batch {args.batch}, {args.size}×{args.size}×3:"
        f" median ms (min..max) of {args.reps} interleaved rounds\n"
    )
    cols = list(VARIANTS)
    print(f"{'net':6}" + "".join(f"{c:>22}" for c in cols) + f"{'unfused/fused':>15}")
    for net in NETS:
        cells = "".join(
            f"{f'{med[(net, c)]:.1f} ({spread[(net, c)][0]:.0f}..{spread[(net, c)][1]:.0f})':>22}"
            for c in cols
        )
        print(f"{net:6}{cells}{med[(net, 'unfused')] / med[(net, 'fused')]:>14.2f}×")

    best = {k: min(v) * 1e3 for k, v in times.items()}
    for label, t in (("medians", med), ("best rounds (robust to a loaded machine)", best)):
        print(f"\nratios of {label}; >1: the first is slower")
        for net in NETS:
            u = t[(net, "unfused")]
            print(
                f"  {net:6} unfused / folded {u / t[(net, 'folded')]:.2f}×,"
                f" unfused / channels-last {u / t[(net, 'channels-last')]:.2f}×,"
                f" unfused / fused {u / t[(net, 'fused')]:.2f}×"
            )
        for other in ("V-STN", "L-STN"):
            print(
                f"  {other} / STN: unfused {t[(other, 'unfused')] / t[('STN', 'unfused')]:.2f}×,"
                f" fused {t[(other, 'fused')] / t[('STN', 'fused')]:.2f}×"
            )

    print("\nwhole spatial transformer forward (localization net, head, θ, grid, sampler)")
    for net in NETS:
        u, f = med[(net, "unfused STN")], med[(net, "fused STN")]
        print(f"  {net:6} unfused {u:.1f} ms, fused {f:.1f} ms: {u / f:.2f}×")


if __name__ == "__main__":
    main()
