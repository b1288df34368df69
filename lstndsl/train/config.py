"""The trainer's one typed config object: every knob of a run, the paper's protocol as defaults.

What it is: `TrainConfig` (a frozen dataclass, JSON round-trip, value checks that raise
`UsageError`) and the few rules that resolve a default from other knobs (the run directory's
name). What it is not: flag parsing (`lstndsl/commands/train.py`) or anything that imports torch.

Protocol defaults (../shared/paper/L-STN.md): Adam 1e-3 (β 0.9, 0.999), weight decay 0,
cross-entropy (mean, no smoothing), no scheduler, no augmentation, early stopping as the
notebooks do it. Batch size 16: inside the paper's 10–20, a power of two (friendly to the
kernels), it divides CIFAR-10's 40,000/10,000 exactly (no ragged last batch), and it keeps
batch-norm statistics stable enough in the L-STN localization net.

Beyond the paper, off by default: AdamW or SGD, a cosine or step schedule with linear warm-up,
label smoothing and gradient-norm clipping (the knobs people expect from torchvision's and
timm's trainers; lstndsl/train/optim.py builds them from torch's own classes).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstndsl.errors import UsageError

#: the AMP modes `--amp` accepts (None = full fp32)
AMP_MODES = ("bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
#: the optimizers `--optimizer` accepts (torch.optim's Adam, AdamW, SGD)
OPTIMIZERS = ("adam", "adamw", "sgd")
#: the learning-rate schedules `--schedule` accepts (none = constant, the paper's)
SCHEDULES = ("none", "cosine", "step")
#: SGD's momentum, and the step schedule's period and factor, when not given (torchvision's
#: classification reference: momentum 0.9, lr × 0.1 every 30 epochs)
SGD_MOMENTUM = 0.9
STEP_EPOCHS = 30
STEP_GAMMA = 0.1
#: knobs that may differ when a run is resumed (the budget, the place, the machine, the output)
RESUMABLE = ("max_epochs", "max_steps", "out", "device", "resume", "checkpoint_every", "pictures")
#: knobs whose change on resume the cosine schedule forbids: it anneals over the budget the run
#: started with (its horizon is in the scheduler state last.pt carries)
COSINE_BUDGET = ("max_epochs", "max_steps")
#: the largest seed every generator takes (torch's manual_seed, numpy's SeedSequence)
MAX_SEED = 2**63 - 1
#: a model input side beyond this is a typo, not a picture (4096² × 3 floats is 200 MB an image)
MAX_IMAGE_SIZE = 4096
#: what each annotation of TrainConfig admits (bool is no int here, an int is a float)
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (type(None),),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides the data on disk. Written to the run's config.json and
    into every checkpoint, so a run can be rebuilt and resumed from its directory alone."""

    # --- what is trained
    #: the spec file (None only with no_stn); its text is copied into the run and checkpoints
    spec: str | None
    #: a backbone name `compiler.backbones.create` knows (resnet18, resnet50, efficientnet_b0 …)
    backbone: str
    #: train the backbone alone (no spatial transformer) under the same data, split and budget
    no_stn: bool = False
    #: further specs after `spec`, in the order their transformers apply (each at its `at:`
    #: site); their texts are copied into the run and checkpoints too
    more_specs: tuple[str, ...] = ()

    # --- data
    #: rts (RTS MNIST, embedded), digits (the older 64×64 canvas), cifar10:DIR, caltech101:DIR
    #: or folder:DIR
    dataset: str = "rts"
    #: model input side N (N×N); None = the digits' own canvas, the backbone's resolution else
    image_size: int | None = None
    #: a split file to reuse (another run's split.json); None = draw it from `seed`
    split_file: str | None = None
    #: seed of everything random: split, digit distortions, weight init, data order
    seed: int = 0

    # --- protocol (the paper's)
    #: examples per batch (per process under DDP)
    batch_size: int = 16
    #: adam (the paper), adamw (decoupled weight decay) or sgd (with momentum)
    optimizer: str = "adam"
    #: the optimizer's (peak) learning rate
    lr: float = 1e-3
    #: Adam's and AdamW's β1, β2
    betas: tuple[float, float] = (0.9, 0.999)
    #: SGD's momentum (None = 0.9); only with optimizer sgd
    momentum: float | None = None
    #: weight decay (the paper: 0); AdamW's is decoupled from the gradient, Adam's and SGD's is
    #: L2 added to it
    weight_decay: float = 0.0
    #: the localization net and head train at lr × this (1.0 = the paper); every schedule
    #: scales both groups by the same factor, so the ratio holds throughout
    stn_lr_mult: float = 1.0
    #: none (constant, the paper), cosine (to 0 at the budget's last step) or step (× step_gamma
    #: every step_epochs epochs); updated after every optimizer step
    schedule: str = "none"
    #: linear warm-up from lr / steps to lr over this many epochs' steps, before the schedule
    warmup_epochs: int = 0
    #: the step schedule's period in epochs (None = 30); only with schedule step
    step_epochs: int | None = None
    #: the step schedule's factor (None = 0.1); only with schedule step
    step_gamma: float | None = None
    #: label smoothing of the training cross-entropy (0 = none, the paper); validation and test
    #: losses stay plain cross-entropy
    label_smoothing: float = 0.0
    #: clip the global gradient norm (all parameters, L2) to this before each step (None = off)
    clip_grad: float | None = None
    #: early stopping: how many recent validation accuracies must agree
    stop_window: int = 10
    #: early stopping: each of them within ± this many points (percent) of their mean
    stop_tolerance: float = 0.25
    #: early stopping: never before this many epochs (the notes do not give the notebooks' value)
    min_epochs: int = 10
    #: hard budget in epochs
    max_epochs: int = 100
    #: hard budget in optimizer steps (None = no limit); the last epoch may then be partial
    max_steps: int | None = None
    #: at most this many training batches per epoch (None = the whole training split); for
    #: quick looks and tests, not for results
    limit_batches: int | None = None

    # --- θ supervision (issue 5); off by default = the paper's unsupervised way
    #: weight W of the θ loss (mean sampling-grid distance to the ideal θ, in half-image units)
    theta_loss: float = 0.0
    #: share of the training images whose ideal θ the θ loss may use (weak supervision)
    theta_labels: float = 1.0
    #: σ of the Gaussian noise added once, per image, to each entry of its ideal θ
    theta_noise: float = 0.0

    # --- θ watch
    #: stop when the validation sampling grids lie on average more than this share outside
    #: the image (the transformer zooms out to nothing)
    collapse_outside: float = 0.9
    #: stop when the mean validation scale falls below this (it zooms in to a point)
    collapse_min_scale: float = 0.02

    # --- where and how
    #: run directory; None = runs/<spec>-<backbone>-<dataset>-s<seed> (next free -2, -3 …)
    out: str | None = None
    #: auto (CUDA when available), cpu or cuda
    device: str = "auto"
    #: automatic mixed precision: None, "bf16" or "fp16" (with a gradient scaler)
    amp: str | None = None
    #: channels-last memory format: None = auto (CUDA; the CPU at ≥ 128 px), True/False forced
    channels_last: bool | None = None
    #: torch.compile the model (inductor)
    compile: bool = False
    #: torch.use_deterministic_algorithms(True) (warn-only on CUDA: grid_sample's backward)
    deterministic: bool = False
    #: also write the `last` checkpoint every N optimizer steps (0 = at epoch ends only)
    checkpoint_every: int = 0
    #: images in the picture grid (0 = no pictures)
    pictures: int = 8
    #: continue the run in `out` from its `last` checkpoint
    resume: bool = False

    def __post_init__(self) -> None:
        check_types(self)
        self.validate()

    def validate(self) -> None:
        """Raise UsageError for any value that cannot be used."""
        problems: list[str] = []

        def need(ok: bool, text: str) -> None:
            if not ok:
                problems.append(text)

        need(self.no_stn or bool(self.spec), "a SPEC is needed unless --no-stn is given")
        need(not (self.no_stn and self.more_specs), "--no-stn trains the backbone alone: no SPEC")
        need(bool(self.backbone), "--backbone is needed")
        need(
            self.image_size is None or 8 <= self.image_size <= MAX_IMAGE_SIZE,
            f"--image-size must lie in 8..{MAX_IMAGE_SIZE}",
        )
        floats = (
            "lr",
            "weight_decay",
            "stn_lr_mult",
            "stop_tolerance",
            "theta_loss",
            "theta_noise",
            "momentum",
            "step_gamma",
            "label_smoothing",
            "clip_grad",
        )
        for name in floats:
            value = getattr(self, name)
            need(
                value is None or math.isfinite(value), f"--{name.replace('_', '-')} must be finite"
            )
        need(0 <= self.seed <= MAX_SEED, f"--seed must be an integer in 0..{MAX_SEED}")
        need(self.batch_size >= 1, "--batch-size must be at least 1")
        need(self.lr > 0, "--lr must be positive")
        need(all(0 <= b < 1 for b in self.betas), "Adam's betas must lie in [0, 1)")
        need(self.weight_decay >= 0, "--weight-decay must be non-negative")
        need(self.stn_lr_mult >= 0, "--stn-lr-mult must be non-negative")
        need(self.stop_window >= 1, "--stop-window must be at least 1")
        need(self.stop_tolerance >= 0, "--stop-tolerance must be non-negative")
        need(self.min_epochs >= 0, "--min-epochs must be non-negative")
        need(self.max_epochs >= 1, "--max-epochs must be at least 1")
        need(self.max_steps is None or self.max_steps >= 1, "--max-steps must be at least 1")
        need(
            self.limit_batches is None or self.limit_batches >= 1,
            "--limit-batches must be at least 1",
        )
        need(self.theta_loss >= 0, "--theta-loss must be non-negative")
        need(0 <= self.theta_labels <= 1, "--theta-labels is a fraction in [0, 1]")
        need(self.theta_noise >= 0, "--theta-noise must be non-negative")
        need(0 < self.collapse_outside <= 1, "the collapse share must lie in (0, 1]")
        need(self.collapse_min_scale >= 0, "the collapse scale must be non-negative")
        need(self.device in DEVICES, f"--device is one of {', '.join(DEVICES)}")
        need(self.amp is None or self.amp in AMP_MODES, f"--amp is one of {', '.join(AMP_MODES)}")
        need(self.checkpoint_every >= 0, "--checkpoint-every must be non-negative")
        need(self.pictures >= 0, "--pictures must be non-negative")
        need(
            not (self.no_stn and self.theta_loss > 0),
            "--theta-loss needs a spatial transformer (it cannot go with --no-stn)",
        )
        problems.extend(self._optimizer_problems())
        if problems:
            raise UsageError("; ".join(problems))

    def _optimizer_problems(self) -> list[str]:
        """What is wrong with the optimizer, schedule, smoothing and clipping knobs."""
        problems: list[str] = []

        def need(ok: bool, text: str) -> None:
            if not ok:
                problems.append(text)

        need(self.optimizer in OPTIMIZERS, f"--optimizer is one of {', '.join(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, f"--schedule is one of {', '.join(SCHEDULES)}")
        need(
            self.momentum is None or self.optimizer == "sgd",
            "--momentum is SGD's: it needs --optimizer sgd",
        )
        need(self.momentum is None or 0 <= self.momentum < 1, "--momentum must lie in [0, 1)")
        need(self.warmup_epochs >= 0, "--warmup-epochs must be non-negative")
        stepped = self.step_epochs is not None or self.step_gamma is not None
        need(
            not stepped or self.schedule == "step",
            "--step-epochs and --step-gamma set the step schedule: they need --schedule step",
        )
        need(self.step_epochs is None or self.step_epochs >= 1, "--step-epochs must be at least 1")
        need(
            self.step_gamma is None or 0 < self.step_gamma <= 1,
            "--step-gamma must lie in (0, 1]",
        )
        need(0 <= self.label_smoothing < 1, "--label-smoothing must lie in [0, 1)")
        need(self.clip_grad is None or self.clip_grad > 0, "--clip-grad must be positive")
        return problems

    # --- derived
    @property
    def sgd_momentum(self) -> float:
        """SGD's momentum, the default resolved."""
        return SGD_MOMENTUM if self.momentum is None else self.momentum

    @property
    def step_schedule(self) -> tuple[int, float]:
        """The step schedule's (period in epochs, factor), the defaults resolved."""
        return (
            STEP_EPOCHS if self.step_epochs is None else self.step_epochs,
            STEP_GAMMA if self.step_gamma is None else self.step_gamma,
        )

    @property
    def theta_supervised(self) -> bool:
        """Whether the θ loss is on at all (a weight and some labelled images)."""
        return self.theta_loss > 0 and self.theta_labels > 0

    @property
    def spec_paths(self) -> list[str]:
        """Every spec, in the order their transformers apply (none with no_stn)."""
        return [] if self.no_stn or not self.spec else [self.spec, *self.more_specs]

    @property
    def spec_stem(self) -> str:
        paths = self.spec_paths
        return "+".join(Path(p).stem for p in paths) if paths else "nostn"

    def default_out(self) -> Path:
        """runs/<spec>-<backbone>-<dataset>-s<seed> (the dataset's kind, not its path)."""
        kind = self.dataset.partition(":")[0].lower() or "rts"
        return Path("runs") / f"{self.spec_stem}-{self.backbone}-{kind}-s{self.seed}"

    # --- JSON
    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        data["betas"] = list(self.betas)
        data["more_specs"] = list(self.more_specs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            from lstndsl.errors import did_you_mean

            hint = did_you_mean(unknown[0], known)
            raise UsageError(
                f"unknown config keys: {', '.join(unknown)}" + (f" ({hint})" if hint else "")
            )
        if not isinstance(data.get("betas", []), list | tuple):
            raise UsageError(f"config field betas should be two numbers, not {data['betas']!r}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        if isinstance(values.get("more_specs"), list):
            values["more_specs"] = tuple(values["more_specs"])
        return cls(**values)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """{knob: (mine, theirs)} for every knob that differs."""
        mine, theirs = self.to_json(), other.to_json()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


def resume_changes(before: TrainConfig, after: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """{knob: (before, after)} for what a resume of `before` as `after` may not change:
    everything outside RESUMABLE and, under the cosine schedule, the budget."""
    fixed = COSINE_BUDGET if before.schedule == "cosine" else ()
    return {k: v for k, v in before.differences(after).items() if k not in RESUMABLE or k in fixed}


def check_types(config: TrainConfig) -> None:
    """UsageError naming the first field whose value is not of its declared type (a config.json
    edited by hand: "lr": "fast", "batch_size": 16.5)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "betas":
            ok = (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(b, int | float) and not isinstance(b, bool) for b in value)
            )
            wanted = "two numbers"
        elif f.name == "more_specs":
            ok = isinstance(value, tuple) and all(isinstance(s, str) for s in value)
            wanted = "a list of spec paths"
        else:
            words = [w.strip() for w in str(f.type).split("|")]
            allowed = tuple(t for w in words for t in _TYPES.get(w, (object,)))
            ok = isinstance(value, allowed) and not (
                isinstance(value, bool) and "bool" not in words
            )
            wanted = " or ".join(words)
        if not ok:
            raise UsageError(f"config field {f.name} should be {wanted}, not {value!r}")
