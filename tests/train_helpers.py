"""Helpers shared by the trainer's tests (tests/test_train_*.py, tests/test_sweep.py): spec paths
and a tiny image-folder dataset, so that runs that do not need the digits' known θ train and
evaluate in a second. Not a test module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LSTN = REPO / "specs" / "lstn.spec"
STN = REPO / "specs" / "stn.spec"


def write_folder(root: Path, classes: int = 3, per_class: int = 12) -> Path:
    """One folder per class of 32×32 PNGs (noise plus a class-specific bright square): with
    the default sizes the split is 26 train / 5 validation / 5 test."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            pixels[8 * c : 8 * c + 10, 8 * c : 8 * c + 10] = 255
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i:02d}.png")
    return root


def once(base: Path, name: str, make: Callable[[Path], None]) -> Path:
    """`base/name`, made by `make(base/name)` exactly once however many xdist workers ask
    (pytest-xdist's recipe for fixtures that must run once: a file lock in the directory the
    workers share). `base` is `tmp_path_factory.getbasetemp().parent` under xdist."""
    from filelock import FileLock

    target = base / name
    with FileLock(str(base / f"{name}.lock")):
        if not (target / ".done").exists():
            target.mkdir(parents=True, exist_ok=True)
            make(target)
            (target / ".done").write_text("")
    return target


def shared_base(tmp_path_factory: Any, worker_id: str) -> Path:
    """The temporary directory every xdist worker of this session shares."""
    base: Path = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent
