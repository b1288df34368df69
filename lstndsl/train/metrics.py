"""Per-epoch bookkeeping: sums over examples (exact, resumable, reducible across processes),
top-k counts, and the metrics.jsonl writer.

What it is: `Meter` (named float sums such as n, loss·n, top-1 hits; `means()` turns them into
the numbers a log line shows), `topk_hits`, and `write_jsonl`. Sums are Python floats (double
precision), so a resumed epoch that restores them continues exactly. What it is not: the θ
geometry (`thetastats.py`) or what is printed (`progress.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

#: the k of the top-k accuracies reported everywhere
TOPK = (1, 5)


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = TOPK) -> list[int]:
    """How many rows have their label among the k highest logits, for each k (k > classes
    counts every row)."""
    ks = list(ks)
    k_max = min(max(ks), logits.shape[1])
    top = logits.detach().topk(k_max, dim=1).indices
    match = top.eq(labels.view(-1, 1))
    return [int(match[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


class Meter:
    """Named sums. `add("loss", loss * n)`; `means()` divides each by its count."""

    #: which count each sum is divided by (anything not listed divides by "n")
    COUNTS: Mapping[str, str] = {
        "theta_loss": "theta_labelled",
        "theta_error": "theta_n",
        "scale": "theta_n",
        "rotation": "theta_n",
        "translation": "theta_n",
        "outside": "theta_n",
    }
    #: sums that are shares of examples, shown in percent
    PERCENT = ("top1", "top5")

    def __init__(self, sums: Mapping[str, float] | None = None) -> None:
        self.sums: dict[str, float] = dict(sums or {})

    def add(self, key: str, value: float | int | torch.Tensor) -> None:
        v = float(value.item()) if isinstance(value, torch.Tensor) else float(value)
        self.sums[key] = self.sums.get(key, 0.0) + v

    def update(self, values: Mapping[str, float | int | torch.Tensor]) -> None:
        for k, v in values.items():
            self.add(k, v)

    def __getitem__(self, key: str) -> float:
        return self.sums.get(key, 0.0)

    def count_key(self, key: str) -> str:
        """The count a sum divides by; `name/scale` (another transformer's) by `name/theta_n`."""
        prefix, slash, base = key.rpartition("/")
        count = self.COUNTS.get(base, "n")
        return f"{prefix}/{count}" if slash and count != "n" else count

    def mean(self, key: str) -> float | None:
        count = self.sums.get(self.count_key(key), 0.0)
        if count == 0 or key not in self.sums:
            return None
        scale = 100.0 if key in self.PERCENT else 1.0
        return scale * self.sums[key] / count

    def means(self) -> dict[str, float | None]:
        counts = {"n", *self.COUNTS.values()}
        return {k: self.mean(k) for k in self.sums if k.rpartition("/")[2] not in counts}

    def state(self) -> dict[str, float]:
        return dict(self.sums)

    def reduce(self, all_reduce: Any) -> Meter:
        """Sum across processes with `all_reduce(tensor) -> tensor` (identity when alone)."""
        keys = sorted(self.sums)
        if not keys:
            return Meter()
        total = all_reduce(torch.tensor([self.sums[k] for k in keys], dtype=torch.float64))
        return Meter(dict(zip(keys, (float(v) for v in total.tolist()), strict=True)))


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite a JSON-lines file (one record per line) atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
