"""What a run tells its reader: the plan before the first epoch (data, split sizes, model size
and MACs, protocol with optimizer and schedule, device with precision, memory format and
compile mode) and one line per epoch (the whole log when output is not a terminal).

What it is: text from a `Run` and from metrics records. What it is not: the progress bar
(progress.py) or the files (loop.py writes metrics.jsonl and summary.json).
"""

from __future__ import annotations

from typing import Any

import torch

from lstndsl.train.device import compile_mode, use_channels_last
from lstndsl.train.model import count_parameters
from lstndsl.train.optim import describe
from lstndsl.train.progress import duration
from lstndsl.train.state import Run


def plan(run: Run, notes: list[str]) -> None:
    """What the run will do, before its first epoch: data, split, model, protocol, device."""
    cfg, ds, say = run.config, run.dataset, run.console
    counts = ds.split.counts
    params = count_parameters(run.model)
    what = (
        "backbone alone (--no-stn)" if cfg.no_stn else " + ".join([*cfg.spec_paths, cfg.backbone])
    )
    say(f"lstndsl train: {what} -> {run.out}")
    native = ds.native_size
    kept = " (its own size)" if native == (ds.image_size, ds.image_size) else ""
    say(
        f"  data      {ds.spec}: {ds.num_classes} classes, {ds.image_size}×{ds.image_size}{kept}; "
        f"train {counts['train']:,} / val {counts['val']:,} / test {counts['test']:,} "
        f"(split seed {ds.split.seed}: {ds.split.rule})"
    )
    stn_part = (
        ""
        if cfg.no_stn
        else f" = spatial transformer {params['stn']:,}{_each(run)} + backbone "
        f"{params['backbone']:,}"
    )
    say(f"  model     {cfg.backbone}: {params['total']:,} parameters{stn_part}")
    if run.macs is not None:
        say(
            f"            {_giga(run.macs['thop'])} MACs per image (thop, the paper's "
            f"convention; {_giga(run.macs['full'])} counting everything)"
        )
    groups = "" if cfg.no_stn or cfg.stn_lr_mult == 1 else f", STN lr ×{cfg.stn_lr_mult:g}"
    budget = f"max {cfg.max_epochs} epoch{'s' * (cfg.max_epochs != 1)}" + (
        f", max {cfg.max_steps} steps" if cfg.max_steps else ""
    )
    say(
        f"  protocol  {describe(cfg, run.train_batches())}{groups}; batch {cfg.batch_size}; "
        f"cross-entropy; early stopping window {cfg.stop_window}, ±{cfg.stop_tolerance:g} "
        f"points, not before epoch {cfg.min_epochs}; {budget}"
    )
    if run.supervision is not None:
        say(
            f"  θ loss    {cfg.theta_loss:g} × grid distance to the ideal θ on "
            f"{run.supervision.count:,} training images ({100 * cfg.theta_labels:g}%)"
            + (f", noise σ {cfg.theta_noise:g}" if cfg.theta_noise else "")
        )
    n = torch.get_num_threads()
    threads = f" ({n} thread{'s' if n > 1 else ''})" if run.device.type == "cpu" else ""
    procs = f", {run.ctx.world_size} processes" if run.ctx.enabled else ""
    memory = (
        "channels-last"
        if use_channels_last(run.device, cfg.channels_last, ds.image_size)
        else "NCHW"
    )
    say(
        f"  device    {run.device}{threads}{procs}, {cfg.amp or 'fp32'}, {memory}, "
        f"{compile_mode(cfg.compile)}"
    )
    for note in notes:
        say(f"  note      {note}")


def _giga(n: int) -> str:
    """4.12G, 35.1M."""
    return f"{n / 1e9:.3g}G" if n >= 1e8 else f"{n / 1e6:.3g}M"


def _each(run: Run) -> str:
    """Each transformer's parameters and site, when there are several."""
    model = run.model
    if len(model.transformers) < 2:
        return ""
    parts = [
        f"{name} {sum(p.numel() for p in stn.parameters()):,}"
        for name, stn in model.transformers.items()
    ]
    return f" ({', '.join(parts)})"


def fmt(v: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def epoch_line(record: dict[str, Any], max_epochs: int) -> str:
    """One log line per epoch (what a non-terminal log shows)."""
    th = record.get("theta") or {}
    parts = [
        f"epoch {record['epoch']:>3}/{max_epochs}",
        f"train loss {fmt(record['train_loss'], '.4f')} top-1 {fmt(record['train_top1'])}%",
        f"val loss {fmt(record['val_loss'], '.4f')} top-1 {fmt(record['val_top1'])}% "
        f"top-5 {fmt(record['val_top5'])}%",
    ]
    if record.get("val_theta_error") is not None:
        parts.append(f"θ-err {record['val_theta_error']:.2f}px")
    if th:
        parts.append(
            f"θ scale {th['scale']:.2f} rot {th['rotation']:.1f}° shift {th['translation']:.1f}px "
            f"out {100 * th['outside']:.0f}%"
        )
    parts.append(f"{duration(record['time'])} {record['images_per_s']:.0f} img/s")
    if record.get("best"):
        parts.append("*")
    return "  ".join(parts)
