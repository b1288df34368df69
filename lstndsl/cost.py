"""Cost conventions: how many multiply-accumulates (MACs) a spatial transformer costs, in pure
Python, under named rules. These rules are the documentation of every MAC count lstndsl prints.

Every count is for one image and is a count of MACs: one multiply-accumulate is one, and an
elementwise operation that is not one (an addition, a comparison, a max) also counts as one.
FLOPs, where someone wants them, are about twice the `weights` category plus the rest; lstndsl
never prints a MAC count as FLOPs.

An `Op` is one operation to price: a catalog layer (kind and cost categories from
`catalog.py`: `mac`, `bias`, `norm`, `act`, `pool`; each kind's thop and ptflops rules are
its entry's, kinds.py, and are the ones written out below), the grid generator or the sampler (not
layers, so priced here), elementwise tensor arithmetic between modules (`tensor`, found only by
the torch-side counter in compiler/cost.py), or an unknown module (`other`, priced 0 and
listed). The torch-side counter turns each module of a real network into the same `Op`s and
prices them with these same functions, so a backbone and a spec are counted by one arithmetic.

## `thop`: the L-STN paper's "GFLOPS"

What thop computed in the authors' notebooks (they print thop's `count_bn()` registration: the
thop 0.0.x rules; run through `thop.profile` on one 1×3×R×R image in eval mode). With it, the
notebooks' printed 1.8443 "GFLOPS" (L-STN + ResNet-18, 10 classes, 224) and 1.9049 (V-STN +
ResNet-18) come out exactly. So they are MACs, not FLOPs.
- convolution: output elements × (kh·kw·c_in/groups + 1 if it has a bias);
- linear: in_features × out_features (the bias is not counted);
- batch norm: 2 per element;
- average pooling: 1 per output element; adaptive average pooling: (window area + 1) per output
  element, the window being input H//output H × input W//output W;
- leaky ReLU: 1 per element;
- layer norm and instance norm: 2 per element (as its batch norm rule); group norm: 0 (thop
  has no rule for nn.GroupNorm);
- ReLU, ReLU6, every other activation, max pooling, dropout (Dropout2d too), flatten: 0;
- `affine_grid`, a projective or TPS grid, `grid_sample` and tensor arithmetic: 0
  (functions, not modules: thop never sees them).
The thop package now on PyPI (0.1.1) differs: it drops the convolution's bias term and counts an
affine batch norm as 4 per element (tests/test_cost.py pins both differences).

## `full`: everything the network computes
- convolution and linear: weight MACs, plus 1 per output element if it has a bias;
- batch norm: 2 per element (inference: one scale and one shift per element);
- layer, group and instance norm: 4 per element (they compute their statistics at inference:
  a mean and a variance, 2; the normalization, 2), 6 with an affine γ, β;
- activation: 1 per element (whatever the function);
- max pooling: window area per output element (comparisons); average pooling: window area per
  output element (additions; the division is folded in); adaptive average pooling: 1 per input
  element;
- flatten, dropout and Dropout2d (identity at inference), identity: 0;
- `affine_grid`: 6 per output pixel (x' and y' are each a·x + b·y + c);
- projective grid: 11 per output pixel (a 3×3 matrix times (x, y, 1): 9; two divisions);
- TPS grid (`tps N`, `tps RxC`): 2·N per output pixel, N = the control points: the module
  precomputes the (H·W)×N matrix (each pixel's kernel values r² log r² and affine part times
  the inverse of the TPS system, for the base points) as a buffer, so the grid is one
  (H·W)×N by N×2 product per image; a rotation's grid is `affine_grid`'s;
- `grid_sample`, bilinear: 8 per output pixel (unnormalize x and y: 2; fractional parts: 2; the
  four corner weights: 4) and 4 per output element (pixel × channel: the four weighted taps);
  nearest: 2 per pixel, 0 per element; bicubic: 26 per pixel (unnormalize: 2; four cubic
  coefficients per axis at 3 each: 24) and 16 per element (the 4×4 taps);
- tensor arithmetic between modules (residual additions, squeeze-excitation products): 1 per
  output element; a mean or sum: 1 per input element (backbones only: a spec has none);
- θ's parameterization (compiler/transforms.py: at most a few dozen operations per image) is
  not counted.

## `ptflops`: not ours, modelled to explain it
ptflops 0.7.5 (pytorch backend: per-module hooks; its counting of torch functions is switched
off because it counts nn.ReLU and pooling twice, once per module and once per function), with a
hook of ours that prices the grid and sampler by the `full` rules:
- convolution and linear: weight MACs + 1 per output element for a bias;
- batch norm, group norm, instance norm: 2 per element (1 without affine parameters); layer
  norm: 1 (its hook looks for an `affine` attribute; nn.LayerNorm calls it
  `elementwise_affine`);
- ReLU, PReLU, ELU, leaky ReLU, ReLU6, GELU: 1 per element; other activations, Dropout2d: 0;
- every pooling: 1 per input element;
- tensor arithmetic: 0; modules whose exact class it does not list: 0 (e.g. timm's
  BatchNormAct2d, a BatchNorm2d subclass).
`lstndsl profile` prints ptflops' own number next to this model of it, and says per rule where
it differs from `full`.

## `torch`: torch's own FlopCounterMode, a witness
compiler/flops.py runs `torch.utils.flop_counter.FlopCounterMode` on the compiled model (FLOPs /
2 = MACs): it prices matrix products and convolutions by their weight MACs and nothing else;
we register `full`'s rules for the grid generator and the sampler. So on weights and sampler it
must equal `full`, and everywhere else it is 0 (TORCH_DIFFERENCES, printed by `lstndsl profile`).
It also counts the backward pass (training cost: forward + backward).

This module is not: the torch-side counting of real modules (compiler/cost.py, compiler/flops.py),
nor the catalog's per-layer categories (catalog.py). No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from lstndsl import catalog, check, ir
from lstndsl.catalog import Cost
from lstndsl.ir import Shape

Convention = Literal["thop", "full", "ptflops"]

#: the conventions lstndsl computes from the catalog (ptflops is modelled, see above)
CONVENTIONS: tuple[Convention, ...] = ("thop", "full", "ptflops")

#: how each convention is labelled in tables and prose
LABELS: dict[str, str] = {
    "thop": "MACs, thop convention (the paper's GFLOPS)",
    "full": "MACs, full count",
    "ptflops": "MACs, ptflops 0.7.5",
}

#: the categories a count breaks down into, in print order, with their names for people
CATEGORIES: dict[str, str] = {
    "weights": "convolution and linear weights",
    "bias": "bias additions",
    "norm": "normalization",
    "act": "activations",
    "pool": "pooling",
    "sampler": "grid and sampler",
    "tensor": "tensor arithmetic between modules",
}

#: why `thop` differs from `full`, per category (printed by `lstndsl profile`)
THOP_DIFFERENCES: dict[str, str] = {
    "bias": "thop counts a linear layer's bias additions as 0",
    "act": "thop counts ReLU and most activations as 0",
    "pool": "thop counts max pooling as 0, average pooling as 1 per output element and"
    " adaptive average pooling as window + 1 per output element",
    "sampler": "thop never sees affine_grid and grid_sample (functions, not modules)",
    "tensor": "thop never sees tensor arithmetic between modules (residual additions …)",
    "norm": "thop gives batch norm the same 2 per element; layer and instance norm 2 per"
    " element and group norm 0, where full also counts their statistics",
    "weights": "thop counts the same weight MACs; a difference here is a bug",
}

#: why ptflops 0.7.5 differs from `full`, per category (printed by `lstndsl profile`)
PTFLOPS_DIFFERENCES: dict[str, str] = {
    "act": "ptflops prices only ReLU-family activations and GELU (SiLU, sigmoid … count 0)",
    "pool": "ptflops prices a pooling by its input elements, full by window reads",
    "tensor": "ptflops' module hooks do not see tensor arithmetic between modules",
    "norm": "ptflops skips classes it does not list exactly (e.g. timm's BatchNormAct2d)",
    "weights": "ptflops skips classes it does not list exactly",
    "bias": "ptflops skips classes it does not list exactly",
    "sampler": "the sampler hook is ours: a difference here is a bug",
}

#: why torch's FlopCounterMode differs from `full`, per category (printed by `lstndsl profile`)
TORCH_DIFFERENCES: dict[str, str] = {
    "bias": "FlopCounterMode ignores bias (a convolution's, addmm's)",
    "norm": "FlopCounterMode has no formula for normalization (batch, layer, group norm): 0",
    "act": "FlopCounterMode has no formula for activations (ReLU …): 0",
    "pool": "FlopCounterMode has no formula for pooling (max, average, adaptive): 0",
    "tensor": "FlopCounterMode has no formula for elementwise arithmetic and reductions"
    " (residual additions, means): 0",
    "sampler": "our formulas are full's for affine_grid_generator and grid_sampler_2d; a TPS or"
    " projective grid is priced by its matrix product (torch's), plus affine_grid's 6 per"
    " pixel for the identity grid it starts from, less a projective grid's 2 divisions",
    "weights": "FlopCounterMode counts the same weight MACs; a difference here is a bug",
}

GRID_KINDS = ("affine_grid", "projective_grid", "tps_grid")

# grid_sample: (per output pixel, per output element) in the full convention
_SAMPLE_RULES: dict[str, tuple[int, int]] = {
    "bilinear": (8, 4),
    "nearest": (2, 0),
    "bicubic": (26, 16),
}
_GRID_RULES: dict[str, int] = {"affine_grid": 6, "projective_grid": 11}


@dataclass(frozen=True)
class Op:
    """One operation to price, as both the catalog and the torch-side counter describe it."""

    kind: str
    """A catalog kind ('conv', 'relu' …), 'affine_grid', 'projective_grid', 'grid_sample',
    'adaptivemaxpool', 'tensor' or 'other'."""
    input: Shape
    """(C, H, W) or (N,), without the batch."""
    output: Shape
    cost: Cost = field(default_factory=dict)
    """The catalog's categories: mac, bias, norm, act, pool (and tensor for arithmetic)."""
    affine: bool = True
    """Batch norm with γ and β."""
    mode: str = "bilinear"
    """grid_sample's interpolation."""
    listed: bool = True
    """ptflops prices this exact module class (False for e.g. subclasses it does not list)."""
    name: str = ""
    """Where it is: a module path or a spec row, for listings."""
    points: int = 0
    """tps_grid: the number of control points N (rows × columns)."""


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def _pixels(shape: Shape) -> int:
    return _numel(shape[1:]) if len(shape) == 3 else _numel(shape)


def tps_grid_macs(points: int, output: Shape) -> int:
    """The `full` price of a TPS grid for one image: the (H·W)×N by N×2 product that maps the
    N predicted control points to every output pixel (the (H·W)×N matrix, the base points'
    kernel and affine part times the inverse of the TPS system, is precomputed as a buffer):
    H·W·N·2 MACs."""
    return _pixels(output) * points * 2


def tps_grid_op(points: int, image: Shape, name: str = "grid") -> Op:
    """The TPS grid generator as an Op (N control points, output of `image`'s size), for the
    torch-side counter to price a TPS sampler by these rules (thop: free; full and our ptflops
    hook: `tps_grid_macs`)."""
    return Op(kind="tps_grid", input=image, output=image, name=name, points=points)


def _sampler(op: Op) -> int:
    if op.kind == "tps_grid":
        return tps_grid_macs(op.points, op.output)
    if op.kind in GRID_KINDS:
        return _GRID_RULES[op.kind] * _pixels(op.output)
    per_pixel, per_element = _SAMPLE_RULES[op.mode]
    return per_pixel * _pixels(op.output) + per_element * _numel(op.output)


def _full(op: Op) -> Cost:
    if op.kind in GRID_KINDS or op.kind == "grid_sample":
        return {"sampler": _sampler(op)}
    c = op.cost
    return {
        "weights": c.get("mac", 0),
        "bias": c.get("bias", 0),
        "norm": 2 * c.get("norm", 0),
        "act": c.get("act", 0),
        "pool": c.get("pool", 0),
        "tensor": c.get("tensor", 0),
    }


def _thop(op: Op) -> Cost:
    entry = catalog.CATALOG.get(op.kind)
    return entry.thop(op) if entry is not None else {}


def _ptflops(op: Op) -> Cost:
    if not op.listed:
        return {}
    if op.kind in GRID_KINDS or op.kind == "grid_sample":
        return _full(op)
    if op.kind == "adaptivemaxpool":  # torch-side only: no catalog kind
        return {"pool": _numel(op.input)}
    entry = catalog.CATALOG.get(op.kind)
    return entry.ptflops(op) if entry is not None else {}


_RULES = {"thop": _thop, "full": _full, "ptflops": _ptflops}


def price(op: Op, convention: Convention) -> Cost:
    """One op's MACs under a convention, by category (zeros left out)."""
    return {k: v for k, v in _RULES[convention](op).items() if v}


def macs(ops: Iterable[Op], convention: Convention) -> int:
    return sum(sum(price(op, convention).values()) for op in ops)


def by_category(ops: Iterable[Op], convention: Convention) -> Cost:
    """MACs per category (every category of CATEGORIES present, zeros included)."""
    total: Cost = dict.fromkeys(CATEGORIES, 0)
    for op in ops:
        for k, v in price(op, convention).items():
            total[k] = total.get(k, 0) + v
    return total


# --- the spec side ------------------------------------------------------------------------


def layer_op(r: check.LayerResult, name: str = "") -> Op:
    """A catalog layer as an Op."""
    return Op(
        kind=r.layer.kind,
        input=r.input,
        output=r.output,
        cost=dict(r.cost),
        affine=bool(getattr(r.layer, "affine", True)),
        name=name,
    )


def sampler_ops(transform: ir.Transform, sampler: ir.Sampler, image: Shape) -> list[Op]:
    """The grid generator and the sampler for an image of (C, H, W): both output that size."""
    if transform.kind == "tps":
        assert transform.points is not None
        grid = tps_grid_op(transform.points[0] * transform.points[1], image)
    else:  # rotation, translation and similarity are affine matrices: affine_grid
        kind = "projective_grid" if transform.kind == "projective" else "affine_grid"
        grid = Op(kind=kind, input=image, output=image, name="grid")
    return [
        grid,
        Op(kind="grid_sample", input=image, output=image, mode=sampler.mode, name="sampler"),
    ]


@dataclass(frozen=True)
class SpecOps:
    """A compiled spec's operations, by part."""

    localization: list[Op]
    head: list[Op]
    sampler: list[Op]

    def parts(self) -> dict[str, list[Op]]:
        return {"localization": self.localization, "head": self.head, "sampler": self.sampler}

    def all(self) -> list[Op]:
        return [*self.localization, *self.head, *self.sampler]

    def macs(self, convention: Convention) -> dict[str, int]:
        """{'localization', 'head', 'sampler', 'total'} under a convention."""
        out = {part: macs(ops, convention) for part, ops in self.parts().items()}
        out["total"] = sum(out.values())
        return out


def spec_ops(analysis: check.Analysis) -> SpecOps:
    """Every operation of the spatial transformer the analysis describes, at its input size."""
    loc = [layer_op(r, f"line {row.row.pos.line}") for row in analysis.rows for r in row.layers]
    head = [layer_op(r, "head") for r in analysis.head]
    spec = analysis.spec
    return SpecOps(loc, head, sampler_ops(spec.transform, spec.sampler, analysis.input))
