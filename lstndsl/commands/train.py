"""Train a spatial transformer and a backbone (or the backbone alone) with the paper's protocol.

    lstndsl train specs/lstn.spec --backbone resnet50             # embedded RTS MNIST, 42×42
    lstndsl train specs/lstn.spec --backbone resnet18 --max-epochs 2
    lstndsl train specs/stn.spec --backbone resnet18 --dataset cifar10:~/data/cifar10
    lstndsl train --no-stn --backbone resnet18                    # the backbone alone
    lstndsl train specs/lstn.spec --backbone resnet18 --theta-loss 1 --theta-labels 0.1
    lstndsl train specs/lstn.spec --backbone resnet18 --optimizer sgd --lr 0.05 \\
        --schedule cosine --warmup-epochs 2 --label-smoothing 0.1 --clip-grad 5
    lstndsl train --resume --out runs/lstn-resnet18-rts-s0        # after a crash or a kill
    torchrun --standalone --nproc_per_node 2 -m lstndsl train specs/lstn.spec --backbone resnet50

A run directory gets the spec, config.json, split.json, metrics.jsonl (one line per epoch),
last.pt and best.pt, pictures/, TensorBoard event files (`tensorboard --logdir runs`) and, at
the end, summary.json (the selected epoch's validation and test accuracy). The test split is
read once, after model selection on validation accuracy.
Exit codes: 0 done, 1 stopped by a failure (non-finite loss, θ collapse), 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lstndsl.errors import UsageError

HELP = "train a spec + backbone (or --no-stn) with the paper's protocol"
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every default is None here so that a run knows which flags were given (for --resume);
    the real defaults live in TrainConfig."""
    p.add_argument(
        "spec",
        metavar="SPEC",
        nargs="*",
        help="the spec (not needed with --no-stn); several: their transformers apply in the"
        " order given, each at its `at:` site",
    )
    g = p.add_argument_group("model")
    g.add_argument("--backbone", metavar="NAME", help="resnet18, resnet50, efficientnet_b0, …")
    g.add_argument("--no-stn", action="store_true", default=None, help="train the backbone alone")
    g.add_argument("--seed", type=int, metavar="S", help="split, init and order seed (0)")
    add_shared_flags(p)
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="run directory (default runs/<spec>-<backbone>-…)")
    g.add_argument("--resume", action="store_true", default=None, help="continue the run in --out")
    g.add_argument("--split", dest="split_file", metavar="FILE", help="reuse this split.json")


def add_shared_flags(p: argparse.ArgumentParser) -> None:
    """The flags `train` and `sweep` share: data, protocol, θ supervision, device."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        metavar="NAME",
        help="rts (default: RTS MNIST), digits (the older 64×64 canvas), cifar10:DIR,"
        " caltech101:DIR, folder:DIR",
    )
    g.add_argument("--image-size", type=int, metavar="N", help="model input N×N")
    g = p.add_argument_group("protocol (defaults: the paper's)")
    g.add_argument("--batch-size", type=int, metavar="B", help="examples per step (16)")
    g.add_argument("--lr", type=float, help="(peak) learning rate (0.001)")
    g.add_argument("--weight-decay", type=float, metavar="WD", help="weight decay (0)")
    g.add_argument("--stn-lr-mult", type=float, metavar="M", help="STN lr = lr × M (1)")
    g.add_argument("--max-epochs", type=int, metavar="N", help="epoch budget (100)")
    g.add_argument("--max-steps", type=int, metavar="N", help="step budget (none)")
    g.add_argument("--limit-batches", type=int, metavar="N", help="train batches per epoch")
    g.add_argument("--stop-window", type=int, metavar="N", help="early stopping window (10)")
    g.add_argument("--stop-tolerance", type=float, metavar="P", help="± points (0.25)")
    g.add_argument("--min-epochs", type=int, metavar="N", help="no early stop before (10)")
    g = p.add_argument_group("beyond the paper (defaults: off, the paper's protocol)")
    g.add_argument(
        "--optimizer", choices=["adam", "adamw", "sgd"], help="(adam; adamw decouples decay)"
    )
    g.add_argument("--momentum", type=float, metavar="M", help="SGD momentum (0.9)")
    g.add_argument(
        "--schedule",
        choices=["none", "cosine", "step"],
        help="lr schedule, updated every step (none: constant; cosine: to 0 at the budget's end)",
    )
    g.add_argument(
        "--warmup-epochs", type=int, metavar="N", help="linear lr warm-up over N epochs (0)"
    )
    g.add_argument(
        "--step-epochs", type=int, metavar="N", help="--schedule step: lr × gamma every N (30)"
    )
    g.add_argument(
        "--step-gamma", type=float, metavar="G", help="--schedule step: the factor (0.1)"
    )
    g.add_argument("--label-smoothing", type=float, metavar="E", help="of the training loss (0)")
    g.add_argument(
        "--clip-grad", type=float, metavar="NORM", help="clip the global gradient norm (off)"
    )
    g = p.add_argument_group("θ supervision (default off: the paper's unsupervised way)")
    g.add_argument(
        "--theta-loss", type=float, metavar="W", help="add W × grid distance to the ideal θ (0)"
    )
    g.add_argument(
        "--theta-labels", type=float, metavar="F", help="only this share of images has θ (1)"
    )
    g.add_argument(
        "--theta-noise", type=float, metavar="SIGMA", help="σ of noise on each θ entry (0)"
    )
    g = p.add_argument_group("device")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], help="(auto)")
    g.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision (off)")
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format (auto: on CUDA, on the CPU at 128 px and more)",
    )
    g.add_argument(
        "--compile", action="store_true", default=None, help="torch.compile the model (off)"
    )
    g.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic kernels"
    )
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="also every N steps")
    g.add_argument("--pictures", type=int, metavar="N", help="images per picture (8; 0 none)")


#: argparse destinations that are TrainConfig knobs
CONFIG_KEYS = (
    "spec",
    "backbone",
    "no_stn",
    "dataset",
    "image_size",
    "seed",
    "batch_size",
    "lr",
    "weight_decay",
    "stn_lr_mult",
    "optimizer",
    "momentum",
    "schedule",
    "warmup_epochs",
    "step_epochs",
    "step_gamma",
    "label_smoothing",
    "clip_grad",
    "max_epochs",
    "max_steps",
    "limit_batches",
    "stop_window",
    "stop_tolerance",
    "min_epochs",
    "theta_loss",
    "theta_labels",
    "theta_noise",
    "device",
    "amp",
    "channels_last",
    "compile",
    "deterministic",
    "checkpoint_every",
    "pictures",
    "out",
    "resume",
    "split_file",
)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The config knobs the user set on the command line (SPEC… as `spec` and `more_specs`)."""
    out = {k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k, None) is not None}
    specs = out.pop("spec", None)
    if isinstance(specs, str):
        specs = [specs]
    if specs:
        out["spec"] = specs[0]
        if specs[1:]:
            out["more_specs"] = tuple(specs[1:])
    return out


def make_config(explicit: dict[str, Any]) -> Any:
    """A TrainConfig from explicit flags; with --resume, the saved run's config updated by them."""
    from lstndsl.train.config import TrainConfig

    if not explicit.get("resume"):
        if "backbone" not in explicit:
            raise UsageError("--backbone NAME is needed (e.g. --backbone resnet18)")
        return TrainConfig(**{"spec": None, **explicit})
    out = explicit.get("out")
    if out is None:
        if "backbone" not in explicit:
            raise UsageError("--resume needs --out DIR (or the run's SPEC and --backbone)")
        out = str(TrainConfig(**{"spec": None, **explicit, "resume": False}).default_out())
    saved = Path(out) / "config.json"
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--resume: {saved} cannot be read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise UsageError(f"--resume: {saved} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--resume: {saved} holds no config (a JSON object)")
    try:
        config = TrainConfig.from_json(data).replace(**{**explicit, "out": out, "resume": True})
    except UsageError as err:
        raise UsageError(f"--resume: {saved}: {err.diagnostics[0].message}") from None
    if not (Path(out) / "last.pt").exists():
        print(
            f"--resume: {out} holds no last.pt (its run never reached a checkpoint): "
            f"starting it from scratch with its {saved.name}"
        )
        config = config.replace(resume=False)
    return config


def run(args: argparse.Namespace) -> int:
    from lstndsl.train import rundir

    config = make_config(given(args))
    if config.out is not None:
        rundir.probe(Path(config.out))  # a busy directory is refused before torch loads
    from lstndsl.train.data import DatasetError
    from lstndsl.train.loop import main

    try:
        result = main(config)
    except DatasetError as err:
        raise UsageError(err.message) from err
    return result.exit_code
