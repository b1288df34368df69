"""torch's own FLOP counter as a witness: `torch.utils.flop_counter.FlopCounterMode` on a
compiled model, forward and forward + backward, in MACs (its FLOPs / 2).

What FlopCounterMode counts by itself (torch 2.14): matrix products and convolutions (`mm`,
`addmm`, `bmm`, `baddbmm`, `convolution` and their backward ops, attention), 2 FLOPs per
multiply-accumulate, the bias of `addmm` and of a convolution ignored. Every other op counts 0:
batch norm, activations, pooling, elementwise arithmetic and reductions. It has no formula for
the spatial transformer's `aten.affine_grid_generator` and `aten.grid_sampler_2d`; we register
ours (`custom_mapping`, not torch's global registry), the `full` convention's rules from
lstndsl/cost.py:
- `affine_grid_generator`: 6 MACs per output pixel (full's affine_grid). Its backward is a
  composite of `bmm`s that torch counts itself (the same 6 per pixel);
- `grid_sampler_2d`: bilinear 8 per output pixel + 4 per output element, nearest 2 + 0, bicubic
  26 + 16 (full's grid_sample);
- `grid_sampler_2d_backward`: the forward's MACs once for each gradient asked for (the grid's;
  the input's only where the input needs one, i.e. a transformer on a feature map), the rule
  torch's own formulas follow for a convolution or a matrix product.
The TPS and projective grids are not single ops: torch counts their matrix products (the TPS
(H·W)×N by N×2 product is full's price exactly; the projective 3×3 product is 9 of full's 11 per
pixel, its 2 divisions count 0) and, with our formula, the `affine_grid` identity grid both start
from (6 per pixel that full does not charge).

`torch_count(model, (C, H, W))` counts one image in eval mode: the forward under no_grad, then a
forward and a backward (gradients of every parameter; the image needs none) from the sum of the
output. Each count is split by op (`aten.convolution` …), by category (`weights`, `sampler`)
and by part (localization, head, sampler, backbone: module paths of the compiled model).

This module is not: our own conventions (lstndsl/cost.py, compiler/cost.py) or printing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from compiler.stn import compiled
from lstndsl import cost as rules
from lstndsl.ir import Shape

aten = torch.ops.aten

#: grid_sampler_2d's interpolation_mode argument -> our sampler mode
_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}
#: aten ops whose FLOPs are the grid and sampler wherever they run
_SAMPLER_OPS = frozenset({"aten.affine_grid_generator", "aten.grid_sampler_2d"})
_SAMPLER_OPS |= {"aten.grid_sampler_2d_backward"}


def _sample_flops(shape: Sequence[int], mode: int) -> int:
    """2 × full's MACs of grid_sample for an output of N×C×H×W."""
    n, *image = (int(d) for d in shape)
    op = rules.Op(
        kind="grid_sample", input=tuple(image), output=tuple(image), mode=_MODES[int(mode)]
    )
    return 2 * n * sum(rules.price(op, "full").values())


def affine_grid_flops(theta: Any, size: Sequence[int], *args: Any, **kwargs: Any) -> int:
    """aten.affine_grid_generator(theta, size, align_corners): 2 × 6 per output pixel."""
    n, *image = (int(d) for d in size)
    op = rules.Op(kind="affine_grid", input=tuple(image), output=tuple(image))
    return 2 * n * sum(rules.price(op, "full").values())


def grid_sample_flops(
    x: Any, grid: Any, mode: int, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """aten.grid_sampler_2d(input, grid, mode, padding, align_corners): full's rule, × 2."""
    return _sample_flops(out_shape, mode)


def grid_sample_backward_flops(
    grad: Any, x: Any, grid: Any, mode: int, *args: Any, **kwargs: Any
) -> int:
    """aten.grid_sampler_2d_backward(grad_output, input, grid, mode, padding, align_corners,
    output_mask): the forward's FLOPs per gradient asked for."""
    mask = args[2] if len(args) > 2 else kwargs.get("output_mask", (True, True))
    return _sample_flops(grad, mode) * sum(bool(m) for m in mask)


#: our formulas, added to FlopCounterMode's own for one count
FORMULAS = {
    aten.affine_grid_generator: affine_grid_flops,
    aten.grid_sampler_2d: grid_sample_flops,
    aten.grid_sampler_2d_backward: grid_sample_backward_flops,
}

PARTS = ("localization", "head", "sampler", "backbone")


@dataclass(frozen=True)
class TorchCount:
    """One image's MACs (FLOPs / 2) by FlopCounterMode with our grid and sampler formulas."""

    forward: int
    #: forward + backward, from a real backward pass
    train: int
    #: forward MACs per aten op ("aten.convolution": …)
    ops: dict[str, int] = field(default_factory=dict)
    #: forward + backward MACs per aten op
    train_ops: dict[str, int] = field(default_factory=dict)
    #: forward MACs per category of lstndsl.cost.CATEGORIES (weights, sampler; the rest 0)
    categories: dict[str, int] = field(default_factory=dict)
    #: forward MACs per part: localization, head, sampler, backbone
    parts: dict[str, int] = field(default_factory=dict)


def _macs(counts: dict[Any, int]) -> dict[str, int]:
    return {str(op): flops // 2 for op, flops in counts.items() if flops}


def _module_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> FlopCounterMode's name for it (root class, then its path)."""
    root = type(model).__name__
    return {id(m): f"{root}.{name}" if name else root for name, m in model.named_modules()}


def _parts(model: nn.Module, counts: dict[str, dict[Any, int]]) -> dict[str, int]:
    """Forward MACs per part: each transformer's localization net, head, and grid and sampler;
    the backbone is what is left of the total (θ's parameterization counts 0 to torch)."""
    names = _module_names(model)

    def total(module: nn.Module | None) -> int:
        if module is None:
            return 0
        return sum(counts.get(names[id(module)], {}).values()) // 2

    out = dict.fromkeys(PARTS, 0)
    for stn in compiled(model).transformers.values():
        out["localization"] += total(stn.localization)
        out["head"] += total(stn.head)
        out["sampler"] += total(stn.grid_sampler)
    out["backbone"] = sum(counts.get("Global", {}).values()) // 2 - sum(out.values())
    return out


def _categories(counts: dict[str, dict[Any, int]], model: nn.Module) -> dict[str, int]:
    names = _module_names(model)
    inside = {names[id(s.grid_sampler)] for s in compiled(model).transformers.values()}
    out = dict.fromkeys(rules.CATEGORIES, 0)
    for op, macs in _macs(counts.get("Global", {})).items():
        out["sampler" if op in _SAMPLER_OPS else "weights"] += macs
    # matrix products inside a grid sampler (the TPS and projective grids) are the sampler's
    for name in inside:
        moved = sum(v for k, v in _macs(counts.get(name, {})).items() if k not in _SAMPLER_OPS)
        out["weights"] -= moved
        out["sampler"] += moved
    return out


def _first_tensor(y: Any) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y
    if isinstance(y, tuple | list):
        return next(t for t in y if isinstance(t, torch.Tensor))
    raise TypeError(f"the model returned {type(y).__name__}, not a tensor")


def torch_count(model: nn.Module, image: Shape) -> TorchCount:
    """FlopCounterMode's count of one `image` (C, H, W): the forward, then forward + backward."""
    was = model.training
    model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros(1, *image, device=param.device if param is not None else "cpu")
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FORMULAS) as fwd:
            model(x)
        with FlopCounterMode(display=False, custom_mapping=FORMULAS) as both:
            _first_tensor(model(x)).float().sum().backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    counts = fwd.get_flop_counts()
    return TorchCount(
        forward=fwd.get_total_flops() // 2,
        train=both.get_total_flops() // 2,
        ops=_macs(counts.get("Global", {})),
        train_ops=_macs(both.get_flop_counts().get("Global", {})),
        categories=_categories(counts, model),
        parts=_parts(model, counts),
    )
