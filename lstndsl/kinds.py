"""The layer kinds that slide a window or weigh their inputs: convolution, pooling, linear,
flatten. One `Entry` each, holding every fact about the kind once (entry.py); the norms,
dropouts and activations are in kinds_norm.py.

Adding a layer kind is an IR class in ir.py, an Entry in this file or kinds_norm.py, and a row
using it in tests/fixtures/good/every-kind.spec; the grammar, the compiler's builder and
emitter, the cost conventions and the torch-side counter read it from the entry. (A
parameter-free activation is one line of activations.py instead.)

Pure Python (no torch). This module is not: the lookup tables (catalog.py) or the cost
conventions' documentation (cost.py).
"""

from __future__ import annotations

from typing import Any

from lstndsl import ir
from lstndsl.entry import (
    Cost,
    Entry,
    InferError,
    TorchOp,
    named,
    numel,
    plain,
    spatial,
    windowed,
)
from lstndsl.ir import Shape, format_shape

# --- convolution and linear ------------------------------------------------------------------


def _same_padding(layer: ir.Conv) -> tuple[int, int]:
    assert layer.kernel is not None
    pads = []
    for k, d in zip(layer.kernel, layer.dilation, strict=True):
        if k % 2 == 0:
            raise InferError(
                f"'padding same' needs an odd kernel, not {layer.kernel[0]}×{layer.kernel[1]}:"
                " an even kernel keeps the size only with uneven padding (one more on the right"
                " and bottom), which Conv2d does not do",
                "write the padding, e.g. 'padding 1' (one row and column larger) or use an odd"
                " kernel",
            )
        pads.append(d * (k - 1) // 2)
    return pads[0], pads[1]


def _conv_resolve(layer: ir.Conv, shape: Shape) -> tuple[ir.Conv, Shape]:
    c, _, _ = spatial(shape, "a convolution")
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
    padding = _same_padding(layer) if layer.padding == "same" else layer.padding
    assert isinstance(padding, tuple)
    h, w = windowed(
        "a convolution", shape, layer.kernel, layer.stride, padding, layer.dilation, False
    )
    resolved = layer.model_copy(update={"in_channels": cin, "padding": padding})
    return resolved, (layer.out_channels, h, w)


def _conv_params(layer: ir.Conv) -> int:
    assert layer.kernel and layer.in_channels and layer.out_channels
    kh, kw = layer.kernel
    weights = layer.out_channels * (layer.in_channels // layer.groups) * kh * kw
    return weights + (layer.out_channels if layer.bias else 0)


def _conv_cost(layer: ir.Conv, i: Shape, o: Shape) -> Cost:
    assert layer.kernel and layer.in_channels
    kh, kw = layer.kernel
    out = numel(o)
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
        if v != default and isinstance(v, tuple)
    )
    groups = f", groups {layer.groups}" if layer.groups != 1 else ""
    bias = "" if layer.bias else ", no bias"
    return f"Conv2d({layer.in_channels}, {layer.out_channels}, {k[0]}×{k[1]}{extra}{groups}{bias})"


def _conv_torch(layer: ir.Conv, shape: Shape) -> TorchOp:
    return TorchOp(
        "Conv2d",
        (layer.in_channels, layer.out_channels),
        (
            ("kernel_size", layer.kernel),
            ("stride", layer.stride),
            ("padding", layer.padding),
            ("dilation", layer.dilation),
            ("groups", layer.groups),
            ("bias", layer.bias),
        ),
        {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1, "bias": True},
    )


def _weights_and_bias(op: Any) -> Cost:
    return {"weights": op.cost.get("mac", 0), "bias": op.cost.get("bias", 0)}


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
    return {"mac": layer.in_features * layer.out_features, "bias": numel(o) * layer.bias}


# --- pooling -----------------------------------------------------------------------------------


def _pool_resolve(layer: ir.MaxPool | ir.AvgPool, shape: Shape) -> tuple[Any, Shape]:
    name = "max pooling" if layer.kind == "maxpool" else "average pooling"
    c, _, _ = spatial(shape, name)
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
    h, w = windowed(name, shape, layer.kernel, stride, layer.padding, dilation, layer.ceil_mode)
    return layer.model_copy(update={"stride": stride, "channels": layer.channels or c}), (c, h, w)


def _pool_cost(layer: ir.MaxPool | ir.AvgPool, i: Shape, o: Shape) -> Cost:
    assert layer.kernel
    return {"pool": numel(o) * layer.kernel[0] * layer.kernel[1]}


def _pool_describe(layer: ir.MaxPool | ir.AvgPool, shape: Shape) -> str:
    cls = "MaxPool2d" if layer.kind == "maxpool" else "AvgPool2d"
    k, s = layer.kernel or (0, 0), layer.stride or layer.kernel or (0, 0)
    return f"{cls}({k[0]}×{k[1]}, stride {s[0]})"


def _maxpool_torch(layer: ir.MaxPool, shape: Shape) -> TorchOp:
    return TorchOp(
        "MaxPool2d",
        (layer.kernel,),
        (
            ("stride", layer.stride),
            ("padding", layer.padding),
            ("dilation", layer.dilation),
            ("ceil_mode", layer.ceil_mode),
        ),
        {"padding": (0, 0), "dilation": (1, 1), "ceil_mode": False},
    )


def _avgpool_torch(layer: ir.AvgPool, shape: Shape) -> TorchOp:
    return TorchOp(
        "AvgPool2d",
        (layer.kernel,),
        (
            ("stride", layer.stride),
            ("padding", layer.padding),
            ("ceil_mode", layer.ceil_mode),
            ("count_include_pad", layer.count_include_pad),
        ),
        {"padding": (0, 0), "ceil_mode": False, "count_include_pad": True},
    )


def _pool_by_input(op: Any) -> Cost:
    return {"pool": numel(op.input)}


def _adaptive_thop(op: Any) -> Cost:
    if len(op.input) != 3:
        return {}
    window = (op.input[1] // op.output[1]) * (op.input[2] // op.output[2])
    return {"pool": (window + 1) * numel(op.output)}


def _adaptive_resolve(layer: ir.AdaptiveAvgPool, shape: Shape) -> tuple[Any, Shape]:
    c, _, _ = spatial(shape, "adaptive average pooling")
    return layer, (c, *layer.output)


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


ENTRIES: list[Entry] = [
    Entry(
        kind="conv",
        model=ir.Conv,
        words=("Conv", "conv2d", "convolution"),
        resolve=_conv_resolve,
        torch=_conv_torch,
        params=_conv_params,
        cost=_conv_cost,
        thop=_weights_and_bias,
        ptflops=_weights_and_bias,
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
        torch=_maxpool_torch,
        cost=_pool_cost,
        ptflops=_pool_by_input,
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
        torch=_avgpool_torch,
        cost=_pool_cost,
        thop=lambda op: {"pool": numel(op.output)},
        ptflops=_pool_by_input,
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
        torch=lambda layer, shape: TorchOp("AdaptiveAvgPool2d", (layer.output,)),
        cost=lambda layer, i, o: {"pool": numel(i)},
        thop=_adaptive_thop,
        ptflops=_pool_by_input,
        value="output",
        options={"output": ("output", None), "size": ("output", None)},
        affine_map=True,
        describe=lambda layer, s: f"AdaptiveAvgPool2d({layer.output[0]}×{layer.output[1]})",
        attach=True,
    ),
    Entry(
        kind="linear",
        model=ir.Linear,
        words=("FC", "linear", "dense", "fully connected"),
        resolve=_linear_resolve,
        torch=lambda layer, shape: TorchOp(
            "Linear",
            (layer.in_features, layer.out_features),
            (("bias", layer.bias),),
            {"bias": True},
        ),
        params=_linear_params,
        cost=_linear_cost,
        thop=lambda op: {"weights": op.cost.get("mac", 0)},
        ptflops=_weights_and_bias,
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
        resolve=lambda layer, shape: (layer, (numel(shape),)),
        torch=plain("Flatten"),
        torch_cost=lambda module, i, o: {},
        torch_class="Flatten",
        affine_map=True,
        describe=named("Flatten"),
        attach=True,
    ),
]
