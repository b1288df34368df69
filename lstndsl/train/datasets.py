"""Readers that turn a dataset on disk (or the embedded digits) into one in-memory `Source`.

What it is: one reader per dataset kind, each returning uint8 images held in memory, int64
labels, class names, and what the split and the benchmark need to know (per-example keys, an
official test set, the image files). Every problem with a directory becomes a `DatasetError`
that says what was expected where. Nothing is ever downloaded.
What it is not: splitting (`splits.py`), resizing per batch and normalizing (`data.py`).

How images are held (memory and time measured on this 2-core machine, see `bench/data_pipeline.py`):
- rts and digits: the distorted canvases, uint8 N×1×42×42 or N×1×64×64 (9 or 20 MB; grey,
  replicated to 3 channels per batch, not in memory).
- CIFAR-10: native uint8 60,000×3×32×32 (184 MB); each batch is resized to the model's size
  on the fly. Pre-resizing to 224 would cost 9 GB (27 GB at 380) for no speed-up worth it:
  resizing a 16-image batch from 32 to 224 px takes about 2 ms (`data.resize_bilinear`).
- Caltech-101 and `folder:`: JPEGs of varying size cannot be batched at native size, so each
  is decoded once and resized once, at load time, straight to the model's size with PIL's
  bilinear filter (bit-identical to the authors' per-epoch `transforms.Resize`), and kept as
  uint8 N×3×S×S: 8,677 images are 1.3 GB at 224, 5.4 GB at 456. Decoding runs on a thread
  pool (PIL releases the GIL). Images are resized to a square without cropping, as the
  authors' `Resize((S, S))` does.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstndsl.train.digits import VARIANTS, distort_digits, load_mnist_5k


class DatasetError(Exception):
    """A dataset cannot be opened: unknown name, missing or malformed directory, bad split.

    `.message` says what was expected where; the CLI prints it and exits with `.exit_code`.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, eq=False)
class Source:
    """A whole dataset in memory, before splitting and batching."""

    #: "rts", "digits", "cifar10", "caltech101" or "folder"
    kind: str
    #: the directory it was read from (None for the embedded digits)
    root: Path | None
    #: uint8 N×C×h×w, C = 1 (digits) or 3, at the stored size (see the module docstring)
    images: torch.Tensor
    #: int64 N, in 0..num_classes-1
    labels: torch.Tensor
    class_names: tuple[str, ...]
    #: one stable identifier per example (relative file path, "data_batch_3:17", ...)
    keys: tuple[str, ...]
    #: (H, W) of the source images; None when they vary (Caltech, most folders)
    native_size: tuple[int, int] | None
    #: indices of an official test set (CIFAR-10's test_batch), else None
    test_indices: np.ndarray | None = None
    #: float32 N×2×3 ideal θ (digits only)
    theta: torch.Tensor | None = None
    #: the image files, in example order (folder kinds only; the naive baseline reads them)
    files: tuple[Path, ...] | None = None
    #: things the user should be told (scaled splits, default sizes, ...)
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# --- embedded digits -------------------------------------------------------------------------

#: the ten digit classes
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def read_digits(rng: np.random.Generator, kind: str = "rts") -> Source:
    """The embedded distorted MNIST (5,000 digits) of variant `kind` (digits.VARIANTS),
    distorted with `rng`."""
    raw, labels = load_mnist_5k()
    made = distort_digits(raw, rng, variant=VARIANTS[kind])
    canvas = VARIANTS[kind].canvas
    return Source(
        kind=kind,
        root=None,
        images=made.distorted,
        labels=torch.from_numpy(labels.copy()),
        class_names=DIGIT_CLASSES,
        keys=tuple(f"mnist5k:{i}" for i in range(len(labels))),
        native_size=(canvas, canvas),
        theta=made.theta_ideal,
    )


# --- CIFAR-10 --------------------------------------------------------------------------------

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_CIFAR_LAYOUT = (
    "the CIFAR-10 python version: data_batch_1 … data_batch_5 and test_batch "
    "(optionally batches.meta), directly in DIR or in DIR/cifar-10-batches-py/"
)

# What a CIFAR batch pickle may reference: numpy arrays and nothing else. Loading a pickle with
# the stock Unpickler would run whatever code the file names.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = _PICKLE_ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(*target)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        obj = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:
        raise DatasetError(
            f"cifar10: {path} is not a CIFAR-10 python batch (cannot unpickle it: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"cifar10: {path} holds a {type(obj).__name__}, not a batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DatasetError(
            f"cifar10: {path} has no 'data' and 'labels' entries (keys: {sorted(batch)}); "
            "is it CIFAR-100 or another format?"
        )
    data = np.asarray(batch["data"])
    labels = _integer_labels(batch["labels"], path)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"cifar10: {path}: 'data' should be uint8 N×3072, got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DatasetError(f"cifar10: {path}: 'labels' should be {data.shape[0]} integers in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _integer_labels(value: Any, path: Path) -> np.ndarray:
    """The labels as int64, refusing any that is not a whole number (1.7 is not class 1)."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"cifar10: {path}: 'labels' is not a list of integers ({exc})") from exc
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "f":
        finite = np.isfinite(raw)
        whole = finite & (raw == np.round(np.where(finite, raw, 0)))
        if whole.all():
            return raw.astype(np.int64)
        at = int(np.flatnonzero(~whole)[0])
        raise DatasetError(
            f"cifar10: {path}: label {at} is {raw.flat[at].item()!r}, not an integer class in 0..9"
        )
    raise DatasetError(f"cifar10: {path}: 'labels' should be integers in 0..9, not {raw.dtype}")


def _label_names(meta: Path) -> tuple[str, ...] | None:
    """batches.meta's ten class names (None when it has none of the right shape)."""
    names = _unpickle(meta).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        return None
    try:
        return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"cifar10: {meta}: its label_names are not UTF-8 text ({exc.reason} at byte "
            f"{exc.start} of {exc.object!r})"
        ) from exc


def find_cifar_dir(root: Path) -> Path:
    """The directory that holds the CIFAR-10 batches: DIR or DIR/cifar-10-batches-py."""
    _require_dir(root, "cifar10", _CIFAR_LAYOUT)
    wanted = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
    candidates = [root / "cifar-10-batches-py", root]
    for cand in candidates:
        if cand.is_dir() and all((cand / f).is_file() for f in wanted):
            return cand
    best = max(
        (c for c in candidates if c.is_dir()),
        key=lambda c: sum((c / f).is_file() for f in wanted),
    )
    missing = [f for f in wanted if not (best / f).is_file()]
    hint = ""
    if (root / "cifar-10-python.tar.gz").is_file():
        hint = f"; {root / 'cifar-10-python.tar.gz'} is there: extract it first"
    raise DatasetError(
        f"cifar10: {best} is missing {', '.join(missing)}; expected {_CIFAR_LAYOUT}{hint}"
    )


def read_cifar10(root: Path) -> Source:
    """CIFAR-10 from its python-pickle batches: 50,000 training images then the 10,000 test."""
    where = find_cifar_dir(root)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    keys: list[str] = []
    for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE):
        data, y = _cifar_batch(where / name)
        images.append(data)
        labels.append(y)
        keys.extend(f"{name}:{i}" for i in range(len(y)))
    n_test = len(labels[-1])
    class_names: tuple[str, ...] = CIFAR_CLASSES
    meta = where / "batches.meta"
    if meta.is_file():
        class_names = _label_names(meta) or class_names
    all_labels = np.concatenate(labels)
    return Source(
        kind="cifar10",
        root=where,
        images=torch.from_numpy(np.concatenate(images)),
        labels=torch.from_numpy(all_labels),
        class_names=class_names,
        keys=tuple(keys),
        native_size=(32, 32),
        test_indices=np.arange(len(all_labels) - n_test, len(all_labels), dtype=np.int64),
    )


# --- Caltech-101 and any one-folder-per-class tree -------------------------------------------

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".ppm",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
#: Caltech-101's clutter class, left out as is customary (it is not an object category)
CALTECH_EXCLUDED = ("BACKGROUND_Google",)
_FOLDER_LAYOUT = "one sub-folder per class with its images inside, e.g. DIR/cat/0001.jpg"
_CALTECH_LAYOUT = (
    "Caltech-101's 101_ObjectCategories/ folder (one sub-folder of JPEGs per category), "
    "as DIR itself or as DIR/101_ObjectCategories"
)


def _require_dir(root: Path, kind: str, layout: str) -> None:
    if not root.exists():
        raise DatasetError(f"{kind}: directory {root} does not exist; expected {layout}")
    if not root.is_dir():
        raise DatasetError(f"{kind}: {root} is a file, not a directory; expected {layout}")


def scan_class_folders(
    root: Path, kind: str, layout: str, exclude: Sequence[str] = ()
) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Class names (sorted folder names), image files (sorted per class) and their labels."""
    _require_dir(root, kind, layout)
    classes = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in exclude
    )
    if not classes:
        raise DatasetError(f"{kind}: {root} has no class sub-folders; expected {layout}")
    if len(classes) == 1:
        raise DatasetError(
            f"{kind}: {root} has one class folder only ({classes[0]}/): a classifier needs at "
            f"least two; expected {layout}"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = sorted(
            p
            for p in (root / name).rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not found:
            raise DatasetError(
                f"{kind}: class folder {root / name} holds no images "
                f"(looked for {', '.join(IMAGE_EXTENSIONS)}); expected {layout}"
            )
        files.extend(found)
        labels.extend([label] * len(found))
    return tuple(classes), files, labels


#: the most pixels one image may claim before it is decoded (PIL's own warning threshold)
MAX_PIXELS = 89_478_485


def decode_resized(
    files: Sequence[Path], size: int, kind: str
) -> tuple[torch.Tensor, set[tuple[int, int]]]:
    """Decode every file once, convert to RGB, resize to size×size (PIL bilinear): uint8 N×3×S×S.

    Also returns the set of native (H, W) sizes met.
    """
    from PIL import Image, UnidentifiedImageError

    out = torch.empty((len(files), 3, size, size), dtype=torch.uint8)  # cpu-ok: decoded images
    target = out.numpy()

    def load(i: int) -> tuple[int, int]:
        path = files[i]
        try:
            with Image.open(path) as im:
                native = (im.height, im.width)
                if im.width * im.height > MAX_PIXELS:
                    raise DatasetError(
                        f"{kind}: image {path} claims {im.width}×{im.height} pixels, more than "
                        f"the {MAX_PIXELS:,} lstndsl decodes (a decompression bomb?)"
                    )
                rgb = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise DatasetError(f"{kind}: cannot decode image {path}: {exc}") from exc
        target[i] = np.asarray(rgb).transpose(2, 0, 1)
        return native

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = set(pool.map(load, range(len(files))))
    return out, sizes


def _read_folder_tree(
    root: Path, kind: str, layout: str, size: int, exclude: Sequence[str]
) -> Source:
    classes, files, labels = scan_class_folders(root, kind, layout, exclude)
    images, sizes = decode_resized(files, size, kind)
    return Source(
        kind=kind,
        root=root,
        images=images,
        labels=torch.tensor(labels, dtype=torch.int64),  # cpu-ok: the dataset lives on the host
        class_names=classes,
        keys=tuple(p.relative_to(root).as_posix() for p in files),
        native_size=next(iter(sizes)) if len(sizes) == 1 else None,
        files=tuple(files),
    )


def find_caltech_dir(root: Path) -> Path:
    """The 101_ObjectCategories folder: DIR/101_ObjectCategories, or DIR itself."""
    _require_dir(root, "caltech101", _CALTECH_LAYOUT)
    inner = root / "101_ObjectCategories"
    if inner.is_dir():
        return inner
    if (root / "101_ObjectCategories.tar.gz").is_file():
        raise DatasetError(
            f"caltech101: {root} holds 101_ObjectCategories.tar.gz but no "
            f"101_ObjectCategories/ folder: extract it first (expected {_CALTECH_LAYOUT})"
        )
    return root


def read_caltech101(root: Path, size: int) -> Source:
    """Caltech-101: every category folder except BACKGROUND_Google, resized once to size×size."""
    return _read_folder_tree(
        find_caltech_dir(root), "caltech101", _CALTECH_LAYOUT, size, CALTECH_EXCLUDED
    )


def read_folder(root: Path, size: int) -> Source:
    """Any one-folder-per-class tree of images, resized once to size×size."""
    return _read_folder_tree(root, "folder", _FOLDER_LAYOUT, size, ())
