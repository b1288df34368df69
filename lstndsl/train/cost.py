"""MACs of a trained model, for summary.json and the sweep table, counted by the project's cost
counter (`compiler.cost.count` with `lstndsl.cost`'s rules), never estimated here.

What it is: `model_macs(model, image_size) -> (MACs by convention, note)`, for one 3×N×N image:
`thop` (the paper's "GFLOPS": multiply-accumulates by thop's rules of the time, sampler free) and
`full` (everything the network computes, grid and sampler included). When the counter is not
importable or fails, MACs are left out (None) and the note says why; parameters are always
reported. What it is not: a cost model (lstndsl/cost.py) or a hook-based counter (compiler/cost.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

#: the conventions reported (lstndsl/cost.py documents them)
CONVENTIONS = ("thop", "full")


def model_macs(model: nn.Module, image_size: int) -> tuple[dict[str, int] | None, str]:
    """({convention: MACs for one image}, how they were counted) or (None, why not)."""
    try:
        counter: Any = importlib.import_module("compiler.cost")
        rules: Any = importlib.import_module("lstndsl.cost")
    except ImportError as exc:
        return None, f"MACs not reported: no cost counter in this build ({exc})"
    try:
        image = getattr(model, "image", None) or (3, image_size, image_size)
        ops = counter.count(model, tuple(image))
        macs = {c: int(rules.macs(ops, c)) for c in CONVENTIONS}
    except Exception as exc:  # a counter failing must not lose a finished run
        return None, f"MACs not reported: the cost counter failed ({type(exc).__name__}: {exc})"
    return macs, (
        f"one {image_size}×{image_size} image; thop = the paper's convention (sampler free), "
        "full = everything incl. grid and sampler (lstndsl/cost.py)"
    )
