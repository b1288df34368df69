"""Early stopping exactly as the authors' notebooks do it, and model selection on validation.

What it is: two pure functions over the sequence of validation accuracies (in percent, one per
finished epoch). The rule (../shared/paper/L-STN.md):
- never before `min_epochs` epochs;
- never right after an epoch whose validation accuracy beat the previous epoch's;
- otherwise stop when each of the last `window` validation accuracies lies within
  ± `tolerance` points of their mean.
The state is the accuracy history itself (kept in the checkpoint), so resuming needs nothing
else. What it is not: the epoch/step budget (`--max-epochs`, `--max-steps`, in the loop).
"""

from __future__ import annotations

from collections.abc import Sequence


def should_stop(
    accuracies: Sequence[float], *, window: int = 10, tolerance: float = 0.25, min_epochs: int = 10
) -> bool:
    """Whether the run stops after the last epoch in `accuracies` (percent, oldest first)."""
    n = len(accuracies)
    if n == 0 or n < min_epochs or n < window:
        return False
    if n >= 2 and accuracies[-1] > accuracies[-2]:
        return False
    recent = accuracies[-window:]
    mean = sum(recent) / len(recent)
    # a hair of slack so that a value exactly at mean ± tolerance counts as inside
    return all(abs(a - mean) <= tolerance + 1e-9 for a in recent)


def stopping_epoch(
    accuracies: Sequence[float], *, window: int = 10, tolerance: float = 0.25, min_epochs: int = 10
) -> int | None:
    """The 1-based epoch after which the rule stops a run that would see `accuracies`."""
    for n in range(1, len(accuracies) + 1):
        if should_stop(accuracies[:n], window=window, tolerance=tolerance, min_epochs=min_epochs):
            return n
    return None


def select_best(accuracies: Sequence[float]) -> int | None:
    """The 1-based epoch with the highest validation accuracy (the earliest on a tie)."""
    if not accuracies:
        return None
    best = max(accuracies)
    return next(i for i, a in enumerate(accuracies, start=1) if a == best)
