"""A sweep: every arm (each backbone alone, and with each spec under each θ strategy) trained on
one shared split per seed, then one comparison table, mean ± std over seeds.

What it is: `Strategy` and `parse_strategies` (how θ is trained: `unsupervised`, `supervised`,
`labels=F`, `noise=S`, joined with `+`), `plan` (the arms, in table order), `run_sweep` (opens
each dataset once per seed and image size, writes the seed's split once, runs every arm with
`loop.main` in its own directory, skips arms already finished and resumes interrupted ones;
the arms train in this process, or through another `armjobs.Runner`: Ray, raysweep.py),
`aggregate` and `markdown` (the table: like the paper's Tables 4 and 5, but each number is a
mean ± sample standard deviation over the seeds, parameters and MACs are those of the real
modules, and the test accuracy is the once-evaluated score of the checkpoint selected on
validation). What it is not: flag parsing (lstndsl/commands/sweep.py) or training (loop.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstndsl.errors import UsageError
from lstndsl.train import checkpoint as ckpt
from lstndsl.train.armjobs import ArmJob, Outcome, Runner, in_process
from lstndsl.train.config import TrainConfig
from lstndsl.train.inputs import SUMMARY, resolve_image_size
from lstndsl.train.progress import Console
from lstndsl.train.tboard import arm_hparams

RESULTS_MD, RESULTS_JSON = "results.md", "results.json"
#: the sweep directory's folder of per-arm TensorBoard hparams sessions
HPARAMS = "hparams"


@dataclass(frozen=True)
class Strategy:
    """How the localization net learns θ (issue 5)."""

    #: as written on the command line, e.g. "labels=0.1"
    name: str
    supervised: bool = False
    labels: float = 1.0
    noise: float = 0.0

    def config(self, weight: float) -> dict[str, Any]:
        """The TrainConfig knobs this strategy sets (θ loss weight `weight` when supervised)."""
        if not self.supervised:
            return {"theta_loss": 0.0, "theta_labels": 1.0, "theta_noise": 0.0}
        return {"theta_loss": weight, "theta_labels": self.labels, "theta_noise": self.noise}

    @property
    def slug(self) -> str:
        return "" if not self.supervised else "-" + self.name.replace("=", "").replace("+", "-")

    @property
    def label(self) -> str:
        """How the table names it."""
        if not self.supervised:
            return ""
        parts = ["θ supervised"]
        if self.labels < 1:
            parts.append(f"{100 * self.labels:g}% labels")
        if self.noise > 0:
            parts.append(f"noise σ {self.noise:g}")
        return ", ".join(parts)


UNSUPERVISED = Strategy("unsupervised")


def parse_strategies(text: str | None) -> list[Strategy]:
    """`unsupervised,supervised,labels=0.1,labels=0.1+noise=0.05` -> strategies (default: the
    paper's unsupervised way only)."""
    if not text:
        return [UNSUPERVISED]
    out: list[Strategy] = []
    for word in (w.strip() for w in text.split(",") if w.strip()):
        if word in ("unsupervised", "unsup", "none"):
            out.append(UNSUPERVISED)
            continue
        if word in ("supervised", "sup"):
            out.append(Strategy("supervised", supervised=True))
            continue
        labels, noise = 1.0, 0.0
        for part in word.split("+"):
            key, sep, value = part.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if key == "labels" and sep and 0 < number <= 1:
                labels = number
            elif key == "noise" and sep and number >= 0:
                noise = number
            else:
                raise UsageError(
                    f"--strategies: cannot read {part!r}; write unsupervised, supervised, "
                    "labels=F (0 < F <= 1), noise=S, or labels=F+noise=S, comma-separated"
                )
        out.append(Strategy(word, supervised=True, labels=labels, noise=noise))
    if len({s.name for s in out}) != len(out):
        raise UsageError("--strategies names a strategy twice")
    return out


@dataclass(frozen=True)
class Arm:
    """One row of the table: a backbone, alone (spec None) or behind a spec, with a strategy."""

    backbone: str
    spec: str | None
    strategy: Strategy = UNSUPERVISED
    #: the spec's `name:` (L-STN), for the table
    spec_name: str | None = None

    @property
    def specs(self) -> list[str]:
        """The arm's specs: `a.spec+b.spec` is one arm of two transformers, in that order."""
        return [] if self.spec is None else self.spec.split("+")

    @property
    def slug(self) -> str:
        if self.spec is None:
            return self.backbone
        stems = "+".join(Path(s).stem for s in self.specs)
        return f"{stems}-{self.backbone}{self.strategy.slug}"

    @property
    def title(self) -> str:
        if self.spec is None:
            return f"{self.backbone} alone"
        extra = f" ({self.strategy.label})" if self.strategy.label else ""
        names = self.spec_name or " + ".join(Path(s).stem for s in self.specs)
        return f"{self.backbone} + {names}{extra}"


def plan(
    specs: Sequence[str],
    backbones: Sequence[str],
    strategies: Sequence[Strategy],
    names: dict[str, str] | None = None,
    baseline: bool = True,
) -> list[Arm]:
    """Per backbone: the backbone alone, then each spec under each strategy."""
    names = names or {}
    arms: list[Arm] = []
    for backbone in backbones:
        if baseline:
            arms.append(Arm(backbone, None))
        for spec in specs:
            for strategy in strategies:
                arms.append(Arm(backbone, spec, strategy, names.get(spec)))
    return arms


@dataclass
class SweepResult:
    out: Path
    #: per arm slug: the summaries of its seeds (in seed order)
    summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: arms left out because their directory could not be used (skip_bad_arms)
    skipped: list[str] = field(default_factory=list)


def arm_config(base: TrainConfig, arm: Arm, seed: int, out: Path, weight: float) -> TrainConfig:
    specs = arm.specs
    return base.replace(
        spec=specs[0] if specs else None,
        more_specs=tuple(specs[1:]),
        backbone=arm.backbone,
        no_stn=arm.spec is None,
        seed=seed,
        out=str(out),
        resume=False,
        **arm.strategy.config(weight),
    )


def run_sweep(
    base: TrainConfig,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    out: Path,
    *,
    theta_weight: float = 1.0,
    console: Console | None = None,
    train: Callable[..., Any] | None = None,
    skip_bad_arms: bool = False,
    runner: Runner | None = None,
) -> SweepResult:
    """Train every arm for every seed (skipping finished ones), then aggregate and write the
    table to OUT/results.md and OUT/results.json. OUT is locked for the whole sweep (one sweep
    per directory), by this process also when `runner` trains the arms elsewhere (Ray). An arm
    whose directory cannot be used (a corrupt checkpoint or summary) stops the sweep naming it,
    or with `skip_bad_arms` is left out of the table and named."""
    from lstndsl.train import loop, rundir

    say = console or Console()
    lock = rundir.claim_sweep(out)
    try:
        return _run_sweep_locked(
            Sweep(base, arms, seeds, out, theta_weight, say, skip_bad_arms),
            runner or in_process(train or loop.main, say),
        )
    finally:
        lock.release()


@dataclass
class Sweep:
    """A sweep's inputs, and what it has gathered so far."""

    base: TrainConfig
    arms: Sequence[Arm]
    seeds: Sequence[int]
    out: Path
    theta_weight: float
    say: Console
    skip_bad_arms: bool
    result: SweepResult = field(init=False)
    #: (arm slug, seed) -> the arm's summary
    got: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.result = SweepResult(self.out)

    def bad(self, which: str, message: str) -> None:
        bad_arm(self.result, which, UsageError(message), self.skip_bad_arms, self.say)


def _run_sweep_locked(sweep: Sweep, runner: Runner) -> SweepResult:
    result, out = sweep.result, sweep.out
    with contextlib.closing(runner(_jobs(sweep))) as outcomes:  # type: ignore[type-var]
        for job, outcome in outcomes:
            _record(sweep, job, outcome)
    result.summaries = {
        arm.slug: [sweep.got[arm.slug, s] for s in sweep.seeds if (arm.slug, s) in sweep.got]
        for arm in sweep.arms
        if any((arm.slug, s) in sweep.got for s in sweep.seeds)
    }
    for arm in sweep.arms:  # TensorBoard's HParams tab: OUT/hparams/s<seed>-<arm>/, once each
        for summary in result.summaries.get(arm.slug, []):
            seed = summary["seed"]
            knobs = arm_config(sweep.base, arm, seed, out, sweep.theta_weight)
            arm_hparams(out / HPARAMS / f"s{seed}-{arm.slug}", arm.slug, knobs, summary, sweep.say)
    result.rows = aggregate(sweep.arms, result.summaries)
    (out / RESULTS_MD).write_text(markdown(result.rows, sweep.base, sweep.seeds), encoding="utf-8")
    ckpt.save_json(
        out / RESULTS_JSON,
        {"seeds": list(sweep.seeds), "rows": result.rows, "runs": result.summaries},
    )
    return result


def _jobs(sweep: Sweep) -> Iterator[ArmJob]:
    """The arms still to train, seed by seed in table order; a finished arm's summary is
    reused (and the seed's dataset opened and its split written only when an arm needs it)."""
    from lstndsl.train.data import DatasetError, open_dataset

    out, say = sweep.out, sweep.say
    for seed in sweep.seeds:
        split_file = out / f"split-s{seed}.json"
        opened: dict[int | None, Any] = {}
        for arm in sweep.arms:
            config = arm_config(
                sweep.base, arm, seed, out / f"s{seed}" / arm.slug, sweep.theta_weight
            )
            arm_dir = Path(str(config.out))
            done = arm_dir / SUMMARY
            say(f"\n=== seed {seed}: {arm.title} -> {arm_dir}")
            if done.exists():
                try:
                    summary = read_summary(done)
                except UsageError as err:
                    sweep.bad(f"seed {seed}, {arm.slug}", err.diagnostics[0].message)
                    continue
                say("    finished earlier: reusing its summary.json")
                sweep.got[arm.slug, seed] = summary
                continue
            if (arm_dir / ckpt.LAST).exists():
                config = config.replace(resume=True)
            size = resolve_image_size(config)
            try:
                if size not in opened:
                    opened[size] = open_dataset(config.dataset, seed=seed, image_size=size)
                    shared_split(opened[size], split_file)
            except DatasetError as err:
                raise UsageError(err.message) from err
            config = config.replace(split_file=str(split_file))
            yield ArmJob(seed, arm, config, opened[size])


def _record(sweep: Sweep, job: ArmJob, outcome: Outcome) -> None:
    result = sweep.result
    if outcome.error is not None:
        sweep.bad(job.which, outcome.error)
        return
    if outcome.summary is None:
        result.failures.append(f"seed {job.seed}, {job.arm.title}: {outcome.crash}")
        return
    if outcome.exit_code != 0:
        result.failures.append(
            f"seed {job.seed}, {job.arm.title}: {outcome.summary['stop_reason']}"
        )
    sweep.got[job.arm.slug, job.seed] = outcome.summary


def read_summary(path: Path) -> dict[str, Any]:
    """An arm's summary.json, or UsageError saying why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a run's summary (not a JSON object)")
    missing = [k for k in ("seed", "params", "params_stn", "image_size") if k not in data]
    if missing:
        raise UsageError(f"{path} is not a run's summary (no {', '.join(missing)})")
    return data


def bad_arm(
    result: SweepResult, which: str, err: UsageError, skip: bool, say: Callable[[str], None]
) -> None:
    """An arm that cannot be used: named and skipped (`--skip-bad-arms`), or the sweep stops."""
    message = err.diagnostics[0].message
    if not skip:
        raise UsageError(
            f"{which}: {message}; the sweep stops here (add --skip-bad-arms to go on with the "
            "other arms)"
        ) from None
    say(f"    skipped: {message}")
    result.skipped.append(f"{which}: {message}")


def shared_split(dataset: Any, path: Path) -> None:
    """Write the seed's split on first use; afterwards check the data still gives that split."""
    from lstndsl.train.data import load_split

    if path.exists():
        if not load_split(path, dataset).same_as(dataset.split):
            raise UsageError(f"{path} is not the split this dataset and seed give")
    else:
        dataset.write_split(path)


# --- the table -----------------------------------------------------------------------------------

#: summary keys averaged over seeds
MEASURES = (
    "val_top1",
    "test_top1",
    "test_top5",
    "test_theta_error",
    "val_theta_error",
    "selected_epoch",
    "epochs",
    "wall_time",
)


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """{mean, std (sample, n-1; None for one value), n} over the values that exist."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0}
    return {
        "mean": statistics.fmean(xs),
        "std": statistics.stdev(xs) if len(xs) > 1 else None,
        "n": len(xs),
    }


def aggregate(
    arms: Sequence[Arm], summaries: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    rows = []
    for arm in arms:
        runs = summaries.get(arm.slug, [])
        if not runs:
            continue
        first = runs[0]
        row: dict[str, Any] = {
            "arm": arm.slug,
            "model": arm.title,
            "backbone": arm.backbone,
            "spec": arm.spec,
            "strategy": arm.strategy.name,
            "params": first["params"],
            "params_stn": first["params_stn"],
            "macs": first.get("macs"),
            "image_size": first["image_size"],
            "seeds": [r["seed"] for r in runs],
            "failed": sum(bool(r.get("failed")) for r in runs),
        }
        for key in MEASURES:
            row[key] = mean_std([r.get(key) for r in runs])
        rows.append(row)
    return rows


def _pm(stat: dict[str, Any], digits: int = 2) -> str:
    if stat["mean"] is None:
        return "–"
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _count(n: int | None) -> str:
    if n is None:
        return "–"
    if n >= 1e9:
        return f"{n / 1e9:.3g}G"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    return f"{n / 1e3:.3g}k" if n >= 1e3 else str(n)


def markdown(rows: Sequence[dict[str, Any]], base: TrainConfig, seeds: Sequence[int]) -> str:
    """The comparison table and what it means, in Markdown."""
    theta = any(r["test_theta_error"]["mean"] is not None for r in rows)
    head = ["Model", "Parameters", "MACs", "Val top-1 (%)", "Test top-1 (%)", "Test top-5 (%)"]
    if theta:
        head.append("θ error (px)")
    head.append("Epochs")
    if theta:
        head.append("Val θ error (px)")
    head.append("Wall time (min)")
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for r in rows:
        cells = [
            r["model"] + (f" ⚠ {r['failed']} failed" if r["failed"] else ""),
            _count(r["params"]),
            _count(r["macs"]),
            _pm(r["val_top1"]),
            _pm(r["test_top1"]),
            _pm(r["test_top5"]),
        ]
        if theta:
            cells.append(_pm(r["test_theta_error"]))
        cells.append(_pm(r["epochs"], 1))
        if theta:
            cells.append(_pm(r["val_theta_error"]))
        wall = r["wall_time"]
        minutes = {k: (v / 60 if k != "n" and v is not None else v) for k, v in wall.items()}
        cells.append(_pm(minutes, 1))
        lines.append("| " + " | ".join(cells) + " |")
    n = len(seeds)
    spread = (
        f"mean ± sample standard deviation over {n} seeds ({', '.join(map(str, seeds))})"
        if n > 1
        else f"one seed ({seeds[0]}): no spread to report"
    )
    from lstndsl.train.optim import protocol

    size = rows[0]["image_size"] if rows else "?"
    notes = [
        "",
        f"Dataset {base.dataset}, {size}×{size} input; {spread}. Each seed draws one split, "
        "shared by every arm; weights and data order also follow the seed.",
        "Test accuracy: evaluated once, on the checkpoint with the best validation top-1 (the "
        "paper's 'top-5' figures are top-1 values). Parameters: every trainable parameter. "
        "MACs: one image, thop's rules as the paper counts them (grid and sampler free); "
        "– when no counter was available.",
        f"Protocol: {protocol(base)}, batch {base.batch_size}, early stopping window "
        f"{base.stop_window} ±{base.stop_tolerance:g} points after {base.min_epochs} epochs, at "
        f"most {base.max_epochs} epochs"
        + (f" / {base.max_steps} steps" if base.max_steps else "")
        + (f", {base.limit_batches} batches per epoch" if base.limit_batches else "")
        + ".",
    ]
    if theta:
        notes.append(
            "θ error: mean distance in pixels between the sampling grid of the predicted θ and "
            "that of the ideal θ (which undoes each digit's known distortion), test set."
        )
    return "\n".join(lines + notes) + "\n"
