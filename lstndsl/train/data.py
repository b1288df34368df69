"""The trainer's data layer: open a dataset by name, get its split, iterate batches.

    ds = open_dataset("rts", seed=0, image_size=None)            # or "cifar10:DIR", ...
    ds.write_split(run_dir)                                       # run_dir/split.json
    for batch in ds.batches("train", 16, epoch=e, start_batch=k):  # resumable mid-epoch
        logits = model(batch.images); loss = F.cross_entropy(logits, batch.labels)
        if batch.theta is not None: err = theta_recovery_error(pred_theta, batch.theta, ...)

Names: `rts` (the default: RTS MNIST, embedded, with ideal θ), `digits` (alias `mnist`: the
same digits on the older 64×64 canvas; see digits.py),
`cifar10:DIR`, `caltech101:DIR`, `folder:DIR`. Nothing is downloaded, ever.

Preprocessing, as in the paper: bilinear resize to the model's input size, then normalize,
no augmentation. Images stay uint8 in memory (see `datasets.py` for sizes). Each batch is
gathered, converted to float32, replicated to 3 channels (digits) and normalized at the stored
size, then resized if the stored size differs from the output size (CIFAR-10 from 32 px;
Caltech and folders are stored at the output size already). The resize is `F.interpolate`'s
bilinear (antialiased when shrinking) computed as two matrix products (`resize_bilinear`),
which is 2–3× faster here; normalizing before resizing is exact because bilinear weights sum
to 1, and it touches the small tensor instead of the big one.
Normalization: mean 0.5/std 0.5 for CIFAR-10 and ImageNet's mean/std for Caltech-101 and
folders, as the paper does. The digits use mean 0/std 1 (pixels in [0, 1]) on purpose: their
background is then exactly 0, the value `grid_sample` pads with, so the sampler commutes with
normalization (θ_ideal applied to a normalized batch gives the normalized centred digit), and a
zooming-out transformer frames the digit in background, not in a grey border no training image
has. ImageNet statistics describe photographs, not white strokes on black.

Batches: a deterministic permutation per (seed, epoch) from a private generator; sharding like
`DistributedSampler` (rank r takes every world_size-th index of the epoch's order; without
drop_last the order is first padded by wrapping round so every rank gets the same count, with
drop_last it is cut instead, so ranks are strictly disjoint); `start_batch` skips the batches a
killed run already did. For exact evaluation use world_size=1 (padding repeats examples).

What it is not: the training loop, augmentation, or the naive baseline (`baseline.py`).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstndsl.train.datasets import (
    DatasetError,
    Source,
    read_caltech101,
    read_cifar10,
    read_digits,
    read_folder,
)
from lstndsl.train.digits import VARIANTS, theta_recovery_error
from lstndsl.train.splits import (
    STREAM_DISTORT,
    STREAM_SHUFFLE,
    Split,
    SplitName,
    SplitSizes,
    caltech101_sizes,
    check_split_fits,
    cifar10_sizes,
    draw_split,
    fingerprint,
    proportional_sizes,
    read_split,
    rng_for,
    save_split,
)

__all__ = [
    "Batch",
    "Dataset",
    "DatasetError",
    "Split",
    "denormalize",
    "load_split",
    "open_dataset",
    "parse_dataset_name",
    "resize_bilinear",
    "shard",
    "theta_recovery_error",
]

CIFAR_MEAN = CIFAR_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_MEAN = (0.0, 0.0, 0.0)
DIGITS_STD = (1.0, 1.0, 1.0)
#: output size for Caltech-101 and folders when none is given (the paper's ResNet/DenseNet size)
DEFAULT_PHOTO_SIZE = 224

#: the names `open_dataset` knows, and whether each needs a directory
KINDS = {"rts": False, "digits": False, "cifar10": True, "caltech101": True, "folder": True}
ALIASES = {"mnist": "digits", "rts-mnist": "rts"}
_USAGE = (
    "rts (the default: RTS MNIST, embedded), digits (alias mnist: the embedded digits on the"
    " 64×64 canvas used before 0.2), cifar10:DIR, caltech101:DIR, folder:DIR"
)


@dataclass(frozen=True)
class Batch:
    """One batch, ready for the model."""

    #: float32 B×3×H×W, normalized with the dataset's mean and std
    images: torch.Tensor
    #: int64 B
    labels: torch.Tensor
    #: float32 B×2×3, the θ that undoes each image's distortion (digits); None otherwise
    theta: torch.Tensor | None
    #: int64 B, the examples' indices in the dataset (which examples these are)
    indices: torch.Tensor
    #: the batch's position in its epoch (what `start_batch` counts)
    number: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Images, labels and θ on `device`; `indices` stay on the CPU (bookkeeping)."""
        return replace(
            self,
            images=self.images.to(device, non_blocking=non_blocking),
            labels=self.labels.to(device, non_blocking=non_blocking),
            theta=None if self.theta is None else self.theta.to(device, non_blocking=non_blocking),
        )


@lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """n_in×n_out weights of bilinear resampling along one axis, antialiased when shrinking:
    exactly `F.interpolate`'s, read off by resizing the identity."""
    # cpu-ok: resize weights are made once on the host, moved with the batch
    eye = torch.eye(n_in, dtype=torch.float32).view(1, 1, n_in, n_in)
    weights = F.interpolate(
        eye, size=(n_in, n_out), mode="bilinear", antialias=n_out < n_in, align_corners=False
    )
    return weights[0, 0].contiguous()


def resize_bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize B×C×h×w float images to size×size: `F.interpolate(mode="bilinear",
    antialias=True, align_corners=False)` up to float rounding, as two matrix products.

    Bilinear resizing is separable and linear, so it is rows·X·cols with two small weight
    matrices (cached per size pair). On this machine that is 2.4 ms for 16×3×32×32 -> 224,
    against 5.8–8 ms for `F.interpolate`, and it does not slow down when the cores are busy.
    """
    h, w = images.shape[-2:]
    rows = _resize_matrix(int(h), size).T  # size×h
    cols = _resize_matrix(int(w), size)  # w×size
    return torch.matmul(rows, torch.matmul(images, cols))


def shard(order: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """Rank `rank`'s share of an epoch's order, as `DistributedSampler` cuts it.

    Every rank gets the same count. Without drop_last the order is first padded by wrapping
    round (so a few examples repeat); with it the tail is cut (so shards are disjoint).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
    if world_size == 1:
        return order
    if drop_last:
        order = order[: len(order) // world_size * world_size]
    else:
        order = np.resize(order, math.ceil(len(order) / world_size) * world_size)
    return order[rank::world_size]


def parse_dataset_name(name: str) -> tuple[str, Path | None]:
    """`"cifar10:DIR"` -> ("cifar10", Path(DIR)); `"digits"` -> ("digits", None)."""
    word, sep, rest = name.strip().partition(":")
    kind = ALIASES.get(word.lower(), word.lower())
    if kind not in KINDS:
        known = [*KINDS, *ALIASES]
        close = difflib.get_close_matches(word.lower(), known, n=1, cutoff=0.5)
        guess = ""
        if close:
            target = ALIASES.get(close[0], close[0])
            guess = f"did you mean {target}{':' + rest if KINDS[target] else ''}? "
        raise DatasetError(f"unknown dataset {name!r}: {guess}Known: {_USAGE}")
    if KINDS[kind] and not (sep and rest.strip()):
        raise DatasetError(
            f"{kind} needs a directory: write {kind}:DIR (no data is ever downloaded)"
        )
    if not KINDS[kind] and sep:
        raise DatasetError(f"{kind} is embedded and takes no directory: write just {kind}")
    return kind, (Path(rest.strip()).expanduser() if KINDS[kind] else None)


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo the normalization (B×C×H×W or C×H×W) and clamp to [0, 1], for pictures."""
    shape = (-1, 1, 1)
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images * s + m).clamp(0.0, 1.0)


class Dataset:
    """A dataset in memory with its split; makes normalized batches at `image_size`."""

    def __init__(
        self,
        spec: str,
        source: Source,
        *,
        seed: int,
        image_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        split: Split,
        notes: tuple[str, ...] = (),
    ) -> None:
        #: the name it was opened with, e.g. "cifar10:/data/cifar"
        self.spec = spec
        self.source = source
        #: the seed of the data (split, digit distortions); also the default shuffle seed
        self.seed = seed
        #: output side H = W of every batch
        self.image_size = image_size
        self.mean = mean
        self.std = std
        self.split = split
        #: what the user should be told (scaled splits, default sizes)
        self.notes = notes
        # (pixel/255 - mean)/std as one multiply-add on uint8 values, on the host like the batches
        m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)  # cpu-ok: see above
        s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)  # cpu-ok: see above
        self._scale = (1.0 / (255.0 * s)).float()
        self._shift = (-m / s).float()
        self._channels = 3

    # --- what it is
    @property
    def name(self) -> str:
        """The kind: "rts", "digits", "cifar10", "caltech101" or "folder"."""
        return self.source.kind

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source.class_names

    @property
    def num_classes(self) -> int:
        return len(self.source.class_names)

    @property
    def channels(self) -> int:
        """Channels of every batch: 3 unless the model takes 1 (`with_channels`)."""
        return self._channels

    def with_channels(self, channels: int) -> Dataset:
        """This data for a model taking `channels` (compiler.build.model_input decides): grey
        images stay grey for 1 or are replicated for 3; colour images cannot become 1."""
        stored = int(self.source.images.shape[1])
        if channels not in (1, 3) or (channels == 1 and stored != 1):
            raise DatasetError(
                f"the model takes {channels}-channel images; {self.spec} has {stored}-channel"
                " images (declare the spec's input with 3 channels, e.g. 'input: 64x64x3')"
            )
        other = copy.copy(self)
        other._channels = channels
        if channels == 1:
            other._scale, other._shift = self._scale[:, :1], self._shift[:, :1]
        return other

    @property
    def native_size(self) -> tuple[int, int] | None:
        """(H, W) of the source images, None when they vary."""
        return self.source.native_size

    @property
    def stored_size(self) -> tuple[int, int]:
        """(H, W) of the uint8 images held in memory."""
        h, w = self.source.images.shape[-2:]
        return int(h), int(w)

    @property
    def has_theta(self) -> bool:
        return self.source.theta is not None

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        counts = "/".join(str(c) for c in self.split.counts.values())
        return (
            f"Dataset({self.spec!r}, seed={self.seed}, {self.num_classes} classes, "
            f"train/val/test {counts}, {self.image_size}×{self.image_size})"
        )

    # --- split
    def write_split(self, path: str | Path) -> Path:
        """Write the split as JSON (a directory gets split.json inside); returns the file."""
        return save_split(self.split, path)

    def with_split(self, split: Split, where: str = "the split") -> Dataset:
        """The same data with another split (validated against this data)."""
        check_split_fits(split, self.name, len(self), self.split.fingerprint, where)
        return Dataset(
            self.spec,
            self.source,
            seed=self.seed,
            image_size=self.image_size,
            mean=self.mean,
            std=self.std,
            split=split,
            notes=self.notes,
        )

    # --- batches
    def load(self, indices: Sequence[int] | np.ndarray | torch.Tensor, number: int = 0) -> Batch:
        """The examples at these dataset indices, preprocessed, as one batch."""
        # cpu-ok: batches are made on the host and go to the device whole
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        stored = self.source.images
        # index_select on the flattened rows: on 4-D uint8 it takes a slow path (100× slower)
        rows = stored.reshape(stored.shape[0], -1).index_select(0, idx)
        x = rows.view(-1, *stored.shape[1:]).to(torch.float32)
        if x.shape[1] == 1 and self._channels == 3:
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB, a view
        # Normalize first, at the stored size: bilinear weights sum to 1, so resizing
        # commutes with this affine map, and the big output is then written only once.
        images = x * self._scale + self._shift
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            images = resize_bilinear(images, self.image_size)
        theta = None if self.source.theta is None else self.source.theta.index_select(0, idx)
        return Batch(images, self.source.labels.index_select(0, idx), theta, idx, number)

    def epoch_order(
        self,
        split: SplitName,
        *,
        epoch: int = 0,
        seed: int | None = None,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> np.ndarray:
        """The dataset indices this rank visits in this epoch, in order."""
        members = self.split[split]
        if shuffle:
            gen = rng_for(self.seed if seed is None else seed, STREAM_SHUFFLE, epoch)
            members = members[gen.permutation(len(members))]
        return shard(members, rank, world_size, drop_last)

    def num_batches(
        self, split: SplitName, batch_size: int, *, world_size: int = 1, drop_last: bool = False
    ) -> int:
        """How many batches each rank gets per epoch."""
        n = len(self.split[split])
        if world_size > 1:
            n = n // world_size if drop_last else math.ceil(n / world_size)
        return n // batch_size if drop_last else math.ceil(n / batch_size)

    def batches(
        self,
        split: SplitName,
        batch_size: int,
        *,
        epoch: int = 0,
        seed: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> Iterator[Batch]:
        """Batches of one split for one epoch; `start_batch=k` resumes after k batches.

        Same (seed, epoch) -> same order on every call and every rank count; `seed` defaults
        to the dataset's. Batches are built lazily, one at a time.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        order = self.epoch_order(
            split,
            epoch=epoch,
            seed=seed,
            shuffle=shuffle,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )
        count = len(order) // batch_size if drop_last else math.ceil(len(order) / batch_size)
        for number in range(start_batch, count):
            yield self.load(order[number * batch_size : (number + 1) * batch_size], number)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images back to [0, 1], for pictures."""
        return denormalize(images, self.mean, self.std)


def open_dataset(
    name: str = "rts",
    *,
    seed: int,
    image_size: int | None = None,
    split_file: str | Path | None = None,
) -> Dataset:
    """Open a dataset by name, draw (or load) its split, and set the output size.

    `image_size=None` keeps the stored size: the digits' canvas (42 or 64), CIFAR-10's 32×32; for
    Caltech-101 and folders (images of varying size, resized once at load time) it means 224.
    `split_file` loads a split written before (validated against the data) instead of drawing.
    """
    kind, root = parse_dataset_name(name)
    if seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image size must be a positive number of pixels, got {image_size}")
    notes: list[str] = []
    extra = b""
    if kind in VARIANTS:
        source = read_digits(rng_for(seed, STREAM_DISTORT), kind)
        assert source.theta is not None
        extra = source.theta.numpy().tobytes()
        mean, std = DIGITS_MEAN, DIGITS_STD
        sizes: SplitSizes = proportional_sizes(len(source), kind)
    elif kind == "cifar10":
        assert root is not None
        source = read_cifar10(root)
        mean, std = CIFAR_MEAN, CIFAR_STD
        n_test = 0 if source.test_indices is None else len(source.test_indices)
        sizes = cifar10_sizes(len(source) - n_test, n_test)
    else:
        assert root is not None
        if image_size is None:
            image_size = DEFAULT_PHOTO_SIZE
            notes.append(
                f"{kind}: no image size given, images resized to {image_size}×{image_size}"
            )
        reader = read_caltech101 if kind == "caltech101" else read_folder
        source = reader(root, image_size)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        sizes = (
            caltech101_sizes(len(source))
            if kind == "caltech101"
            else proportional_sizes(len(source), kind)
        )
    if sizes.scaled:
        notes.append(f"{kind}: split scaled: {sizes.rule}")
    fp = fingerprint(kind, source.keys, source.labels.numpy(), extra)
    split = draw_split(kind, seed, len(source), sizes, fp, source.test_indices)
    if image_size is None:
        image_size = source.images.shape[-1]
    dataset = Dataset(
        name,
        source,
        seed=seed,
        image_size=int(image_size),
        mean=mean,
        std=std,
        split=split,
        notes=tuple(notes),
    )
    if split_file is not None:
        dataset = dataset.with_split(read_split(split_file), str(split_file))
    return dataset


def load_split(path: str | Path, dataset: Dataset) -> Split:
    """Read a split file and check it fits `dataset` (kind, size, fingerprint, disjointness)."""
    split = read_split(path)
    check_split_fits(split, dataset.name, len(dataset), dataset.split.fingerprint, str(path))
    return split
