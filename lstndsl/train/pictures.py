"""The run's pictures (PNG, matplotlib's Agg backend, nothing shown on screen).

What it is: `transform_grid` (a fixed set of validation images in one row, what the spatial
transformer made of them below, and, when the data knows its transforms, what the ideal θ
makes of them in a third row; images already denormalized to [0, 1]) and `training_curves`
(losses, top-1 accuracies and, when there is one, the θ-recovery error per epoch).
What it is not: choosing the images or running the model (the loop does both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator


def _show(ax: Any, image: torch.Tensor) -> None:
    hwc = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    ax.imshow(hwc, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def transform_grid(
    path: Path,
    rows: Sequence[tuple[str, torch.Tensor]],
    title: str,
    captions: Sequence[str] | None = None,
) -> Path:
    """One row per (label, B×3×H×W images in [0, 1]); `captions` go under the last row."""
    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.3 * n + 1.2, 1.4 * len(rows) + 0.6), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            _show(axes[r][c], images[c])
        axes[r][0].set_ylabel(label, fontsize=8)
    if captions:
        for c, text in enumerate(captions[:n]):
            axes[-1][c].set_xlabel(text, fontsize=7)
    return _save(fig, path, title)


def _save(fig: Any, path: Path, title: str) -> Path:
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curves(path: Path, history: Sequence[Mapping[str, Any]], title: str) -> Path:
    """Loss, top-1 and (if logged) θ-recovery error against the epoch."""
    epochs = [h["epoch"] for h in history]
    panels: list[tuple[str, list[tuple[str, str]]]] = [
        ("loss (cross-entropy)", [("train_ce", "train"), ("val_loss", "validation")]),
        ("top-1 accuracy (%)", [("train_top1", "train"), ("val_top1", "validation")]),
    ]
    if any(h.get("val_theta_error") is not None for h in history):
        panels.append(
            (
                "θ-recovery error (px)",
                [("train_theta_error", "train"), ("val_theta_error", "validation")],
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (label, series) in zip(axes[0], panels, strict=True):
        for key, name in series:
            points = [(e, h.get(key)) for e, h in zip(epochs, history, strict=True)]
            xs = [e for e, v in points if v is not None]
            ys = [v for _, v in points if v is not None]
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path, title)
