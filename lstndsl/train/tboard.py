"""TensorBoard event files in the run directory: `tensorboard --logdir runs` shows every run.

What it is: `Board`, rank 0's `torch.utils.tensorboard.SummaryWriter` (a no-op elsewhere and
once anything failed), `scalars` (a metrics.jsonl record -> {tag: value}) and `arm_hparams`
(a sweep arm's knobs and results for TensorBoard's HParams tab, once per arm). Per epoch, at
global step = the epoch number: the losses, top-1/top-5, the learning rate of each group, the θ
statistics of every transformer, the θ-recovery error, images/s and the epoch's seconds; the
transform picture (pictures/transform-eNNN.png, step 0 before training); after the test, the
selected epoch's test numbers and picture at step = the epochs trained (a run resumed with a
larger budget and tested again adds a later point, never a second one at the same step); at
each session's start the spec text(s) and the config as text.

Nothing here runs per step. Writing events never fails a run: the first error (an unwritable
directory, a full disk, a broken package) is one warning in the log, and the run goes on
without events. A resumed run opens the writer with `purge_step` = its first unfinished epoch:
TensorBoard's reader drops whatever an earlier session wrote from that step on, so no epoch
shows twice. The loop writes an epoch's scalars (and flushes) before `last.pt` records that
epoch, so a kill in between leaves events a resume purges and writes again, never a gap; only
the epoch's picture, drawn after the checkpoint, can be missing after such a kill.
What it is not: the records themselves (records.py), drawing the picture (drawing.py), the
metrics.jsonl file (loop.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lstndsl.train.config import TrainConfig

#: (tag, metrics.jsonl key) of the per-epoch scalars
SCALARS = (
    ("loss/train", "train_loss"),
    ("loss/train_ce", "train_ce"),
    ("loss/train_theta", "train_theta_loss"),
    ("loss/val", "val_loss"),
    ("top1/train", "train_top1"),
    ("top1/val", "val_top1"),
    ("top5/train", "train_top5"),
    ("top5/val", "val_top5"),
    ("theta_error/train", "train_theta_error"),
    ("theta_error/val", "val_theta_error"),
    ("lr/backbone", "lr"),
    ("lr/stn", "lr_stn"),
    ("speed/images_per_s", "images_per_s"),
    ("speed/epoch_seconds", "time"),
)
#: (tag, summary.json key) written once, after the test, at the selected epoch
TEST_SCALARS = (
    ("test/top1", "test_top1"),
    ("test/top5", "test_top5"),
    ("test/loss", "test_loss"),
    ("test/theta_error", "test_theta_error"),
)
PICTURE = "transform"


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one metrics.jsonl record (None values left out): SCALARS, then
    theta/<transformer>/<statistic> for every transformer."""
    out = {tag: float(record[key]) for tag, key in SCALARS if record.get(key) is not None}
    for name, stats in (record.get("thetas") or {}).items():
        for stat, value in stats.items():
            if value is not None:
                out[f"theta/{name}/{stat}"] = float(value)
    return out


def _code(text: str) -> str:
    """Text as a Markdown code block (TensorBoard's text plugin renders Markdown)."""
    return "\n".join("    " + line for line in text.splitlines())


class Board:
    """The run's event writer; every method is a no-op without one."""

    def __init__(self, writer: Any = None, warn: Callable[[str], None] = print) -> None:
        self.writer = writer
        self.warn = warn

    @classmethod
    def open(
        cls, out: Path, *, main: bool, purge_step: int | None, warn: Callable[[str], None]
    ) -> Board:
        """A writer into `out` on rank 0 (`main`); a no-op board elsewhere or on failure."""
        board = cls(None, warn)
        if main:

            def start() -> None:
                from torch.utils.tensorboard import SummaryWriter

                board.writer = SummaryWriter(log_dir=str(out), purge_step=purge_step)

            board._safely("open", start)
        return board

    def _safely(self, what: str, action: Callable[[], None]) -> None:
        """Run `action`; the first failure is a warning and the end of this board."""
        try:
            action()
        except Exception as exc:  # any failure to write events must not end the run
            writer, self.writer = self.writer, None
            self.warn(
                f"warning: TensorBoard events stop here ({what}: {type(exc).__name__}: {exc});"
                " the run goes on, metrics.jsonl and the pictures keep everything"
            )
            if writer is not None:
                with contextlib.suppress(Exception):  # already warned; closing is a courtesy
                    writer.close()

    def texts(self, step: int, specs: Sequence[tuple[str, str]], config: Mapping[str, Any]) -> None:
        """The spec text(s) as `spec/<file>` and the config as `config`, at `step`."""
        writer = self.writer
        if writer is None:
            return

        def write() -> None:
            for name, text in specs:
                writer.add_text(f"spec/{name}", _code(text), step)
            writer.add_text("config", _code(json.dumps(dict(config), indent=2)), step)
            writer.flush()

        self._safely("texts", write)

    def epoch(self, record: Mapping[str, Any]) -> None:
        """An epoch's scalars at step = its number, flushed to disk."""
        writer = self.writer
        if writer is None:
            return

        def write() -> None:
            step = int(record["epoch"])
            for tag, value in scalars(record).items():
                writer.add_scalar(tag, value, step)
            writer.flush()

        self._safely(f"epoch {record.get('epoch')}", write)

    def picture(self, path: Path | None, step: int, tag: str = PICTURE) -> None:
        """A PNG the run drew, as an image at `step` (nothing when no picture was drawn)."""
        writer = self.writer
        if writer is None or path is None:
            return

        def write() -> None:
            import numpy as np
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            writer.add_image(tag, pixels, step, dataformats="HWC")
            writer.flush()

        self._safely(f"picture {path.name}", write)

    def test(self, summary: Mapping[str, Any], step: int) -> None:
        """The test numbers of the selected epoch, at `step` = the epochs trained."""
        writer = self.writer
        if writer is None:
            return

        def write() -> None:
            for tag, key in TEST_SCALARS:
                if summary.get(key) is not None:
                    writer.add_scalar(tag, float(summary[key]), step)
            writer.flush()

        self._safely("test", write)

    def close(self) -> None:
        writer = self.writer
        if writer is not None:
            self._safely("close", writer.close)
            self.writer = None


# --- sweeps ---------------------------------------------------------------------------------------

#: summary.json keys a sweep arm's hparams session reports, as hparam/<key>
HPARAM_METRICS = (
    "val_top1",
    "test_top1",
    "test_top5",
    "test_theta_error",
    "params",
    "macs",
    "epochs",
    "wall_time",
)


def write_hparams(
    directory: Path,
    hparams: Mapping[str, Any],
    summary: Mapping[str, Any],
    warn: Callable[[str], None],
) -> bool:
    """One sweep arm's hparams session (TensorBoard's HParams tab: its knobs beside its
    results) in `directory`, written once: a directory already there is left as it is (a sweep
    run again reuses the arms' summaries unchanged). None becomes "none". Returns whether it
    wrote; a failure is a warning."""
    if directory.exists():
        return False
    values = {k: "none" if v is None else v for k, v in hparams.items()}
    metrics = {
        f"hparam/{k}": float(summary[k]) for k in HPARAM_METRICS if summary.get(k) is not None
    }
    failed: list[str] = []

    def note(text: str) -> None:
        failed.append(text)
        warn(text)

    board = Board(None, note)

    def write() -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        board.writer = SummaryWriter(log_dir=str(directory))
        # what SummaryWriter.add_hparams writes, in this directory rather than a new one below
        for event in hparams_summaries(values, metrics):
            board.writer.file_writer.add_summary(event)
        for tag, value in metrics.items():
            board.writer.add_scalar(tag, value, 0)

    board._safely(f"hparams {directory.name}", write)
    board.close()
    return not failed


def arm_hparams(
    directory: Path,
    arm: str,
    config: TrainConfig,
    summary: Mapping[str, Any],
    warn: Callable[[str], None],
) -> bool:
    """A sweep arm's hparams session: its knobs (arm, backbone, spec, seed, θ strategy,
    optimizer, lr, schedule, batch, input size) and its summary's results."""
    knobs = {
        "arm": arm,
        "backbone": config.backbone,
        "spec": config.spec_stem,
        "seed": config.seed,
        "theta_loss": config.theta_loss,
        "theta_labels": config.theta_labels,
        "theta_noise": config.theta_noise,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "schedule": config.schedule,
        "batch_size": config.batch_size,
        "image_size": summary.get("image_size"),
    }
    return write_hparams(directory, knobs, summary, warn)
