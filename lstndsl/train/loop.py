"""The shared trainer: `train_one_epoch`, `evaluate`, `main`. One loop for every spec and backbone.

    from lstndsl.train.config import TrainConfig
    from lstndsl.train.loop import main
    result = main(TrainConfig(spec="specs/lstn.spec", backbone="resnet18", max_epochs=2))
    result.summary["test_top1"]

What `main` does, in order: join the process group (torchrun), pick the device, open the data
and its split, build the model with `compiler.build` (it knows nothing else about the model),
write the run directory (spec text, config, split), restore `last.pt` on `--resume`, say what
it will do, then per epoch: train on the training split, evaluate on the validation split,
watch θ, log the epoch to TensorBoard (tboard.py), checkpoint (`best.pt` when validation top-1
improves, then `last.pt`), append to metrics.jsonl, draw the picture, and apply the paper's
early-stopping rule. Only after the loop does it open the test split, once, on the selected
(`best`) checkpoint; summary.json and the training curves close the run.

Resume is exact on the CPU: `last.pt` carries the model, optimizer, scaler, every RNG, the
epoch, step and batch counters, the partial sums of an unfinished epoch, the history (the
early-stopping state) and the best so far; the data order comes back from (seed, epoch) and
`start_batch`. What it is not: flag parsing (lstndsl/commands/train.py), the data layer
(data.py), the model (compiler/), the step up to the loss (step.py), the checkpoint payloads
(saves.py), the pictures (drawing.py), the records and summary fields (records.py).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from lstndsl.errors import UsageError
from lstndsl.train import checkpoint as ckpt
from lstndsl.train import distributed as dist
from lstndsl.train import resume, rundir
from lstndsl.train.config import TrainConfig
from lstndsl.train.cost import model_macs
from lstndsl.train.data import Dataset, DatasetError
from lstndsl.train.device import (
    autocast,
    check_amp,
    grad_scaler,
    select_device,
    set_determinism,
    synchronize,
)
from lstndsl.train.drawing import draw_transforms
from lstndsl.train.guards import check_can_learn
from lstndsl.train.inputs import (
    LOG,
    METRICS,
    PICTURES,
    SUMMARY,
    check_inputs,
    read_spec_texts,
    resolve_out,
    saved_spec_texts,
    spec_copy_names,
)
from lstndsl.train.metrics import Meter, append_jsonl, write_jsonl
from lstndsl.train.model import build_model
from lstndsl.train.optim import make_optimizer, make_scheduler, update
from lstndsl.train.progress import Console, EpochTimer, ProgressBar
from lstndsl.train.records import early_stop_reason, epoch_record, summary_fields, test_fields
from lstndsl.train.report import epoch_line, fmt, plan
from lstndsl.train.saves import restore, save_best, save_last
from lstndsl.train.setup import first_files, open_data, place, theta_supervision
from lstndsl.train.state import Run, RunResult, StopTraining
from lstndsl.train.step import evaluate_batch, inputs, measure, step
from lstndsl.train.tboard import PICTURE as PICTURE_TAG
from lstndsl.train.tboard import Board
from lstndsl.train.thetastats import AFFINE, collapse_reason

#: the validation and test sets are evaluated in batches of at least this many images
EVAL_BATCH = 64


# --- one epoch ------------------------------------------------------------------------------------


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
    supervised = run.model.input_transformer  # θ supervision applies to it alone
    transform = run.model.transformers[supervised].transform if supervised else AFFINE
    hit_budget = False
    for batch in batches:
        if batch.number >= total:
            break
        if len(batch) < 2:  # batch norm cannot train on one example; only a ragged tail
            continue
        x, y = inputs(run, batch)
        out = step(
            run.net,
            x,
            y,
            batch.indices,
            amp=amp,
            size=run.size,
            supervision=run.supervision,
            theta_weight=cfg.theta_loss,
            supervised=supervised,
            transform=transform,
            label_smoothing=cfg.label_smoothing,
        )
        loss = out.loss
        _stop_if_not_finite(run, loss, epoch, batch.number, bar)
        update(
            run.optimizer,
            run.scaler,
            loss,
            params=run.model.parameters(),
            clip_grad=cfg.clip_grad,
            scheduler=run.scheduler,
        )
        prog.step += 1
        prog.batch_in_epoch = batch.number + 1

        n = len(batch)
        images += n
        if run.warmup_seconds is None:  # the first step of a compiled session: compilation
            t0, images = _warm_up(run, t0)
        meter.update({"ce": out.ce.detach() * n, "loss": loss.detach() * n})
        if out.theta_loss is not None:
            k = out.labelled
            meter.update({"theta_loss": out.theta_loss.detach() * k, "theta_labelled": k})
        measure(run, meter, batch, out.logits.detach(), out.thetas)
        bar.update(1, n * run.ctx.world_size, lambda: f"loss {meter.mean('loss') or 0:.3f}")
        if run.timer is not None:
            note = run.timer.tick(n * run.ctx.world_size)
            if note:
                bar.close()
                run.console(note)
        if cfg.max_steps is not None and prog.step >= cfg.max_steps:
            hit_budget = True
            break
        t0 += _checkpoint_mid_epoch(run, meter, total)  # saving is not training time
    bar.close()
    synchronize(run.device)
    seconds = time.perf_counter() - t0
    prog.train_images += images * run.ctx.world_size
    prog.train_seconds += seconds
    return hit_budget


def _stop_if_not_finite(
    run: Run, loss: torch.Tensor, epoch: int, number: int, bar: ProgressBar
) -> None:
    """StopTraining on a non-finite loss (on any rank), before the step that would spread it
    into the weights."""
    bad = not bool(torch.isfinite(loss.detach()))
    if run.ctx.enabled:
        bad = dist.any_rank(bad)
    if bad:
        bar.close()
        raise StopTraining(
            f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, batch {number + 1}"
            f" (step {run.progress.step + 1}); {resume.kept_note(run.out)}"
        )


def _checkpoint_mid_epoch(run: Run, meter: Meter, total: int) -> float:
    """`--checkpoint-every N`: last.pt every N steps inside an epoch (its end writes its own).
    Returns the seconds it took (not training time)."""
    every, prog = run.config.checkpoint_every, run.progress
    if not (every and prog.step % every == 0 and prog.batch_in_epoch < total):
        return 0.0
    paused = time.perf_counter()
    partial = meter.reduce(dist.all_reduce_sum).state()  # a collective: every rank calls it
    prog.partial = partial if run.ctx.is_main else {}
    save_last(run)
    return time.perf_counter() - paused


def _warm_up(run: Run, t0: float) -> tuple[float, int]:
    """Close the warm-up after the first step: its seconds go to `run.warmup_seconds` and it
    counts neither as training time nor as training images. Returns the new (t0, images)."""
    synchronize(run.device)
    now = time.perf_counter()
    run.warmup_seconds = now - t0
    run.console(f"  compile   first step (compilation) took {run.warmup_seconds:.1f} s")
    return now, 0


@torch.no_grad()
def evaluate(run: Run, split: str) -> Meter:
    """Loss, top-1/top-5, θ statistics and θ-recovery error over a whole split (exact: each
    rank takes every world_size-th example, nothing padded, sums reduced)."""
    run.model.eval()
    members = run.dataset.split[split][run.ctx.rank :: run.ctx.world_size]
    bs = max(run.config.batch_size, EVAL_BATCH)
    amp = autocast(run.device, run.config.amp)
    meter = Meter()
    for number, start in enumerate(range(0, len(members), bs)):
        evaluate_batch(run, meter, run.dataset.load(members[start : start + bs], number), amp)
    return meter.reduce(dist.all_reduce_sum)


# --- the run --------------------------------------------------------------------------------------


def run_epochs(run: Run) -> str:
    """Train until a budget, the early-stopping rule or a failure ends it; returns why."""
    cfg, prog = run.config, run.progress
    if prog.epoch == 0 and prog.batch_in_epoch == 0:
        run.board.picture(draw_transforms(run, "e000"), 0)
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
        record = epoch_record(run, prog.epoch + 1, train, val, seconds, rate)
        if record["val_loss"] is None or not math.isfinite(record["val_loss"]):
            raise StopTraining(f"non-finite validation loss after epoch {prog.epoch + 1}")
        _stop_if_collapsed(run, record)
        _close_epoch(run, record, hit_budget)
        if hit_budget:
            return f"max_steps ({cfg.max_steps}) reached"
        if stop := early_stop_reason(cfg, prog.history):
            return stop
    return f"max_epochs ({cfg.max_epochs}) reached"


def _stop_if_collapsed(run: Run, record: dict[str, Any]) -> None:
    """StopTraining when any transformer's θ collapsed (zoomed out to nothing, or looking
    beside the image), naming it when there are several."""
    cfg = run.config
    for name, stats in record["thetas"].items():
        collapsed = collapse_reason(
            stats, max_outside=cfg.collapse_outside, min_scale=cfg.collapse_min_scale
        )
        if collapsed:
            where = "" if len(record["thetas"]) == 1 else f" ({name})"
            raise StopTraining(f"{collapsed}{where} after epoch {run.progress.epoch + 1}")


def _close_epoch(run: Run, record: dict[str, Any], hit_budget: bool) -> None:
    """Record a finished epoch: history, TensorBoard, best.pt when it improved, last.pt,
    metrics.jsonl, its picture and its line."""
    prog = run.progress
    prog.epoch += 1
    prog.batch_in_epoch = 0
    prog.partial = {}
    if hit_budget:
        record["partial_epoch"] = True
    improved = prog.best_val_top1 is None or record["val_top1"] > prog.best_val_top1
    record["best"] = improved
    prog.history.append(record)
    run.board.epoch(record)  # before last.pt records the epoch: a resume purges, never gaps
    if improved:
        prog.best_epoch, prog.best_val_top1 = prog.epoch, record["val_top1"]
        save_best(run)
    save_last(run)
    if run.ctx.is_main:
        append_jsonl(run.out / METRICS, record)
    run.board.picture(draw_transforms(run, f"e{prog.epoch:03d}"), prog.epoch)
    run.console(epoch_line(record, run.config.max_epochs))


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
    texts = saved_spec_texts(saved) if saved is not None else read_spec_texts(config)
    check_inputs(config, texts)
    spec_text, more_texts = (texts[0] if texts else None), tuple(texts[1:])

    dataset = open_data(config, out, saved, dataset)
    notes.extend(dataset.notes)

    ckpt.seed_everything(config.seed)
    model = build_model(config, spec_text, dataset.num_classes, dataset.image_size, more_texts)
    if model.image is not None:  # the model decides the channels it takes (model_input)
        try:
            dataset = dataset.with_channels(model.image[0])
        except DatasetError as err:
            raise UsageError(err.message) from err
    check_can_learn(config, dataset, model, ctx.world_size)
    macs, macs_note = model_macs(model, dataset.image_size)
    model, net = place(model, config, ctx, device, dataset.image_size)
    optimizer = make_optimizer(model, config, device)
    supervision = theta_supervision(config, model, dataset)
    run = Run(
        config=config,
        ctx=ctx,
        device=device,
        console=console,
        out=out,
        dataset=dataset,
        spec_text=spec_text,
        more_spec_texts=more_texts,
        model=model,
        net=net,
        optimizer=optimizer,
        scaler=grad_scaler(device, config.amp),
        supervision=supervision,
        macs=macs,
        macs_note=macs_note,
        session_start=started,
        warmup_seconds=None if config.compile else 0.0,
    )
    run.scheduler = make_scheduler(optimizer, config, run.train_batches())
    if saved is not None:
        restore(run, saved)
        run.elapsed_before = run.progress.elapsed
        if ctx.is_main:
            write_jsonl(out / METRICS, run.progress.history)
    elif ctx.is_main:
        first_files(out, config, dataset, texts)
    dist.barrier()
    if ctx.is_main:
        console.log_to(out / LOG)
    plan(run, notes)
    # a fresh run purges from step 0 what an earlier session left (one that never checkpointed)
    purge = run.progress.epoch + 1 if saved is not None else 0
    run.board = Board.open(out, main=ctx.is_main, purge_step=purge, warn=console)
    copies = spec_copy_names(config.spec_paths)
    run.board.texts(run.progress.epoch, list(zip(copies, texts, strict=True)), config.to_json())
    if saved is not None:
        p = run.progress
        console(f"  resumed   after epoch {p.epoch}, batch {p.batch_in_epoch}, step {p.step}")
    run.timer = EpochTimer(run.train_batches() - run.progress.batch_in_epoch)

    failure = None
    try:
        try:
            reason = run_epochs(run)
        except StopTraining as stop:
            reason = failure = stop.reason
            console(f"stopped: {stop.reason}")
        console(f"done training: {reason}")
        summary = _summarize(run, reason, failure)
    finally:
        run.board.close()
    return RunResult(out, summary, 1 if failure else 0)


def _summarize(run: Run, reason: str, failure: str | None) -> dict[str, Any]:
    """Test the selected checkpoint (if there is one), write summary.json and the curves."""
    from lstndsl.train.pictures import training_curves

    prog, say = run.progress, run.console
    summary = summary_fields(run, reason, failure)
    if (run.out / ckpt.BEST).exists() and prog.best_epoch is not None:
        record, test = final_test(run)
        summary.update(test_fields(record, test))
        picture = draw_transforms(run, "selected")
        run.board.picture(picture, prog.epoch, f"{PICTURE_TAG}/selected")
        run.board.test(summary, prog.epoch)
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
