"""How a sweep's arms get trained: `ArmJob` (one arm of one seed: its config and, in this process,
its opened dataset), `Outcome` (its summary and exit code, or why there is none), `Runner` (jobs
in, outcomes out, in any order) and `in_process` (one after another, here: the default).

What it is not: which arms there are and the table (sweep.py), or training on Ray workers
(raysweep.py, the other runner).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstndsl.errors import UsageError
from lstndsl.train.config import TrainConfig
from lstndsl.train.progress import Console

if TYPE_CHECKING:
    from lstndsl.train.sweep import Arm


@dataclass(frozen=True)
class ArmJob:
    """One arm of one seed to train: its config (directory, split file, resume) and, when the
    driver trains it itself, the dataset opened for its seed and size."""

    seed: int
    arm: Arm
    config: TrainConfig
    dataset: Any = None

    @property
    def which(self) -> str:
        return f"seed {self.seed}, {self.arm.slug}"


@dataclass(frozen=True)
class Outcome:
    """What training one arm gave: its summary and exit code, or why it gave none."""

    summary: dict[str, Any] | None = None
    #: 0 finished, 1 stopped by a failure (non-finite loss, θ collapse); the summary says which
    exit_code: int = 0
    #: the arm's directory or input cannot be used (a UsageError's message)
    error: str | None = None
    #: the arm's process died without a summary (a Ray worker killed, a node lost)
    crash: str | None = None
    #: where it trained, when not in this process: "HOST pid N" (a Ray worker)
    where: str = ""


#: how arms are trained: jobs in (lazily, in table order), (job, outcome) out in any order
Runner = Callable[[Iterable[ArmJob]], Iterator[tuple[ArmJob, Outcome]]]


def in_process(train: Callable[..., Any], say: Console) -> Runner:
    """Train the arms one after another in this process (the default)."""

    def run(jobs: Iterable[ArmJob]) -> Iterator[tuple[ArmJob, Outcome]]:
        for job in jobs:
            try:
                got = train(job.config, dataset=job.dataset, console=say)
            except UsageError as err:
                yield job, Outcome(error=err.diagnostics[0].message)
                continue
            yield job, Outcome(summary=got.summary, exit_code=got.exit_code)

    return run
