"""Compare arms on one shared split: every backbone alone and behind every spec (under every θ
strategy), for each seed, then one Markdown table with mean ± std over the seeds.

    lstndsl sweep specs/stn.spec specs/vstn.spec specs/lstn.spec --backbones resnet18 \\
        --seeds 0,1,2 --max-epochs 10
    lstndsl sweep specs/lstn.spec --backbones resnet18 --strategies \\
        unsupervised,supervised,labels=0.1 --theta-loss 10 --seeds 0,1,2

Each arm trains with `lstndsl train`'s loop in OUT/s<seed>/<arm>/; the table goes to
OUT/results.md (and OUT/results.json). Running the same sweep again skips finished arms and
resumes interrupted ones. Training flags (--dataset, --max-epochs, --lr, …) apply to every arm.

    lstndsl sweep specs/lstn.spec --backbones resnet18 --seeds 0,1 --ray --cpus-per-arm 1
    lstndsl sweep specs/lstn.spec --backbones resnet18 --ray auto --gpus-per-arm 1

With --ray each arm still to train is a Ray task of its own (--cpus-per-arm CPUs, its torch
threads; --gpus-per-arm GPUs), on a local Ray started for the sweep or on a cluster
(lstndsl/train/raysweep.py); the directory, the skipping and resuming, and the table are the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstndsl.commands.train import CONFIG_KEYS, add_shared_flags
from lstndsl.errors import UsageError

HELP = "train every arm (backbone alone, + each spec) on one split, table mean ± std over seeds"
ORDER = 45
#: θ-loss weight of supervised strategies when --theta-loss is not given: on the embedded digits
#: (64×64) the θ term then weighs about as much as the cross-entropy in the first epochs
DEFAULT_THETA_WEIGHT = 10.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "specs",
        metavar="SPEC",
        nargs="*",
        help="specs to put before each backbone; A.spec+B.spec is one arm of both transformers",
    )
    g = p.add_argument_group("arms")
    g.add_argument("--backbones", metavar="A,B", required=True, help="comma-separated backbones")
    g.add_argument("--seeds", metavar="S,S", default="0", help="comma-separated seeds (0)")
    g.add_argument(
        "--strategies",
        metavar="LIST",
        help="θ strategies for spec arms: unsupervised (default), supervised, labels=F, noise=S",
    )
    g.add_argument("--no-baseline", action="store_true", help="skip the backbone-alone arms")
    g.add_argument("--out", metavar="DIR", help="sweep directory (runs/sweep-<dataset>)")
    g.add_argument(
        "--skip-bad-arms",
        action="store_true",
        help="an arm whose directory is corrupt is named and left out (default: stop there)",
    )
    g = p.add_argument_group("Ray (each arm a task; pip install 'lstndsl[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="train the arms as Ray tasks: on a local Ray started for the sweep (--ray alone),"
        " or on the cluster at ADDRESS (auto: $RAY_ADDRESS)",
    )
    g.add_argument(
        "--cpus-per-arm", type=int, metavar="N", help="CPUs (and torch threads) per arm (1)"
    )
    g.add_argument(
        "--gpus-per-arm", type=float, metavar="G", help="GPUs per arm (1 where GPUs exist, else 0)"
    )
    g.add_argument("--ray-cpus", type=int, metavar="N", help="the local Ray's CPUs (all cores)")
    add_shared_flags(p)


def _ray_runner(args: argparse.Namespace) -> Any:
    """The Ray runner --ray asks for (None without --ray); exit 2 without ray installed."""
    if args.ray is None:
        for flag in ("cpus_per_arm", "gpus_per_arm", "ray_cpus"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} sizes Ray tasks: add --ray")
        return None
    from lstndsl.train.progress import Console
    from lstndsl.train.raysweep import RayPlan, ray_runner, require_ray

    plan = RayPlan(
        address=args.ray or None,
        cpus_per_arm=1 if args.cpus_per_arm is None else args.cpus_per_arm,
        gpus_per_arm=args.gpus_per_arm,
        local_cpus=args.ray_cpus,
        device=args.device or "auto",
    )
    require_ray()
    return ray_runner(plan, Console())


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise UsageError(f"{flag} takes comma-separated integers, not {text!r}") from exc
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise UsageError(f"{flag} takes distinct non-negative integers, not {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from compiler.backbones import resolve
    from lstndsl import parser
    from lstndsl.train.config import TrainConfig
    from lstndsl.train.sweep import RESULTS_MD, parse_strategies, plan, run_sweep

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if not backbones:
        raise UsageError("--backbones names no backbone")
    for name in backbones:  # every name now, not when its first arm starts
        resolve(name)
    seeds = _ints(args.seeds, "--seeds")
    runner = _ray_runner(args)
    strategies = parse_strategies(args.strategies)
    if not args.specs and args.no_baseline:
        raise UsageError("nothing to train: no SPEC and --no-baseline")
    names = {
        s: " + ".join(parser.parse_file(p).name or Path(p).stem for p in s.split("+"))
        for s in args.specs
    }
    shared = {k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k, None) is not None}
    shared.pop("out", None)
    # θ supervision is chosen per arm by --strategies; --theta-loss only sets its weight
    for flag in ("theta_labels", "theta_noise"):
        if flag in shared:
            raise UsageError(
                f"--{flag.replace('_', '-')} has no place in a sweep: name the strategies, "
                "e.g. --strategies unsupervised,labels=0.1,noise=0.05"
            )
    weight = shared.pop("theta_loss", None)
    supervised = any(s.supervised for s in strategies)
    if weight is not None and not supervised:
        raise UsageError("--theta-loss sets the weight of supervised --strategies; name them")
    if supervised and not args.specs:
        raise UsageError("--strategies needs at least one SPEC (θ is the spatial transformer's)")
    base = TrainConfig(
        **{
            "spec": args.specs[0].split("+")[0] if args.specs else None,
            "no_stn": not args.specs,
            "backbone": backbones[0],
            **shared,
        }
    )
    kind = base.dataset.partition(":")[0]
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{kind}"
    arms = plan(args.specs, backbones, strategies, names, baseline=not args.no_baseline)
    weight = DEFAULT_THETA_WEIGHT if weight is None else weight
    result = run_sweep(
        base,
        arms,
        seeds,
        out,
        theta_weight=weight,
        skip_bad_arms=args.skip_bad_arms,
        runner=runner,
    )
    print()
    print((out / RESULTS_MD).read_text(encoding="utf-8"), end="")
    print(f"\nwrote {out / RESULTS_MD} and {out / 'results.json'}")
    for failure in result.failures:
        print(f"failed: {failure}")
    for skipped in result.skipped:
        print(f"skipped: {skipped}")
    return 1 if result.failures or result.skipped else 0
