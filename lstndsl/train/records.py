"""What a run records: the metrics.jsonl line of an epoch, the early-stopping verdict, and the
fields of summary.json.

What it is: dictionaries built from a `Run`, its `Meter`s and its history. What it is not:
evaluating anything or writing files (loop.py), nor the log lines (report.py).
"""

from __future__ import annotations

from typing import Any

from lstndsl.train.config import TrainConfig
from lstndsl.train.device import use_channels_last
from lstndsl.train.metrics import Meter
from lstndsl.train.model import count_parameters
from lstndsl.train.state import Run
from lstndsl.train.stopping import should_stop

#: the θ statistics a record and a summary carry
THETA_KEYS = ("scale", "rotation", "translation", "outside")


def epoch_record(
    run: Run, epoch: int, train: Meter, val: Meter, seconds: float, rate: float
) -> dict[str, Any]:
    """The metrics.jsonl line: `seconds` the whole epoch (training and validation), `rate`
    training images per second of training time."""
    t, v = train.means(), val.means()
    thetas = theta_stats(run, v)
    theta = next(iter(thetas.values()), None)
    lrs = {g.get("name", "all"): g["lr"] for g in run.optimizer.param_groups}
    return {
        "epoch": epoch,
        "step": run.progress.step,
        "train_images": int(train["n"]),
        "train_loss": t.get("loss"),
        "train_ce": t.get("ce"),
        "train_theta_loss": t.get("theta_loss"),
        "train_top1": t.get("top1"),
        "train_top5": t.get("top5"),
        "train_theta_error": t.get("theta_error"),
        "val_loss": v.get("loss"),
        "val_top1": v.get("top1"),
        "val_top5": v.get("top5"),
        "val_theta_error": v.get("theta_error"),
        "theta": theta,
        "thetas": thetas,
        "lr": lrs.get("backbone", lrs.get("all")),
        "lr_stn": lrs.get("stn"),
        "time": seconds,
        "images_per_s": rate,
        "best": False,
    }


def theta_stats(run: Run, means: dict[str, float | None]) -> dict[str, dict[str, float | None]]:
    """{transformer: {scale, rotation, translation, outside}} from a meter's means (the first
    transformer's under plain keys, the others' under `name/…`)."""
    out: dict[str, dict[str, float | None]] = {}
    for i, name in enumerate(run.model.transformers):
        prefix = "" if i == 0 else f"{name}/"
        if means.get(prefix + "scale") is not None:
            out[name] = {k: means[prefix + k] for k in THETA_KEYS}
    return out


def early_stop_reason(config: TrainConfig, history: list[dict[str, Any]]) -> str | None:
    """Why the paper's rule stops the run after its last epoch (None: go on)."""
    accs = [h["val_top1"] for h in history]
    if not should_stop(
        accs,
        window=config.stop_window,
        tolerance=config.stop_tolerance,
        min_epochs=config.min_epochs,
    ):
        return None
    return (
        f"early stopping after epoch {len(accs)}: the last {config.stop_window} validation "
        f"accuracies lie within ±{config.stop_tolerance:g} points of their mean"
    )


def summary_fields(run: Run, reason: str, failure: str | None) -> dict[str, Any]:
    """summary.json before the test: the run, the model, the budget spent and the speed
    (`images_per_s`: training images per second of training time only)."""
    cfg, prog = run.config, run.progress
    params = count_parameters(run.model)
    macs = run.macs
    return {
        "run": str(run.out),
        "spec": cfg.spec if not cfg.no_stn else None,
        "backbone": cfg.backbone,
        "no_stn": cfg.no_stn,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "image_size": run.dataset.image_size,
        "num_classes": run.dataset.num_classes,
        "split": run.dataset.split.counts,
        "selected_epoch": None,
        "val_top1": None,
        "val_top5": None,
        "val_loss": None,
        "test_top1": None,
        "test_top5": None,
        "test_loss": None,
        "val_theta_error": None,
        "test_theta_error": None,
        "test_theta": None,
        "params": params["total"],
        "params_stn": params["stn"],
        "params_backbone": params["backbone"],
        "macs": None if macs is None else macs["thop"],
        "macs_by_convention": macs,
        "macs_note": run.macs_note,
        "epochs": prog.epoch,
        "steps": prog.step,
        "stop_reason": reason,
        "failed": failure is not None,
        "wall_time": None,  # set last, after the test
        "images_per_s": prog.train_images / prog.train_seconds if prog.train_seconds else None,
        "device": str(run.device),
        "world_size": run.ctx.world_size,
        "amp": cfg.amp,
        "channels_last": use_channels_last(run.device, cfg.channels_last, run.dataset.image_size),
        "compile": cfg.compile,
        "compile_warmup_s": run.warmup_seconds if cfg.compile else None,
        "theta_loss": cfg.theta_loss,
        "theta_labels": cfg.theta_labels if cfg.theta_supervised else 0.0,
        "theta_noise": cfg.theta_noise,
    }


def test_fields(record: dict[str, Any], test: dict[str, float | None]) -> dict[str, Any]:
    """summary.json's selection and test fields from the selected epoch's record."""
    return {
        "selected_epoch": record["epoch"],
        "val_top1": record["val_top1"],
        "val_top5": record["val_top5"],
        "val_loss": record["val_loss"],
        "test_top1": test.get("top1"),
        "test_top5": test.get("top5"),
        "test_loss": test.get("loss"),
        "val_theta_error": record["val_theta_error"],
        "test_theta_error": test.get("theta_error"),
        "test_theta": ({k: test[k] for k in THETA_KEYS} if test.get("scale") is not None else None),
    }
