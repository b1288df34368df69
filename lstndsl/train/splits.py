"""Train/validation/test splits: the paper's sizes, drawn from a seed, saved as JSON.

What it is: the size rules (CIFAR-10 40,000/10,000 from the training set plus the official
10,000 test; Caltech-101 6,277/1,200/1,200, scaled when the folder holds another number; 70/15/15
for the digits and `folder:`), a seeded draw (a private `numpy.random.Generator`, never the
global RNG, so the same dataset and seed always give the same split, shared by every arm of an
experiment), and a JSON file the trainer writes into the run directory and can load back,
validated against the dataset it is meant for.
What it is not: anything about images; indices refer to the dataset's example order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstndsl.train.datasets import DatasetError

SplitName = Literal["train", "val", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "val", "test")
FORMAT = "lstndsl-split/1"
#: the name of the split file in a run directory
SPLIT_FILE = "split.json"

#: the paper's CIFAR-10 split of its 50,000 training images
CIFAR_TRAIN, CIFAR_VAL = 40_000, 10_000
#: the paper's Caltech-101 split of its 8,677 images
CALTECH_TOTAL, CALTECH_TRAIN, CALTECH_VAL, CALTECH_TEST = 8_677, 6_277, 1_200, 1_200
#: validation and test fractions for the datasets the paper does not use
DEFAULT_VAL_FRACTION = DEFAULT_TEST_FRACTION = 0.15

# streams of randomness derived from one seed, so a split never shares draws with shuffling
STREAM_SPLIT, STREAM_DISTORT, STREAM_SHUFFLE = 1, 2, 3


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A private generator for (seed, stream...), independent of every other stream."""
    if seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng([seed, *stream])


@dataclass(frozen=True)
class SplitSizes:
    """How many examples each split gets, and where they come from."""

    train: int
    val: int
    test: int
    #: how the sizes were chosen, in words (written into the split file)
    rule: str
    #: True when the dataset's size differs from the paper's and its proportions were scaled
    scaled: bool = False


def _at_least_one(n: int, val: int, test: int, what: str) -> tuple[int, int, int]:
    if n < 3:
        raise DatasetError(f"{what}: {n} examples cannot make train, validation and test splits")
    val, test = max(1, val), max(1, test)
    return n - val - test, val, test


def cifar10_sizes(n_train_pool: int, n_test: int) -> SplitSizes:
    """40,000 train / 10,000 validation from the 50,000 training images; test = test_batch.

    Another pool size keeps the paper's 4:1 ratio (the sizes tests use on small fakes).
    """
    if n_train_pool < 2 or n_test < 1:
        raise DatasetError(
            f"cifar10: {n_train_pool} training and {n_test} test images are too few to split"
        )
    if n_train_pool == CIFAR_TRAIN + CIFAR_VAL:
        return SplitSizes(
            CIFAR_TRAIN, CIFAR_VAL, n_test, "paper: 40,000/10,000 of the training set"
        )
    val = max(1, round(n_train_pool * CIFAR_VAL / (CIFAR_TRAIN + CIFAR_VAL)))
    return SplitSizes(
        n_train_pool - val,
        val,
        n_test,
        f"{n_train_pool:,} training images, not 50,000: the paper's 4:1 train:validation "
        "ratio kept",
        scaled=True,
    )


def caltech101_sizes(n: int) -> SplitSizes:
    """6,277/1,200/1,200 of 8,677 images; another count keeps those proportions."""
    if n == CALTECH_TOTAL:
        return SplitSizes(CALTECH_TRAIN, CALTECH_VAL, CALTECH_TEST, "paper: 6,277/1,200/1,200")
    train, val, test = _at_least_one(
        n,
        round(n * CALTECH_VAL / CALTECH_TOTAL),
        round(n * CALTECH_TEST / CALTECH_TOTAL),
        "caltech101",
    )
    return SplitSizes(
        train,
        val,
        test,
        f"{n:,} images, not the paper's 8,677: its proportions (72.3/13.8/13.8 %) kept",
        scaled=True,
    )


def proportional_sizes(
    n: int,
    what: str,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> SplitSizes:
    """70/15/15 (by default) of n examples, each split at least one."""
    train, val, test = _at_least_one(n, round(n * val_fraction), round(n * test_fraction), what)
    parts = (1 - val_fraction - test_fraction, val_fraction, test_fraction)
    pct = "/".join(f"{100 * p:g}" for p in parts)
    return SplitSizes(train, val, test, f"{pct} % of {n:,} examples")


@dataclass(frozen=True, eq=False)
class Split:
    """Which examples (indices into the dataset) are train, val and test. Indices are sorted."""

    dataset: str
    seed: int
    num_examples: int
    #: a hash of the dataset's example keys and labels: a split only fits the data it was drawn on
    fingerprint: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    rule: str

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        arr: np.ndarray = getattr(self, name)
        return arr

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(self[name]) for name in SPLIT_NAMES}

    def same_as(self, other: Split) -> bool:
        return (
            self.dataset == other.dataset
            and self.num_examples == other.num_examples
            and self.fingerprint == other.fingerprint
            and all(np.array_equal(self[n], other[n]) for n in SPLIT_NAMES)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "dataset": self.dataset,
            "seed": self.seed,
            "num_examples": self.num_examples,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "counts": self.counts,
            "indices": {name: self[name].tolist() for name in SPLIT_NAMES},
        }


def fingerprint(kind: str, keys: Sequence[str], labels: np.ndarray, extra: bytes = b"") -> str:
    """sha256 over the dataset kind, example keys, labels and `extra` (e.g. the digits' θ)."""
    h = hashlib.sha256()
    h.update(kind.encode())
    h.update("\n".join(keys).encode())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update(extra)
    return "sha256:" + h.hexdigest()


def split_fingerprint(split: Split) -> str:
    """sha256 over the data's fingerprint and the three index lists: which examples trained,
    validated and tested. Checkpoints record it, so an edited split.json cannot pass for the
    one a run trained on."""
    h = hashlib.sha256(f"{split.dataset}\0{split.fingerprint}\0".encode())
    for name in SPLIT_NAMES:
        h.update(name.encode() + b"\0")
        h.update(np.ascontiguousarray(split[name], dtype="<i8").tobytes())
    return "sha256:" + h.hexdigest()


def draw_split(
    dataset: str,
    seed: int,
    num_examples: int,
    sizes: SplitSizes,
    fingerprint: str,
    fixed_test: np.ndarray | None = None,
) -> Split:
    """Draw the split: a seeded permutation of the examples (minus a fixed test set, if any)."""
    everything = np.arange(num_examples, dtype=np.int64)
    pool = everything if fixed_test is None else np.setdiff1d(everything, fixed_test)
    want = sizes.train + sizes.val + (0 if fixed_test is not None else sizes.test)
    if want != len(pool):
        raise ValueError(f"split sizes {sizes} do not add up to the {len(pool)} examples")
    order = rng_for(seed, STREAM_SPLIT).permutation(pool)
    train = np.sort(order[: sizes.train])
    val = np.sort(order[sizes.train : sizes.train + sizes.val])
    test = np.sort(order[sizes.train + sizes.val :] if fixed_test is None else fixed_test)
    return Split(dataset, seed, num_examples, fingerprint, train, val, test, sizes.rule)


def save_split(split: Split, path: str | Path) -> Path:
    """Write the split as JSON to `path` (a directory gets `split.json` inside). Returns the file.

    One index list per line, so the file stays readable and diffable.
    """
    target = Path(path)
    if target.is_dir():
        target = target / SPLIT_FILE
    data = split.to_json()
    indices = data.pop("indices")
    head = json.dumps(data, indent=2)[:-2]  # drop the closing "\n}"
    lists = ",\n".join(f'    "{name}": {json.dumps(indices[name])}' for name in SPLIT_NAMES)
    target.write_text(f'{head},\n  "indices": {{\n{lists}\n  }}\n}}\n', encoding="utf-8")
    return target


def read_split(path: str | Path) -> Split:
    """Read a split file (a directory means its `split.json`), checking its own consistency."""
    source = Path(path)
    if source.is_dir():
        source = source / SPLIT_FILE
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"split file {source} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(f"split file {source} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatasetError(f"split file {source} is not a {FORMAT} file")
    try:
        n = int(data["num_examples"])
        parts = {name: _index_array(data["indices"][name], name) for name in SPLIT_NAMES}
        split = Split(
            dataset=str(data["dataset"]),
            seed=int(data["seed"]),
            num_examples=n,
            fingerprint=str(data["fingerprint"]),
            rule=str(data.get("rule", "")),
            **parts,
        )
        declared = {k: int(v) for k, v in data["counts"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"split file {source} is missing or mangles a field: {exc}") from exc
    problems = split_problems(split)
    if declared != split.counts:
        problems.append(f"its counts {declared} do not match its index lists {split.counts}")
    if problems:
        raise DatasetError(f"split file {source} is inconsistent: {'; '.join(problems)}")
    return split


def _index_array(value: object, name: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ValueError(f"indices.{name} is not a list of integers")
    return np.asarray(value, dtype=np.int64)


def split_problems(split: Split) -> list[str]:
    """Everything wrong with a split by itself: range, duplicates, overlaps, empty parts."""
    problems = []
    for name in SPLIT_NAMES:
        idx = split[name]
        if idx.ndim != 1:
            problems.append(f"{name} is not a flat list")
            continue
        if len(idx) == 0:
            problems.append(f"{name} is empty")
        elif idx.min() < 0 or idx.max() >= split.num_examples:
            problems.append(f"{name} has indices outside 0..{split.num_examples - 1}")
        if len(np.unique(idx)) != len(idx):
            problems.append(f"{name} repeats indices")
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1 :]:
            common = np.intersect1d(split[a], split[b])
            if len(common):
                problems.append(f"{a} and {b} share {len(common)} indices (e.g. {common[0]})")
    return problems


def check_split_fits(split: Split, dataset: str, num_examples: int, fp: str, where: str) -> None:
    """Raise DatasetError unless `split` was drawn on this very dataset."""
    if split.dataset != dataset:
        raise DatasetError(f"{where} is a split of {split.dataset}, not of {dataset}")
    if split.num_examples != num_examples:
        raise DatasetError(
            f"{where} is a split of {split.num_examples:,} examples, but {dataset} has "
            f"{num_examples:,}"
        )
    if split.fingerprint != fp:
        raise DatasetError(
            f"{where} was drawn on different {dataset} data (fingerprint {split.fingerprint[:19]}… "
            f"≠ {fp[:19]}…): other files, labels or digit distortions"
        )
    problems = split_problems(split)
    if problems:
        raise DatasetError(f"{where} is inconsistent: {'; '.join(problems)}")
