"""What a run prints while it trains: a progress bar on a terminal, one line per epoch elsewhere.

What it is: `Console` (prints on rank 0 only, flushed, to stdout), `ProgressBar` (a small
tqdm-like bar: count, rate in images/s, ETA, a loss; redrawn at most every 0.2 s, only when
stdout is a TTY; otherwise it prints nothing and the loop's per-epoch line is the whole log),
`EpochTimer` (the estimate of an epoch's duration after its first few batches) and `duration`
(1h02m, 3m05s, 12.3s). No torch. What it is not: what goes into metrics.jsonl.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def duration(seconds: float) -> str:
    """12.3s, 3m05s, 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Console:
    """print() for rank 0 only."""

    def __init__(
        self, enabled: bool = True, stream: TextIO | None = None, *, echo: bool = True
    ) -> None:
        #: False on ranks other than 0: nothing is printed or logged
        self.enabled = enabled
        self.stream = stream
        #: False: log to the file only (quiet runs, tests)
        self.echo = echo
        self.log: Path | None = None

    def log_to(self, path: Path) -> None:
        """Also append every line printed from now on to `path` (the run's log.txt)."""
        self.log = path

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def is_tty(self) -> bool:
        try:
            return self.enabled and self.echo and self.out.isatty()
        except (AttributeError, ValueError):
            return False

    def __call__(self, text: str = "") -> None:
        if self.enabled:
            if self.echo:
                print(text, file=self.out, flush=True)
            if self.log is not None:
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(text + "\n")


class ProgressBar:
    """`epoch 3/100 |████▌     | 120/219 [45.2 img/s, ETA 0:42] loss 0.812`, on a TTY only."""

    def __init__(self, console: Console, total: int, label: str, *, start: int = 0) -> None:
        self.console = console
        self.active = console.is_tty
        self.total = total
        self.label = label
        self.done = start
        self.images = 0
        self.t0 = time.perf_counter()
        self._last_draw = 0.0
        self.postfix = ""

    def update(self, batches: int, images: int, postfix: str | Callable[[], str] = "") -> None:
        """Count a batch; `postfix` (text, or a function that makes it, called only when the
        bar draws: a running loss read from the device costs a host sync) follows the bar."""
        self.done += batches
        self.images += images
        now = time.perf_counter()
        if self.active and (now - self._last_draw > 0.2 or self.done >= self.total):
            self.postfix = postfix() if callable(postfix) else postfix
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.t0, 1e-9)
        rate = self.images / elapsed
        per_batch = elapsed / max(self.done, 1)
        eta = duration(per_batch * max(self.total - self.done, 0)) if self.done else "?"
        width = max(10, min(30, shutil.get_terminal_size((80, 20)).columns - 70))
        frac = min(self.done / max(self.total, 1), 1.0)
        filled = frac * width
        bar = "█" * int(filled) + (" ▏▎▍▌▋▊▉"[int((filled % 1) * 8)] if filled < width else "")
        bar = bar.ljust(width)
        line = (
            f"{self.label} |{bar}| {self.done}/{self.total} "
            f"[{rate:.1f} img/s, ETA {eta}] {self.postfix}"
        )
        self.console.out.write("\r" + line[: shutil.get_terminal_size((120, 20)).columns - 1])
        self.console.out.write("\x1b[K")
        self.console.out.flush()

    def close(self) -> None:
        """Clear the bar's line (the loop prints its epoch line in its place)."""
        if self.active:
            self.console.out.write("\r\x1b[K")
            self.console.out.flush()


class EpochTimer:
    """Says, once, how long an epoch will take, from the batches after the first `skip`."""

    def __init__(self, total_batches: int, *, skip: int = 1, measure: int = 5) -> None:
        self.total = total_batches
        self.skip = skip
        self.measure = measure
        self.seen = 0
        self.images = 0
        self.t0: float | None = None
        self.reported = False

    def tick(self, images: int) -> str | None:
        """Call after each batch; returns the estimate's text once, when it is ready."""
        self.seen += 1
        if self.reported:
            return None
        if self.seen == self.skip:
            self.t0 = time.perf_counter()
            return None
        if self.t0 is None:
            return None
        self.images += images
        measured = self.seen - self.skip
        if measured < self.measure and self.seen < self.total:
            return None
        self.reported = True
        elapsed = time.perf_counter() - self.t0
        per_batch = elapsed / max(measured, 1)
        rate = self.images / max(elapsed, 1e-9)
        return (
            f"  timing: {rate:.1f} img/s over {measured} batches: training takes about "
            f"{duration(per_batch * self.total)} per epoch ({self.total} batches) plus validation"
        )
