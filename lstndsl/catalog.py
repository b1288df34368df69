"""The layer catalog: per layer kind, its words, options, output shape, parameters and cost.

Pure Python (no torch): `lstndsl check` must stay instant, and these formulas are one of the
three witnesses of every number (the spec declares, the catalog infers, torch confirms).

Each kind has one name, the IR tag (`ir.py`), used again by the compiler's builder. Adding a
kind is an IR class plus an `Entry` here plus a builder in `compiler/layers.py`; the grammar
never changes, because layer words are data (`Entry.words`).

Costs are counts by category, not one number, so that every convention (the paper's thop
rules, a complete count, ptflops) can be derived from them:

- `mac`: multiply-accumulates of convolution and linear weights;
- `bias`: one addition per output element of a layer with a bias;
- `norm`: elements a batch norm normalizes;
- `act`: elements an activation touches;
- `pool`: elements a pooling window reads (output elements × window area).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lstndsl import ir
from lstndsl.ir import Shape, format_shape

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


def _spatial(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise InferError(
            f"{what} needs a feature map, but its input is a vector of {shape[0]}",
            "move it before the flatten",
        )
    return shape[0], shape[1], shape[2]


def _windowed(
    name: str,
    shape: Shape,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil: bool,
) -> tuple[int, int]:
    _, h, w = _spatial(shape, name)
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


def _numel(shape: Shape) -> int:
    return math.prod(shape)


# --- entries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """What lstndsl knows about one layer kind."""

    kind: str
    model: type[ir._Layer]
    words: tuple[str, ...]
    """Spec words for the kind; the first one is the canonical word, printed by fmt."""
    resolve: Callable[[Any, Shape], tuple[Any, Shape]]
    """(layer as written, incoming shape) -> (layer with every field filled, output shape)."""
    params: Callable[[Any], int] = lambda layer: 0
    """Trainable parameters of a resolved layer."""
    cost: Callable[[Any, Shape, Shape], Cost] = lambda layer, i, o: {}
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
    """Convolution or linear: the layers whose stacking the collapse warning counts."""
    expects: Callable[[Any], int | None] = lambda layer: None
    """The input channels (or features) the layer declares, checked against the input."""
    describe: Callable[[Any, Shape], str] = lambda layer, shape: layer.kind
    """How messages name a resolved layer (given its input shape), in torch's words:
    `BatchNorm2d(4)`."""
    attach: bool = False
    """May follow another layer in the same row (`Conv, BN, ReLU`)."""
    norm: bool = False
    """A normalization: the header's activation goes after it (conv -> BN -> act -> pool)."""

    def vocabulary(self) -> dict[str, tuple[str, Any]]:
        return {normalize(k): v for k, v in self.options.items()}


def _conv_resolve(layer: ir.Conv, shape: Shape) -> tuple[ir.Conv, Shape]:
    c, _, _ = _spatial(shape, "a convolution")
    if layer.kernel is None or layer.out_channels is None:
        raise InferError(
            "a convolution needs its kernel and output channels",
            "write the Filter Shape as kh×kw×c_in×c_out",
        )
    cin = layer.in_channels or c
    if cin % layer.groups or layer.out_channels % layer.groups:
        raise InferError(
            f"groups {layer.groups} must divide both {cin} input and"
            f" {layer.out_channels} output channels"
        )
    h, w = _windowed(
        "a convolution", shape, layer.kernel, layer.stride, layer.padding, layer.dilation, False
    )
    return layer.model_copy(update={"in_channels": cin}), (layer.out_channels, h, w)


def _conv_params(layer: ir.Conv) -> int:
    assert layer.kernel and layer.in_channels and layer.out_channels
    kh, kw = layer.kernel
    weights = layer.out_channels * (layer.in_channels // layer.groups) * kh * kw
    return weights + (layer.out_channels if layer.bias else 0)


def _conv_cost(layer: ir.Conv, i: Shape, o: Shape) -> Cost:
    assert layer.kernel and layer.in_channels
    kh, kw = layer.kernel
    out = _numel(o)
    return {"mac": out * (layer.in_channels // layer.groups) * kh * kw, "bias": out * layer.bias}


def _conv_describe(layer: ir.Conv, shape: Shape) -> str:
    k = layer.kernel or (0, 0)
    extra = "".join(
        f", {name} {format_shape(v) if v[0] != v[1] else v[0]}"
        for name, v, default in (
            ("stride", layer.stride, (1, 1)),
            ("padding", layer.padding, (0, 0)),
            ("dilation", layer.dilation, (1, 1)),
        )
        if v != default
    )
    groups = f", groups {layer.groups}" if layer.groups != 1 else ""
    bias = "" if layer.bias else ", no bias"
    return f"Conv2d({layer.in_channels}, {layer.out_channels}, {k[0]}×{k[1]}{extra}{groups}{bias})"


def _pool_resolve(layer: ir.MaxPool | ir.AvgPool, shape: Shape) -> tuple[Any, Shape]:
    name = "max pooling" if layer.kind == "maxpool" else "average pooling"
    c, _, _ = _spatial(shape, name)
    if layer.kernel is None:
        raise InferError(
            f"{name} needs a window size", "write the Filter Shape as kh×kw×C×C, or 'kernel 2'"
        )
    stride = layer.stride or layer.kernel
    for p, k in zip(layer.padding, layer.kernel, strict=True):
        if p > k // 2:
            raise InferError(
                f"padding {p} is more than half the {k}-wide window; torch refuses it",
                f"use padding {k // 2} or less",
            )
    dilation = getattr(layer, "dilation", (1, 1))
    h, w = _windowed(name, shape, layer.kernel, stride, layer.padding, dilation, layer.ceil_mode)
    return layer.model_copy(update={"stride": stride, "channels": layer.channels or c}), (c, h, w)


def _pool_cost(layer: ir.MaxPool | ir.AvgPool, i: Shape, o: Shape) -> Cost:
    assert layer.kernel
    return {"pool": _numel(o) * layer.kernel[0] * layer.kernel[1]}


def _pool_describe(layer: ir.MaxPool | ir.AvgPool, shape: Shape) -> str:
    cls = "MaxPool2d" if layer.kind == "maxpool" else "AvgPool2d"
    k, s = layer.kernel or (0, 0), layer.stride or layer.kernel or (0, 0)
    return f"{cls}({k[0]}×{k[1]}, stride {s[0]})"


def _adaptive_resolve(layer: ir.AdaptiveAvgPool, shape: Shape) -> tuple[Any, Shape]:
    c, _, _ = _spatial(shape, "adaptive average pooling")
    return layer, (c, *layer.output)


def _bn_resolve(layer: ir.BatchNorm, shape: Shape) -> tuple[Any, Shape]:
    return layer.model_copy(update={"num_features": layer.num_features or shape[0]}), shape


def _bn_describe(layer: ir.BatchNorm, shape: Shape) -> str:
    return f"BatchNorm{'2d' if len(shape) == 3 else '1d'}({layer.num_features})"


def _linear_resolve(layer: ir.Linear, shape: Shape) -> tuple[Any, Shape]:
    if len(shape) != 1:
        raise InferError(
            f"a linear layer needs a flat input, but its input is {format_shape(shape)}",
            "add 'flatten' before it",
        )
    if layer.out_features is None:
        raise InferError("a linear layer needs its output size", "write e.g. 'fc 32'")
    resolved = layer.model_copy(update={"in_features": layer.in_features or shape[0]})
    return resolved, (layer.out_features,)


def _linear_params(layer: ir.Linear) -> int:
    assert layer.in_features and layer.out_features
    return layer.in_features * layer.out_features + (layer.out_features if layer.bias else 0)


def _linear_cost(layer: ir.Linear, i: Shape, o: Shape) -> Cost:
    assert layer.in_features and layer.out_features
    return {"mac": layer.in_features * layer.out_features, "bias": _numel(o) * layer.bias}


def _same(layer: Any, shape: Shape) -> tuple[Any, Shape]:
    return layer, shape


def _act_cost(layer: Any, i: Shape, o: Shape) -> Cost:
    return {} if layer.kind == "identity" else {"act": _numel(o)}


def _prelu_resolve(layer: ir.PReLU, shape: Shape) -> tuple[Any, Shape]:
    n = shape[0] if layer.per_channel else 1
    return layer.model_copy(update={"num_parameters": n}), shape


def _named(name: str) -> Callable[[Any, Shape], str]:
    def describe(layer: Any, shape: Shape) -> str:
        return f"{name}()"

    return describe


_WINDOW_OPTIONS: dict[str, tuple[str, Any]] = {
    "kernel": ("kernel", None),
    "kernel size": ("kernel", None),
    "k": ("kernel", None),
    "stride": ("stride", None),
    "s": ("stride", None),
    "padding": ("padding", None),
    "pad": ("padding", None),
}
_BIAS_OPTIONS: dict[str, tuple[str, Any]] = {
    "bias": ("bias", None),
    "no bias": ("bias", False),
    "without bias": ("bias", False),
}

_ACTIVATION_WORDS: dict[str, tuple[str, ...]] = {
    "relu": ("ReLU",),
    "relu6": ("ReLU6",),
    "selu": ("SELU",),
    "gelu": ("GELU",),
    "silu": ("SiLU", "swish"),
    "mish": ("Mish",),
    "sigmoid": ("Sigmoid",),
    "tanh": ("Tanh",),
    "hardswish": ("Hardswish", "hard swish"),
    "hardsigmoid": ("Hardsigmoid", "hard sigmoid"),
    "softplus": ("Softplus",),
    "identity": ("Identity", "no activation", "no act", "none"),
}

_ENTRIES: list[Entry] = [
    Entry(
        kind="conv",
        model=ir.Conv,
        words=("Conv", "conv2d", "convolution"),
        resolve=_conv_resolve,
        params=_conv_params,
        cost=_conv_cost,
        value="kernel",
        options={
            **_WINDOW_OPTIONS,
            **_BIAS_OPTIONS,
            "dilation": ("dilation", None),
            "groups": ("groups", None),
            "group": ("groups", None),
            "out": ("out_channels", None),
            "out channels": ("out_channels", None),
            "channels": ("out_channels", None),
            "filters": ("out_channels", None),
            "in": ("in_channels", None),
            "in channels": ("in_channels", None),
        },
        filter="conv",
        affine_map=True,
        weighted=True,
        expects=lambda layer: layer.in_channels,
        describe=_conv_describe,
    ),
    Entry(
        kind="maxpool",
        model=ir.MaxPool,
        words=("Max pool", "maxpool2d", "max pooling"),
        resolve=_pool_resolve,
        cost=_pool_cost,
        value="kernel",
        options={
            **_WINDOW_OPTIONS,
            "dilation": ("dilation", None),
            "ceil mode": ("ceil_mode", True),
            "ceil": ("ceil_mode", True),
        },
        filter="pool",
        expects=lambda layer: layer.channels,
        describe=_pool_describe,
        attach=True,
    ),
    Entry(
        kind="avgpool",
        model=ir.AvgPool,
        words=("Avg pool", "average pool", "avgpool2d", "average pooling", "mean pool"),
        resolve=_pool_resolve,
        cost=_pool_cost,
        value="kernel",
        options={
            **_WINDOW_OPTIONS,
            "ceil mode": ("ceil_mode", True),
            "ceil": ("ceil_mode", True),
            "count include pad": ("count_include_pad", None),
            "exclude pad": ("count_include_pad", False),
        },
        filter="pool",
        affine_map=True,
        expects=lambda layer: layer.channels,
        describe=_pool_describe,
        attach=True,
    ),
    Entry(
        kind="adaptiveavgpool",
        model=ir.AdaptiveAvgPool,
        words=(
            "Adaptive avg pool",
            "adaptive average pool",
            "adaptiveavgpool2d",
            "global avg pool",
            "global average pool",
            "global pool",
            "gap",
        ),
        resolve=_adaptive_resolve,
        cost=lambda layer, i, o: {"pool": _numel(i)},
        value="output",
        options={"output": ("output", None), "size": ("output", None)},
        affine_map=True,
        describe=lambda layer, s: f"AdaptiveAvgPool2d({layer.output[0]}×{layer.output[1]})",
        attach=True,
    ),
    Entry(
        kind="batchnorm",
        model=ir.BatchNorm,
        words=("BN", "batch norm", "batchnorm2d", "batchnorm1d", "batch normalization"),
        resolve=_bn_resolve,
        params=lambda layer: 2 * layer.num_features if layer.affine else 0,
        cost=lambda layer, i, o: {"norm": _numel(o)},
        options={
            "eps": ("eps", None),
            "momentum": ("momentum", None),
            "affine": ("affine", None),
            "no affine": ("affine", False),
        },
        filter="norm",
        affine_map=True,
        expects=lambda layer: layer.num_features,
        describe=_bn_describe,
        attach=True,
        norm=True,
    ),
    Entry(
        kind="dropout",
        model=ir.Dropout,
        words=("Dropout",),
        resolve=_same,
        value="p",
        options={"p": ("p", None), "rate": ("p", None)},
        affine_map=True,  # the identity at inference
        describe=lambda layer, s: f"Dropout({layer.p})",
        attach=True,
    ),
    Entry(
        kind="linear",
        model=ir.Linear,
        words=("FC", "linear", "dense", "fully connected"),
        resolve=_linear_resolve,
        params=_linear_params,
        cost=_linear_cost,
        value="out_features",
        options={
            **_BIAS_OPTIONS,
            "out": ("out_features", None),
            "out features": ("out_features", None),
            "in": ("in_features", None),
            "in features": ("in_features", None),
        },
        filter="linear",
        affine_map=True,
        weighted=True,
        expects=lambda layer: layer.in_features,
        describe=lambda layer, s: f"Linear({layer.in_features}, {layer.out_features})",
    ),
    Entry(
        kind="flatten",
        model=ir.Flatten,
        words=("Flatten",),
        resolve=lambda layer, shape: (layer, (_numel(shape),)),
        affine_map=True,
        describe=lambda layer, s: "Flatten()",
        attach=True,
    ),
    *[
        Entry(
            kind=kind,
            model=ir.Activation,
            words=words,
            resolve=_same,
            cost=_act_cost,
            affine_map=kind == "identity",
            describe=_named(words[0]),
            attach=True,
        )
        for kind, words in _ACTIVATION_WORDS.items()
    ],
    Entry(
        kind="leakyrelu",
        model=ir.LeakyReLU,
        words=("Leaky ReLU", "lrelu"),
        resolve=_same,
        cost=_act_cost,
        value="negative_slope",
        options={"slope": ("negative_slope", None), "negative slope": ("negative_slope", None)},
        describe=lambda layer, s: f"LeakyReLU({layer.negative_slope})",
        attach=True,
    ),
    Entry(
        kind="elu",
        model=ir.ELU,
        words=("ELU",),
        resolve=_same,
        cost=_act_cost,
        value="alpha",
        options={"alpha": ("alpha", None)},
        describe=lambda layer, s: f"ELU({layer.alpha})",
        attach=True,
    ),
    Entry(
        kind="prelu",
        model=ir.PReLU,
        words=("PReLU",),
        resolve=_prelu_resolve,
        params=lambda layer: layer.num_parameters or 1,
        cost=_act_cost,
        options={"per channel": ("per_channel", True)},
        describe=lambda layer, s: f"PReLU({layer.num_parameters})",
        attach=True,
    ),
]

#: kind -> entry
CATALOG: dict[str, Entry] = {e.kind: e for e in _ENTRIES}

#: normalized spec word -> kind
KIND_WORDS: dict[str, str] = {normalize(w): e.kind for e in _ENTRIES for w in (e.kind, *e.words)}


#: torch layers (normalized names) a spec may name but lstndsl has no kind for: the did-you-mean
#: must not offer another layer for them (`Dropout2d` is not `Dropout`)
NOT_SUPPORTED: frozenset[str] = frozenset(
    normalize(w)
    for w in [
        "conv1d",
        "conv3d",
        "convtranspose2d",
        "deconv",
        "deconvolution",
        "maxpool1d",
        "maxpool3d",
        "avgpool1d",
        "avgpool3d",
        "adaptivemaxpool2d",
        "batchnorm3d",
        "layernorm",
        "groupnorm",
        "instancenorm",
        "instancenorm2d",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alphadropout",
        "localresponsenorm",
        "lrn",
        "upsample",
        "pixelshuffle",
        "embedding",
        "lstm",
        "gru",
        "rnn",
        "softmax",
        "logsoftmax",
        "softmin",
    ]
)


def entry(layer: Any) -> Entry:
    return CATALOG[layer.kind]


def canonical_word(kind: str) -> str:
    return CATALOG[kind].words[0]


def is_activation(kind: str) -> bool:
    return CATALOG[kind].model in (ir.Activation, ir.LeakyReLU, ir.ELU, ir.PReLU)


def params_of(layer: Any) -> int:
    """Trainable parameters of a resolved layer."""
    return entry(layer).params(layer)
