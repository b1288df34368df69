"""Early stopping and model selection, on scripted validation-accuracy sequences (no training).

The rule (../shared/paper/L-STN.md): never before min_epochs; never right after an epoch whose
validation accuracy beat the previous one; otherwise stop when each of the last `window`
accuracies lies within ± tolerance points of their mean.
"""

from __future__ import annotations

import pytest

from lstndsl.train.stopping import select_best, should_stop, stopping_epoch


def test_a_plateau_stops_once_the_window_agrees() -> None:
    accs = [10.0, 20.0, 30.0, 30.1, 30.0, 29.9]
    # epoch 4 beat epoch 3; epoch 5 did not, and [30, 30.1, 30] lies within ±0.067 of 30.033
    assert stopping_epoch(accs, window=3, tolerance=0.25, min_epochs=0) == 5
    assert not should_stop(accs[:4], window=3, tolerance=0.25, min_epochs=0)


def test_never_right_after_an_improvement() -> None:
    flat_then_up = [30.0, 30.0, 30.1]
    assert not should_stop(flat_then_up, window=3, tolerance=0.25, min_epochs=0)
    # an equal accuracy is not an improvement: [30, 30.1, 30.1] is within ±0.067 of its mean
    assert should_stop([*flat_then_up, 30.1], window=3, tolerance=0.25, min_epochs=0)


def test_never_before_min_epochs() -> None:
    accs = [50.0] * 12
    assert stopping_epoch(accs, window=3, tolerance=0.25, min_epochs=8) == 8
    assert stopping_epoch(accs, window=3, tolerance=0.25, min_epochs=0) == 3


def test_needs_a_full_window() -> None:
    assert stopping_epoch([50.0] * 9, window=10, tolerance=0.25, min_epochs=0) is None
    assert stopping_epoch([50.0] * 10, window=10, tolerance=0.25, min_epochs=0) == 10


def test_tolerance_is_inclusive_and_counted_in_points() -> None:
    # mean 30.25: 30 and 30.5 sit exactly 0.25 away -> inside
    assert should_stop([30.0, 30.5, 30.25], window=3, tolerance=0.25, min_epochs=0)
    # mean 30.26: 30 sits 0.26 away -> outside
    assert not should_stop([30.0, 30.52, 30.26], window=3, tolerance=0.25, min_epochs=0)
    assert should_stop([30.0, 30.52, 30.26], window=3, tolerance=0.3, min_epochs=0)


def test_defaults_are_the_papers_window_of_ten() -> None:
    # rises for 12 epochs, then wobbles around 90
    rising = [40.0 + 4 * i for i in range(12)]  # 40 … 84
    wobble = [89.9, 90.1, 90.0, 89.8, 90.2, 90.0, 89.9, 90.1, 90.0, 90.1, 89.9, 90.0]
    accs = rising + wobble
    # epochs 13..24 are the wobble; the first window of ten inside it ends at epoch 22
    # (epochs 13-22); epoch 22 (90.1) beat epoch 21 (90.0), so the rule waits; epoch 23 (89.9)
    # did not, and its window (epochs 14-23) lies within ±0.21 of its mean 90.01
    assert stopping_epoch(accs) == 23
    # epoch 24 (90.0) beat epoch 23 (89.9): not allowed to stop there either
    assert stopping_epoch(accs, min_epochs=24) is None
    assert stopping_epoch(accs, tolerance=0.1) is None


def test_a_noisy_run_never_stops() -> None:
    accs = [50.0 + (3.0 if i % 2 else -3.0) for i in range(40)]
    assert stopping_epoch(accs) is None


@pytest.mark.parametrize(
    ("accs", "best"),
    [([10.0, 30.0, 20.0], 2), ([10.0, 30.0, 30.0, 5.0], 2), ([7.0], 1), ([], None)],
)
def test_selection_is_on_the_highest_validation_accuracy_earliest_on_ties(
    accs: list[float], best: int | None
) -> None:
    assert select_best(accs) == best
