"""BASELINE ONLY: the authors' naive per-image pipeline, kept for benchmarks and parity tests.

What it is: a `torch.utils.data.Dataset` holding PIL images (or image files, opened on every
access as `ImageFolder` does) that runs `Resize` (bilinear) + `ToTensor` + `Normalize` on each
image at each access, exactly like the paper's notebooks; use it with a standard `DataLoader`.
What it is not: what the trainer uses. `data.Dataset.batches` produces the same tensors (to
within one grey level of rounding) from uint8 images held in memory, resized per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from lstndsl.train.data import Dataset
from lstndsl.train.splits import SplitName


class NaivePILDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """The authors' pipeline: PIL image -> Resize((S, S), bilinear) -> ToTensor -> Normalize."""

    def __init__(
        self,
        items: Sequence[Image.Image | Path],
        labels: Sequence[int],
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if len(items) != len(labels):
            raise ValueError(f"{len(items)} images but {len(labels)} labels")
        self.items = list(items)
        self.labels = [int(y) for y in labels]
        self.transform = transforms.Compose(
            [
                transforms.Resize(
                    (size, size), interpolation=transforms.InterpolationMode.BILINEAR
                ),
                transforms.ToTensor(),
                transforms.Normalize(list(mean), list(std)),
            ]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.items[i]
        image = Image.open(item).convert("RGB") if isinstance(item, Path) else item
        tensor: torch.Tensor = self.transform(image)
        return tensor, self.labels[i]


def naive_baseline(dataset: Dataset, split: SplitName) -> NaivePILDataset:
    """The same examples as `dataset.split[split]`, served the naive way.

    Folder kinds (Caltech-101, folder:) read their files on every access; digits and CIFAR-10
    become in-memory PIL images at their native size (grey digits as RGB).
    """
    indices = dataset.split[split]
    labels = dataset.source.labels[indices].tolist()
    items: list[Image.Image | Path]
    if dataset.source.files is not None:
        items = [dataset.source.files[i] for i in indices]
    else:
        items = [_to_pil(p) for p in dataset.source.images[indices].numpy()]
    return NaivePILDataset(items, labels, dataset.image_size, dataset.mean, dataset.std)


def _to_pil(chw: np.ndarray) -> Image.Image:
    """uint8 C×H×W (C = 1 or 3) -> RGB PIL image."""
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
    return Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc).convert("RGB")
