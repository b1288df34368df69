"""The shared trainer: `train_one_epoch`, `evaluate`, `main`. One loop for every spec and backbone.

    from lstndsl.train.config import TrainConfig
    from lstndsl.train.loop import main
    result = main(TrainConfig(spec="specs/lstn.spec", backbone="resnet18", max_epochs=2))
    result.summary["test_top1"]

What `main` does, in order: join the process group (torchrun), pick the device, open the data
and its split, build the model with `compiler.build` (it knows nothing else about the model),
write the run directory (spec text, config, split), restore `last.pt` on `--resume`, say what
it will do, then per epoch: train on the training split, evaluate on the validation split,
watch θ, checkpoint (`best.pt` when validation top-1 improves, then `last.pt`), append to
metrics.jsonl, draw the picture, and apply the paper's early-stopping rule. Only after the
loop does it open the test split, once, on the selected (`best`) checkpoint; summary.json and
the training curves close the run.

Resume is exact on the CPU: `last.pt` carries the model, optimizer, scaler, every RNG, the
epoch, step and batch counters, the partial sums of an unfinished epoch, the history (the
early-stopping state) and the best so far; the data order comes back from (seed, epoch) and
`start_batch`. What it is not: flag parsing (lstndsl/commands/train.py), the data layer
(data.py), the model (compiler/).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstndsl.errors import UsageError
from lstndsl.train import checkpoint as ckpt
from lstndsl.train import distributed as dist
from lstndsl.train import resume, rundir
from lstndsl.train.config import TrainConfig
from lstndsl.train.cost import model_macs
from lstndsl.train.data import Batch, Dataset, DatasetError, open_dataset
from lstndsl.train.device import (
    autocast,
    check_amp,
    grad_scaler,
    select_device,
    set_determinism,
    use_channels_last,
)
from lstndsl.train.guards import check_can_learn
from lstndsl.train.inputs import (
    CONFIG,
    LOG,
    METRICS,
    PICTURES,
    SUMMARY,
    check_inputs,
    read_spec_text,
    resolve_image_size,
    resolve_out,
)
from lstndsl.train.metrics import Meter, append_jsonl, topk_hits, write_jsonl
from lstndsl.train.model import build_model, count_parameters, param_groups
from lstndsl.train.progress import Console, EpochTimer, ProgressBar
from lstndsl.train.report import epoch_line, fmt, plan
from lstndsl.train.splits import split_fingerprint
from lstndsl.train.state import Progress, Run, RunResult, StopTraining
from lstndsl.train.stopping import should_stop
from lstndsl.train.thetaloss import ThetaSupervision
from lstndsl.train.thetastats import collapse_reason, grid_distance, theta_sums

#: the validation and test sets are evaluated in batches of at least this many images
EVAL_BATCH = 64


# --- one epoch ------------------------------------------------------------------------------------


def _inputs(run: Run, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    x = batch.images.to(run.device, non_blocking=True)
    if use_channels_last(run.device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x, batch.labels.to(run.device, non_blocking=True)


def _measure(
    run: Run, meter: Meter, batch: Batch, logits: torch.Tensor, thetas: dict[str, torch.Tensor]
) -> None:
    """Accuracy, θ statistics of every transformer (the first under plain keys, the others
    under `name/…`) and the input transformer's θ-recovery error of one batch into `meter`."""
    n = len(batch)
    top1, top5 = topk_hits(logits, batch.labels.to(logits.device))
    meter.update({"n": n, "top1": top1, "top5": top5})
    stns = run.model.transformers
    for i, (name, theta) in enumerate(thetas.items()):
        prefix = "" if i == 0 else f"{name}/"
        size = theta_size(run, name)
        sums = theta_sums(theta, size, stns[name].transform)
        meter.update({prefix + k: v for k, v in sums.items()})
    first = run.model.input_transformer
    if first is not None and run.dataset.has_theta and batch.theta is not None:
        theta = thetas[first].detach()
        err = grid_distance(theta, batch.theta.to(theta.device), run.size, stns[first].transform)
        meter.add("theta_error", err.double().sum())


def theta_size(run: Run, name: str) -> tuple[int, int]:
    """The (H, W) a transformer's θ statistics are measured at: the image for one at the input,
    its feature map for one inside the backbone (translations in that map's pixels)."""
    if run.model.sites[name] == "input":
        return run.size
    _, h, w = run.model.transformers[name].analysis.input
    return (h, w)


def train_one_epoch(run: Run, epoch: int, start_batch: int, meter: Meter) -> bool:
    """Train epoch `epoch` (0-based) from batch `start_batch`, adding to `meter`.

    Returns True when `max_steps` was reached inside the epoch. Raises StopTraining on a
    non-finite loss (before the step that would spread it into the weights).
    """
    cfg, prog = run.config, run.progress
    run.net.train()
    total = run.train_batches()
    amp = autocast(run.device, cfg.amp)
    bar = ProgressBar(run.console, total, f"epoch {epoch + 1}/{cfg.max_epochs}", start=start_batch)
    t0 = time.perf_counter()
    images = 0
    batches = run.dataset.batches(
        "train",
        cfg.batch_size,
        epoch=epoch,
        rank=run.ctx.rank,
        world_size=run.ctx.world_size,
        start_batch=start_batch,
    )
    hit_budget = False
    for batch in batches:
        if batch.number >= total:
            break
        if len(batch) < 2:  # batch norm cannot train on one example; only a ragged tail
            continue
        x, y = _inputs(run, batch)
        with amp():
            logits, thetas = run.net(x, return_theta=True)
        ce = F.cross_entropy(logits.float(), y)
        loss = ce
        theta_loss, labelled = None, 0
        supervised = run.model.input_transformer
        if run.supervision is not None and supervised is not None:
            transform = run.model.transformers[supervised].transform
            theta_loss, labelled = run.supervision.loss(
                thetas[supervised], batch.indices, run.size, transform
            )
            if theta_loss is not None:
                loss = ce + cfg.theta_loss * theta_loss
        bad = not bool(torch.isfinite(loss.detach()))
        if run.ctx.enabled:
            bad = dist.any_rank(bad)
        if bad:
            bar.close()
            raise StopTraining(
                f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, batch {batch.number + 1}"
                f" (step {prog.step + 1}); {resume.kept_note(run.out)}"
            )
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        prog.step += 1
        prog.batch_in_epoch = batch.number + 1

        n = len(batch)
        images += n
        meter.update({"ce": ce.detach() * n, "loss": loss.detach() * n})
        if theta_loss is not None:
            meter.update({"theta_loss": theta_loss.detach() * labelled, "theta_labelled": labelled})
        _measure(run, meter, batch, logits.detach(), thetas)
        bar.update(1, n * run.ctx.world_size, f"loss {meter.mean('loss') or 0:.3f}")
        if run.timer is not None:
            note = run.timer.tick(n * run.ctx.world_size)
            if note:
                bar.close()
                run.console(note)
        if cfg.max_steps is not None and prog.step >= cfg.max_steps:
            hit_budget = True
            break
        # (the epoch's end writes its own checkpoint)
        every = cfg.checkpoint_every
        if every and prog.step % every == 0 and prog.batch_in_epoch < total:
            prog.partial = meter.reduce(dist.all_reduce_sum).state()
            if not run.ctx.is_main:
                prog.partial = {}
            save_last(run)
    bar.close()
    seconds = time.perf_counter() - t0
    prog.train_images += images * run.ctx.world_size
    prog.train_seconds += seconds
    return hit_budget


@torch.no_grad()
def evaluate(run: Run, split: str) -> Meter:
    """Loss, top-1/top-5, θ statistics and θ-recovery error over a whole split (exact: each
    rank takes every world_size-th example, nothing padded, sums reduced)."""
    plain = run.model
    plain.eval()
    members = run.dataset.split[split][run.ctx.rank :: run.ctx.world_size]
    bs = max(run.config.batch_size, EVAL_BATCH)
    amp = autocast(run.device, run.config.amp)
    meter = Meter()
    for number, start in enumerate(range(0, len(members), bs)):
        batch = run.dataset.load(members[start : start + bs], number)
        x, y = _inputs(run, batch)
        with amp():
            logits, thetas = plain(x, return_theta=True)
        logits = logits.float()
        meter.add("loss", F.cross_entropy(logits, y, reduction="sum"))
        _measure(run, meter, batch, logits, thetas)
    return meter.reduce(dist.all_reduce_sum)


# --- checkpoints ----------------------------------------------------------------------------------


def _payload(run: Run) -> dict[str, Any]:
    return {
        "format": ckpt.FORMAT,
        "config": run.config.to_json(),
        "spec_text": run.spec_text,
        "num_classes": run.dataset.num_classes,
        "image_size": run.dataset.image_size,
        "class_names": list(run.dataset.class_names),
        "model": run.model.state_dict(),
        "split_fingerprint": split_fingerprint(run.dataset.split),
    }


def _finite_weights(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def save_last(run: Run) -> None:
    """Write `last.pt` (rank 0), refusing weights that are no longer finite."""
    if not _finite_weights(run.model):
        raise StopTraining(
            f"the weights stopped being finite by step {run.progress.step}; "
            + resume.kept_note(run.out)
        )
    run.progress.elapsed = run.wall_time()
    if run.ctx.is_main:
        data = _payload(run)
        data.update(
            optimizer=run.optimizer.state_dict(),
            scaler=run.scaler.state_dict(),
            progress=run.progress.state(),
            rng=ckpt.rng_state(),
        )
        ckpt.save_atomic(data, run.out / ckpt.LAST)
    dist.barrier()


def save_best(run: Run) -> None:
    if run.ctx.is_main:
        data = _payload(run)
        data["epoch"] = run.progress.best_epoch
        data["val_top1"] = run.progress.best_val_top1
        ckpt.save_atomic(data, run.out / ckpt.BEST)
    dist.barrier()


def restore(run: Run, data: dict[str, Any]) -> None:
    """Put a run back where `last.pt` left it."""
    run.model.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    if data.get("scaler"):
        run.scaler.load_state_dict(data["scaler"])
    run.progress = Progress(**data["progress"])
    if not run.ctx.is_main:
        run.progress.partial = {}  # rank 0 carries the reduced partial sums
    ckpt.set_rng_state(data["rng"])


# --- pictures -------------------------------------------------------------------------------------


def picture_indices(dataset: Dataset, count: int) -> np.ndarray:
    """`count` validation examples spread evenly over the (sorted) validation indices."""
    val = dataset.split["val"]
    count = min(count, len(val))
    return val[np.linspace(0, len(val) - 1, count).round().astype(np.int64)]


@torch.no_grad()
def draw_transforms(run: Run, tag: str) -> Path | None:
    """Inputs, what the spatial transformer made of them and (if known) the ideal θ's output."""
    from lstndsl.train.pictures import transform_grid

    model = run.model
    if not model.transformers or run.config.pictures == 0 or not run.ctx.is_main:
        return None
    batch = run.dataset.load(picture_indices(run.dataset, run.config.pictures))
    was = model.training
    model.eval()
    x = batch.images.to(run.device)
    _, thetas = model(x, return_theta=True)
    # a transformer on a feature map is drawn on the image: feature maps align with it
    rows = [("input", run.dataset.denormalize(x))]
    for name, theta in thetas.items():
        label = "transformer" if len(thetas) == 1 else f"θ {name}"
        rows.append((label, run.dataset.denormalize(model.resample(x, theta, name))))
    captions = [run.dataset.class_names[int(y)] for y in batch.labels]
    supervised = model.input_transformer
    if batch.theta is not None and supervised is not None:
        ideal = batch.theta.to(run.device)
        rows.append(("ideal θ", run.dataset.denormalize(model.resample(x, ideal, supervised))))
        transform = model.transformers[supervised].transform
        err = grid_distance(thetas[supervised], ideal, run.size, transform)
        captions = [f"{c} · {e:.1f}px" for c, e in zip(captions, err.tolist(), strict=True)]
    model.train(was)
    title = f"{run.out.name}: {tag}"
    return transform_grid(run.out / PICTURES / f"transform-{tag}.png", rows, title, captions)


# --- the run --------------------------------------------------------------------------------------


def _record(
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
    """{transformer: {scale, rotation, translation, outside}} from a meter's means."""
    out: dict[str, dict[str, float | None]] = {}
    for i, name in enumerate(run.model.transformers):
        prefix = "" if i == 0 else f"{name}/"
        if means.get(prefix + "scale") is not None:
            out[name] = {k: means[prefix + k] for k in THETA_KEYS}
    return out


THETA_KEYS = ("scale", "rotation", "translation", "outside")


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


def run_epochs(run: Run) -> str:
    """Train until a budget, the early-stopping rule or a failure ends it; returns why."""
    cfg, prog = run.config, run.progress
    if prog.epoch == 0 and prog.batch_in_epoch == 0:
        draw_transforms(run, "e000")
    while prog.epoch < cfg.max_epochs:
        if cfg.max_steps is not None and prog.step >= cfg.max_steps:
            return f"max_steps ({cfg.max_steps}) reached"
        if prog.batch_in_epoch == 0 and (stop := early_stop_reason(cfg, prog.history)):
            return stop  # a resumed run that had already stopped
        t0 = time.perf_counter()
        images0, seconds0 = prog.train_images, prog.train_seconds
        meter = Meter(prog.partial)
        hit_budget = train_one_epoch(run, prog.epoch, prog.batch_in_epoch, meter)
        train = meter.reduce(dist.all_reduce_sum)
        val = evaluate(run, "val")
        seconds = time.perf_counter() - t0
        rate = (prog.train_images - images0) / max(prog.train_seconds - seconds0, 1e-9)
        record = _record(run, prog.epoch + 1, train, val, seconds, rate)
        if record["val_loss"] is None or not math.isfinite(record["val_loss"]):
            raise StopTraining(f"non-finite validation loss after epoch {prog.epoch + 1}")
        for name, stats in record["thetas"].items():
            collapsed = collapse_reason(
                stats, max_outside=cfg.collapse_outside, min_scale=cfg.collapse_min_scale
            )
            if collapsed:
                where = "" if len(record["thetas"]) == 1 else f" ({name})"
                raise StopTraining(f"{collapsed}{where} after epoch {prog.epoch + 1}")
        prog.epoch += 1
        prog.batch_in_epoch = 0
        prog.partial = {}
        if hit_budget:
            record["partial_epoch"] = True
        improved = prog.best_val_top1 is None or record["val_top1"] > prog.best_val_top1
        record["best"] = improved
        prog.history.append(record)
        if improved:
            prog.best_epoch, prog.best_val_top1 = prog.epoch, record["val_top1"]
            save_best(run)
        save_last(run)
        if run.ctx.is_main:
            append_jsonl(run.out / METRICS, record)
        draw_transforms(run, f"e{prog.epoch:03d}")
        run.console(epoch_line(record, cfg.max_epochs))
        if hit_budget:
            return f"max_steps ({cfg.max_steps}) reached"
        if stop := early_stop_reason(cfg, prog.history):
            return stop
    return f"max_epochs ({cfg.max_epochs}) reached"


def final_test(run: Run) -> tuple[dict[str, Any], dict[str, float | None]]:
    """Load the selected checkpoint and evaluate the test split: the only time it is read.

    Returns (the selected epoch's record, the test means)."""
    dist.barrier()
    data = ckpt.load(run.out / ckpt.BEST)
    run.model.load_state_dict(data["model"])
    record = run.progress.history[int(data["epoch"]) - 1]
    return record, evaluate(run, "test").means()


def main(
    config: TrainConfig, *, dataset: Dataset | None = None, console: Console | None = None
) -> RunResult:
    """Run (or resume) one training run; see the module docstring."""
    started = time.perf_counter()
    ctx = dist.from_environment()
    device = select_device(config.device, local_rank=ctx.local_rank, distributed=ctx.enabled)
    dist.setup(ctx, device)
    try:
        return _main(config, ctx, device, dataset, console or Console(ctx.is_main), started)
    finally:
        rundir.release_claims()
        dist.teardown(ctx)


def _main(
    config: TrainConfig,
    ctx: dist.DistContext,
    device: torch.device,
    dataset: Dataset | None,
    console: Console,
    started: float,
) -> RunResult:
    notes = check_amp(config.amp, device)
    determinism = set_determinism(config.deterministic, device)
    if determinism:
        notes.append(determinism)
    out = dist.broadcast_object(resolve_out(config) if ctx.is_main else None)
    config = config.replace(out=str(out))
    notes.extend(rundir.claim_notes())
    saved: dict[str, Any] | None = None
    if config.resume:
        saved = resume.verify_resume(out, config)
        if (finished := resume.finished_summary(out, config, saved)) is not None:
            console(f"{out}: the run is finished ({finished.get('stop_reason')}); nothing changed")
            return RunResult(out, finished, 0)
    spec_text = saved["spec_text"] if saved is not None else read_spec_text(config)
    check_inputs(config, spec_text)

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
    notes.extend(dataset.notes)
    if config.theta_loss > 0 and not dataset.has_theta:
        raise UsageError(
            f"--theta-loss needs images whose transforms are known (the embedded digits); "
            f"{config.dataset} has none"
        )

    ckpt.seed_everything(config.seed)
    model = build_model(config, spec_text, dataset.num_classes, dataset.image_size)
    check_can_learn(config, dataset, model, ctx.world_size)
    macs, macs_note = model_macs(model, dataset.image_size)
    model = model.to(device)
    if use_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    net = dist.wrap(model, ctx, device)
    optimizer = torch.optim.Adam(
        param_groups(model, config.lr, config.stn_lr_mult),
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
    )
    supervision = None
    if config.theta_supervised and model.input_transformer is not None:
        assert dataset.source.theta is not None
        supervision = ThetaSupervision(
            dataset.source.theta,
            dataset.split["train"],
            labels=config.theta_labels,
            noise=config.theta_noise,
            seed=config.seed,
        )
    run = Run(
        config=config,
        ctx=ctx,
        device=device,
        console=console,
        out=out,
        dataset=dataset,
        spec_text=spec_text,
        model=model,
        net=net,
        optimizer=optimizer,
        scaler=grad_scaler(device, config.amp),
        supervision=supervision,
        macs=macs,
        macs_note=macs_note,
        session_start=started,
    )
    if saved is not None:
        restore(run, saved)
        run.elapsed_before = run.progress.elapsed
        if ctx.is_main:
            write_jsonl(out / METRICS, run.progress.history)
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG).write_text(config.dumps(), encoding="utf-8")
        dataset.write_split(out)
        if spec_text is not None and config.spec is not None:
            (out / Path(config.spec).name).write_text(spec_text, encoding="utf-8")
        (out / METRICS).write_text("", encoding="utf-8")
    dist.barrier()
    if ctx.is_main:
        console.log_to(out / LOG)
    plan(run, notes)
    if saved is not None:
        p = run.progress
        console(f"  resumed   after epoch {p.epoch}, batch {p.batch_in_epoch}, step {p.step}")
    run.timer = EpochTimer(run.train_batches() - run.progress.batch_in_epoch)

    failure = None
    try:
        reason = run_epochs(run)
    except StopTraining as stop:
        reason = failure = stop.reason
        console(f"stopped: {stop.reason}")
    console(f"done training: {reason}")
    summary = _summarize(run, reason, failure)
    return RunResult(out, summary, 1 if failure else 0)


def _summarize(run: Run, reason: str, failure: str | None) -> dict[str, Any]:
    """Test the selected checkpoint (if there is one), write summary.json and the curves."""
    from lstndsl.train.pictures import training_curves

    cfg, prog, say = run.config, run.progress, run.console
    params = count_parameters(run.model)
    macs = run.macs
    summary: dict[str, Any] = {
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
        "theta_loss": cfg.theta_loss,
        "theta_labels": cfg.theta_labels if cfg.theta_supervised else 0.0,
        "theta_noise": cfg.theta_noise,
    }
    if (run.out / ckpt.BEST).exists() and prog.best_epoch is not None:
        record, test = final_test(run)
        summary.update(
            selected_epoch=record["epoch"],
            val_top1=record["val_top1"],
            val_top5=record["val_top5"],
            val_loss=record["val_loss"],
            test_top1=test.get("top1"),
            test_top5=test.get("top5"),
            test_loss=test.get("loss"),
            val_theta_error=record["val_theta_error"],
            test_theta_error=test.get("theta_error"),
            test_theta=(
                {k: test[k] for k in ("scale", "rotation", "translation", "outside")}
                if test.get("scale") is not None
                else None
            ),
        )
        draw_transforms(run, "selected")
        say(
            f"selected epoch {record['epoch']} (best validation top-1): val top-1 "
            f"{fmt(summary['val_top1'])}%, test top-1 {fmt(summary['test_top1'])}% "
            f"top-5 {fmt(summary['test_top5'])}%"
            + (
                f", θ-recovery error val {summary['val_theta_error']:.2f}px test "
                f"{summary['test_theta_error']:.2f}px"
                if summary["test_theta_error"] is not None
                else ""
            )
        )
    else:
        say("no epoch finished: nothing to select, the test split is left unread")
    summary["wall_time"] = run.wall_time()
    if run.ctx.is_main:
        resume.write_summary(run.out / SUMMARY, summary, say)
        if prog.history:
            training_curves(run.out / PICTURES / "curves.png", prog.history, run.out.name)
        say(f"wrote {run.out / SUMMARY}, {run.out / PICTURES}/")
    dist.barrier()
    return summary
