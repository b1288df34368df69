"""What a run prints: the progress bar draws only on a terminal, the epoch-time estimate comes
once after the first few batches, durations read like 1m05s."""

from __future__ import annotations

import io

from lstndsl.train.progress import Console, EpochTimer, ProgressBar, duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_draws_on_a_terminal_only() -> None:
    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        bar = ProgressBar(Console(stream=stream), 4, "epoch 1/3")
        for _ in range(4):
            bar.update(1, 16, "loss 0.500")
        bar.close()
    assert pipe.getvalue() == ""
    drawn = tty.getvalue()
    assert "\repoch 1/3 |" in drawn and "| 4/4 [" in drawn and "img/s, ETA " in drawn
    assert drawn.endswith("\r\x1b[K")  # the line is cleared for the epoch's log line
    quiet = Terminal()
    ProgressBar(Console(stream=quiet, echo=False), 4, "x").update(1, 16)
    assert quiet.getvalue() == ""


def test_the_epoch_estimate_comes_once() -> None:
    timer = EpochTimer(100, skip=1, measure=3)
    notes = [timer.tick(16) for _ in range(10)]
    said = [n for n in notes if n]
    assert len(said) == 1 and notes.index(said[0]) == 3
    assert said[0].startswith("  timing: ") and "per epoch (100 batches) plus validation" in said[0]


def test_durations() -> None:
    assert [duration(s) for s in (4.25, 65, 3725)] == ["4.2s", "1m05s", "1h02m"]
