"""What one layer kind is, as data: the `Entry` every kind of kinds.py fills in, the torch op
it compiles to (`TorchOp`), and the shape arithmetic the entries share.

An Entry holds every fact about its kind once: spec words and options, how it maps a Filter
Shape, its output shape and trainable parameters, its cost categories, its price under the
`thop` and `ptflops` conventions, and the torch module it is (class name and arguments, as
data: the compiler builds `getattr(nn, op.cls)(*op.args, **op.kwargs)` and emits
`nn.{cls}(...)` from the same description, so builder and emitter cannot drift).

Pure Python (no torch). This module is not: the entries themselves (kinds.py) or the lookup
tables built from them (catalog.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lstndsl import ir
from lstndsl.ir import Shape

Cost = dict[str, int]


class InferError(Exception):
    """A layer cannot take the incoming shape. Carries an optional hint (what would fit)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def normalize(words: str) -> str:
    """Spec words compare without case, spaces, hyphens and underscores: 'Max pool' == 'maxpool'."""
    return "".join(ch for ch in words.lower() if ch.isalnum())


def numel(shape: Shape) -> int:
    return math.prod(shape)


# --- shape arithmetic ---------------------------------------------------------------------


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    """Output length of a sliding window, exactly as torch computes it (conv and pooling)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil:
        out = -(-span // stride) + 1
        # torch: the last window must start inside the input or the left padding
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1 if span >= 0 else 0


def spatial(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise InferError(
            f"{what} needs a feature map, but its input is a vector of {shape[0]}",
            "move it before the flatten",
        )
    return shape[0], shape[1], shape[2]


def windowed(
    name: str,
    shape: Shape,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil: bool,
) -> tuple[int, int]:
    _, h, w = spatial(shape, name)
    out = tuple(
        window_out(size, k, s, p, d, ceil)
        for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    if min(out) < 1:
        eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        raise InferError(
            f"{name} with a {eff[0]}×{eff[1]} window does not fit a {h}×{w} input"
            f" (output would be {out[0]}×{out[1]})",
            "use a larger input, padding, or a smaller kernel",
        )
    return out[0], out[1]


def same_shape(layer: Any, shape: Shape) -> tuple[Any, Shape]:
    """A resolver for kinds that keep the shape and have nothing to fill in."""
    return layer, shape


def plain(cls: str) -> Callable[[Any, Shape], TorchOp]:
    """The torch op of a kind without arguments: `nn.ReLU()`."""
    return lambda layer, shape: TorchOp(cls)


def named(name: str) -> Callable[[Any, Shape], str]:
    """How messages name a kind without arguments: `ReLU()`."""
    return lambda layer, shape: f"{name}()"


# --- the torch op, as data ------------------------------------------------------------------


@dataclass(frozen=True)
class TorchOp:
    """A torch.nn module as data: `getattr(nn, cls)(*args, **dict(kwargs))`. Emitted code
    leaves out the keyword arguments equal to `defaults` (torch's own defaults)."""

    cls: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def shown_kwargs(self) -> list[tuple[str, Any]]:
        """The keyword arguments emitted code writes: those that differ from torch's default."""
        missing = object()
        return [(k, v) for k, v in self.kwargs if self.defaults.get(k, missing) != v]


Rule = Callable[[Any], Cost]
"""A pricing rule of a convention: lstndsl.cost.Op -> MACs by category."""


def _free(op: Any) -> Cost:
    return {}


@dataclass(frozen=True)
class Entry:
    """What lstndsl knows about one layer kind."""

    kind: str
    model: type[ir._Layer]
    words: tuple[str, ...]
    """Spec words for the kind; the first one is the canonical word, printed by fmt."""
    resolve: Callable[[Any, Shape], tuple[Any, Shape]]
    """(layer as written, incoming shape) -> (layer with every field filled, output shape)."""
    torch: Callable[[Any, Shape], TorchOp]
    """(resolved layer, its input shape) -> the torch module it compiles to."""
    params: Callable[[Any], int] = lambda layer: 0
    """Trainable parameters of a resolved layer."""
    cost: Callable[[Any, Shape, Shape], Cost] = lambda layer, i, o: {}
    """Cost categories of a resolved layer (see catalog.py): the `full` count's inputs."""
    thop: Rule = _free
    """Its price under the `thop` convention (the L-STN paper's), from its lstndsl.cost.Op."""
    ptflops: Rule = _free
    """Its price under ptflops 0.7.5's rules, from its lstndsl.cost.Op."""
    torch_cost: Callable[[Any, Shape, Shape], Cost] | None = None
    """Cost categories read off a torch module of `torch_class` (the torch-side counter's
    view of a real network); None: the counter prices the class itself (conv, pooling …)."""
    torch_class: str = ""
    """The torch.nn class name `torch_cost` applies to."""
    value: str | None = None
    """The field a bare value sets: `fc 32`, `dropout 0.3`, `leaky relu 0.2`."""
    options: Mapping[str, tuple[str, Any]] = field(default_factory=dict)
    """Option words -> (field, fixed value or None to take the written value)."""
    filter: str | None = None
    """How the Filter Shape cell maps onto the layer: 'conv', 'pool', 'linear', 'norm'."""
    affine_map: bool = False
    """The layer is an affine map (conv, linear, batch norm, average pooling …): a stack of
    them with nothing nonlinear in between collapses to one."""
    weighted: bool = False
    """Convolution or linear: the layers whose stacking the collapse warning counts, that take
    the header's activation, and whose bias a batch norm right after cancels."""
    expects: Callable[[Any], int | None] = lambda layer: None
    """The input channels (or features) the layer declares, checked against the input."""
    describe: Callable[[Any, Shape], str] = lambda layer, shape: layer.kind
    """How messages name a resolved layer (given its input shape), in torch's words:
    `BatchNorm2d(4)`."""
    attach: bool = False
    """May follow another layer in the same row (`Conv, BN, ReLU`)."""
    norm: bool = False
    """A normalization: the header's activation goes after it (conv -> BN -> act -> pool)."""
    activation: bool = False
    """An activation: a row that names one gets no header activation."""
    cancels_bias: bool = False
    """Subtracts a per-channel mean (batch norm, instance norm): a bias right before it never
    learns."""

    def vocabulary(self) -> dict[str, tuple[str, Any]]:
        return {normalize(k): v for k, v in self.options.items()}
