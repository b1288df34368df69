"""A resume verifies before it trusts: last.pt, best.pt, config.json, split.json, metrics.jsonl
and the spec copy of a run directory must agree, or the resume stops with exit 2 naming the file
and what disagrees, before anything in the directory is touched.

What it is: `verify_resume` (the checks, in the order a reader would make them; returns the
loaded last.pt), `finished_summary` (a finished run resumed again changes nothing: its summary),
`write_summary` (summary.json is never rewritten with less than it had) and `kept_note` (what a
failure leaves behind, said only when it is true).

Two states are not disagreements but the traces of a kill -9 between two writes, and pass: a
best.pt one epoch ahead of last.pt (written first, at the end of the epoch last.pt had not yet
recorded; the resume trains that epoch again), and a metrics.jsonl one line short of last.pt's
history, or ending in half a line (the resume rewrites it from the history).
What it is not: the lock or the choice of directory (rundir.py), loading the model (loop.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lstndsl.errors import UsageError
from lstndsl.train import checkpoint as ckpt
from lstndsl.train.config import COSINE_BUDGET, RESUMABLE, TrainConfig, resume_changes
from lstndsl.train.inputs import saved_spec_texts, spec_copy_names
from lstndsl.train.stopping import should_stop

CONFIG, METRICS, SPLIT, SUMMARY = "config.json", "metrics.jsonl", "split.json", "summary.json"
#: what last.pt must hold for a resume, and what its `progress` must hold
LAST_KEYS = ("config", "model", "optimizer", "progress", "rng", "num_classes", "image_size")
PROGRESS_KEYS = ("epoch", "batch_in_epoch", "step", "history", "best_epoch", "best_val_top1")


def verify_resume(out: Path, config: TrainConfig) -> dict[str, Any]:
    """last.pt, checked against everything else in OUT; UsageError (exit 2) at the first
    disagreement. Reads only."""
    last_path = out / ckpt.LAST
    saved = ckpt.load(last_path)
    before = _check_last(saved, last_path)
    _check_config_file(out / CONFIG, before)
    changed = resume_changes(before, config)
    if changed:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        why = (
            " (the cosine schedule anneals over the budget the run started with)"
            if any(k in COSINE_BUDGET for k in changed) and before.schedule == "cosine"
            else ""
        )
        raise UsageError(f"--resume cannot change the run's {listed}{why}")
    _check_split(out / SPLIT, saved)
    _check_spec(out, before, saved)
    _check_metrics(out / METRICS, saved["progress"]["history"])
    _check_best(out / ckpt.BEST, saved, before)
    return saved


def _check_last(saved: dict[str, Any], path: Path) -> TrainConfig:
    missing = [k for k in LAST_KEYS if k not in saved]
    progress = saved.get("progress")
    if isinstance(progress, dict):
        missing += [f"progress.{k}" for k in PROGRESS_KEYS if k not in progress]
    elif "progress" not in missing:
        missing.append("progress")
    if missing:
        raise UsageError(
            f"{path} is a best.pt-style or damaged checkpoint: no {', '.join(missing)}"
        )
    history = progress["history"] if isinstance(progress, dict) else None
    if not isinstance(history, list) or any(not isinstance(r, dict) for r in history):
        raise UsageError(f"{path}: its history is not a list of epoch records")
    return _config_in(saved, path)


def _config_in(data: dict[str, Any], path: Path) -> TrainConfig:
    if not isinstance(data.get("config"), dict):
        raise UsageError(f"{path} holds no config")
    try:
        return TrainConfig.from_json(data["config"])
    except UsageError as err:
        raise UsageError(f"{path}: its config: {err.diagnostics[0].message}") from None


def _check_config_file(path: Path, before: TrainConfig) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        saved = TrainConfig.from_json(data)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UsageError) as exc:
        why = exc.diagnostics[0].message if isinstance(exc, UsageError) else str(exc)
        raise UsageError(f"{path} is not a run's config: {why}") from None
    changed = {k: v for k, v in saved.differences(before).items() if k not in RESUMABLE}
    if changed:
        listed = ", ".join(f"{k} {a!r} (last.pt: {b!r})" for k, (a, b) in changed.items())
        raise UsageError(f"{path} disagrees with {ckpt.LAST}: {listed}")


def _check_split(path: Path, saved: dict[str, Any]) -> None:
    from lstndsl.train.datasets import DatasetError
    from lstndsl.train.splits import read_split, split_fingerprint

    try:
        fp = split_fingerprint(read_split(path))
    except DatasetError as err:
        raise UsageError(err.message) from None
    want = saved.get("split_fingerprint")
    if want is not None and fp != want:
        raise UsageError(
            f"{path} is not the split {ckpt.LAST} trained on: its fingerprint {fp[:19]}… differs "
            f"from the {str(want)[:19]}… recorded in {ckpt.LAST} (was it edited or replaced?)"
        )


def _check_spec(out: Path, before: TrainConfig, saved: dict[str, Any]) -> None:
    texts = saved_spec_texts(saved)
    names = spec_copy_names(before.spec_paths)
    if len(texts) != len(names):
        raise UsageError(
            f"{ckpt.LAST} carries {len(texts)} spec text(s), its config names {len(names)} spec(s)"
        )
    for name, saved_text in zip(names, texts, strict=True):
        copy = out / name
        try:
            text: str | None = copy.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot read the run's copy of its spec, {copy}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            text = None
        if text != saved_text:
            raise UsageError(f"{copy} is not the spec text {ckpt.LAST} was trained with (edited?)")


def _check_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        if history or not isinstance(exc, FileNotFoundError):
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        return
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    lines = raw.split("\n")
    tail = lines.pop()  # "" after a final newline; else half a line a kill -9 left
    n = len(history)
    if not (len(lines) == n - 1 or (len(lines) == n and not tail)):
        raise UsageError(
            f"{path} has {len(lines)} epoch lines, but {ckpt.LAST} has finished {n} epochs"
        )
    for number, (line, record) in enumerate(zip(lines, history, strict=False), 1):
        try:
            same = _canon(json.loads(line)) == _canon(record)
        except ValueError:
            same = False
        if not same:
            raise UsageError(
                f"{path}:{number}: this line disagrees with epoch {record.get('epoch')} in "
                f"{ckpt.LAST}'s history"
            )


def _canon(record: Any) -> str:
    return json.dumps(record, sort_keys=True)


def _check_best(path: Path, saved: dict[str, Any], before: TrainConfig) -> None:
    progress = saved["progress"]
    best_epoch, history = progress["best_epoch"], progress["history"]
    if not path.exists():
        if best_epoch is not None:
            raise UsageError(
                f"{path} is missing, but {ckpt.LAST} says epoch {best_epoch} had the best "
                "validation accuracy: without its weights the run cannot select an epoch or "
                "test it (put best.pt back, or start a new run)"
            )
        return
    best = ckpt.load(path)
    epoch = best.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise UsageError(f"{path} records no epoch: not a best.pt")
    ahead = epoch == len(history) + 1 and _better(best.get("val_top1"), progress["best_val_top1"])
    if epoch != best_epoch and not ahead:
        said = f"epoch {best_epoch}" if best_epoch is not None else "no best epoch yet"
        raise UsageError(
            f"{path} is from epoch {epoch}, but {ckpt.LAST}'s history of {len(history)} epochs "
            f"says {said}"
        )
    if not ahead:
        record = history[epoch - 1]
        if not record.get("best") or record.get("val_top1") != best.get("val_top1"):
            raise UsageError(
                f"{path}: its validation top-1 {best.get('val_top1')!r} is not epoch {epoch}'s "
                f"{record.get('val_top1')!r} in {ckpt.LAST}'s history"
            )
    other = _config_in(best, path)
    changed = [k for k in other.differences(before) if k not in RESUMABLE]
    if changed:
        raise UsageError(f"{path} is another run's checkpoint: its {', '.join(changed)} differ")
    for key in ("spec_text", "more_spec_texts", "num_classes", "image_size", "split_fingerprint"):
        if best.get(key) != saved.get(key):
            raise UsageError(f"{path} and {ckpt.LAST} disagree on {key}")
    _check_same_weights_shape(path, best.get("model"), saved["model"])


def _better(value: Any, than: Any) -> bool:
    if not isinstance(value, int | float):
        return False
    return than is None or value > than


def _check_same_weights_shape(path: Path, model: Any, reference: dict[str, Any]) -> None:
    if not isinstance(model, dict):
        raise UsageError(f"{path} holds no model weights")
    shape: Callable[[Any], Any] = lambda t: tuple(getattr(t, "shape", ()))  # noqa: E731
    missing = sorted(set(reference) - set(model))
    extra = sorted(set(model) - set(reference))
    wrong = [k for k in reference if k in model and shape(model[k]) != shape(reference[k])]
    if missing or extra or wrong:
        detail = (
            f"missing {missing[0]}"
            if missing
            else f"unexpected {extra[0]}"
            if extra
            else f"{wrong[0]} is {list(shape(model[wrong[0]]))}, "
            f"not {list(shape(reference[wrong[0]]))}"
        )
        raise UsageError(
            f"{path} holds the weights of another architecture than {ckpt.LAST} ({detail})"
        )


# --- finished runs, summaries, what was kept ---------------------------------------------------


def finished_summary(
    out: Path, config: TrainConfig, saved: dict[str, Any]
) -> dict[str, Any] | None:
    """The summary of a run that has nothing left to do under `config` (None: it has)."""
    try:
        summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    progress = saved["progress"]
    if (
        not isinstance(summary, dict)
        or summary.get("failed")
        or summary.get("epochs") != progress["epoch"]
        or summary.get("steps") != progress["step"]
    ):
        return None
    if progress["epoch"] >= config.max_epochs:
        return summary
    if config.max_steps is not None and progress["step"] >= config.max_steps:
        return summary
    accs = [h["val_top1"] for h in progress["history"]]
    if progress["batch_in_epoch"] == 0 and should_stop(
        accs,
        window=config.stop_window,
        tolerance=config.stop_tolerance,
        min_epochs=config.min_epochs,
    ):
        return summary
    return None


def write_summary(path: Path, summary: dict[str, Any], say: Callable[[str], None]) -> bool:
    """Write summary.json unless the one there holds more (a selected epoch this one lacks,
    or more epochs); returns whether it was written."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and (
        (old.get("selected_epoch") is not None and summary.get("selected_epoch") is None)
        or (old.get("epochs") or 0) > (summary.get("epochs") or 0)
    ):
        say(f"kept {path}: it holds more (epoch {old.get('selected_epoch')} selected) than this")
        return False
    ckpt.save_json(path, summary)
    return True


def kept_note(out: Path) -> str:
    """What a failure leaves to resume from, as the end of its message."""
    if (out / ckpt.LAST).exists():
        return f"the last good checkpoint ({out / ckpt.LAST}) is kept"
    return (
        "no checkpoint had been written yet, so nothing is kept: run the same command again "
        "to start over"
    )
