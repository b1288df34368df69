"""The layer kinds: one `Entry` each, holding every fact about the kind once (entry.py).

Adding a layer kind is an IR class in ir.py, an Entry here, and a row using it in
tests/fixtures/good/every-kind.spec; the grammar, the compiler's builder and emitter, the cost
conventions and the torch-side counter read it from here. (A parameter-free activation is one
line of activations.py instead.)

Pure Python (no torch). This module is not: the lookup tables (catalog.py) or the cost
conventions' documentation (cost.py).
"""

from __future__ import annotations

from typing import Any

from lstndsl import ir
from lstndsl.activations import ACTIVATIONS, PTFLOPS_PRICED
from lstndsl.entry import Cost, Entry, InferError, TorchOp, numel, spatial, windowed
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


# --- normalization -----------------------------------------------------------------------------


def _bn_resolve(layer: ir.BatchNorm, shape: Shape) -> tuple[Any, Shape]:
    return layer.model_copy(update={"num_features": layer.num_features or shape[0]}), shape


def _bn_torch(layer: ir.BatchNorm, shape: Shape) -> TorchOp:
    return TorchOp(
        "BatchNorm2d" if len(shape) == 3 else "BatchNorm1d",
        (layer.num_features,),
        (("eps", layer.eps), ("momentum", layer.momentum), ("affine", layer.affine)),
        {"eps": 1e-5, "momentum": 0.1, "affine": True},
    )


def _stat_norm_cost(layer: Any, i: Shape, o: Shape) -> Cost:
    """Layer, group and instance norm compute their statistics at inference too: a mean and a
    variance (2 per element) and the normalization (2), plus the affine γ, β (2): `norm`
    counts half of that, as for batch norm (whose `full` price is 2 per `norm` element)."""
    return {"norm": numel(i) * (3 if layer.affine else 2)}


def _stat_norm_torch_cost(module: Any, i: Shape, o: Shape) -> Cost:
    affine = bool(getattr(module, "affine", getattr(module, "elementwise_affine", True)))
    return {"norm": numel(i) * (3 if affine else 2)}


def _two_per_input(op: Any) -> Cost:
    return {"norm": 2 * numel(op.input)}


def _ptflops_norm(op: Any) -> Cost:
    """ptflops' bn hook: 1 per input element, 2 when the module has an `affine` attribute
    that is true (nn.LayerNorm has none: its flag is `elementwise_affine`)."""
    return {"norm": (2 if op.affine and op.kind != "layernorm" else 1) * numel(op.input)}


def _channels(layer: Any, shape: Shape, what: str) -> int:
    if layer.num_features is not None and layer.num_features != shape[0]:
        raise InferError(f"{what} of {layer.num_features} channels cannot take {shape[0]}")
    return shape[0]


def _groupnorm_resolve(layer: ir.GroupNorm, shape: Shape) -> tuple[Any, Shape]:
    if layer.groups is None:
        raise InferError("group norm needs its number of groups", "write e.g. 'group norm 8'")
    c = _channels(layer, shape, "a group norm")
    if c % layer.groups:
        raise InferError(
            f"group norm: {layer.groups} groups must divide the {c} channels",
            f"use a divisor of {c}",
        )
    if c // layer.groups * numel(shape[1:]) == 1:
        raise InferError(
            "group norm: each group holds one value per image, which it would normalize to 0"
            " (torch refuses it)",
            "use fewer groups, or put it where the map is larger",
        )
    return layer.model_copy(update={"num_features": c}), shape


def _instancenorm_resolve(layer: ir.InstanceNorm, shape: Shape) -> tuple[Any, Shape]:
    c, h, w = spatial(shape, "instance norm")
    _channels(layer, shape, "an instance norm")
    if h * w == 1:
        raise InferError(
            "instance norm on a 1×1 map normalizes every value to 0 (torch refuses it in training)",
            "put it where the map is larger than 1×1",
        )
    return layer.model_copy(update={"num_features": c}), shape


_NORM_OPTIONS: dict[str, tuple[str, Any]] = {
    "eps": ("eps", None),
    "affine": ("affine", None),
    "no affine": ("affine", False),
}


# --- the rest ----------------------------------------------------------------------------------


def _same(layer: Any, shape: Shape) -> tuple[Any, Shape]:
    return layer, shape


def _act_cost(layer: Any, i: Shape, o: Shape) -> Cost:
    return {} if layer.kind == "identity" else {"act": numel(o)}


def _act_torch_cost(module: Any, i: Shape, o: Shape) -> Cost:
    return {"act": numel(o)}


def _act_by_output(op: Any) -> Cost:
    return {"act": numel(op.output)}


def _prelu_resolve(layer: ir.PReLU, shape: Shape) -> tuple[Any, Shape]:
    n = shape[0] if layer.per_channel else 1
    return layer.model_copy(update={"num_parameters": n}), shape


def _dropout2d_resolve(layer: ir.Dropout2d, shape: Shape) -> tuple[Any, Shape]:
    spatial(shape, "channel dropout (Dropout2d)")
    return layer, shape


def _plain(cls: str) -> Any:
    return lambda layer, shape: TorchOp(cls)


def _named(name: str) -> Any:
    return lambda layer, shape: f"{name}()"


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
        kind="batchnorm",
        model=ir.BatchNorm,
        words=("BN", "batch norm", "batchnorm2d", "batchnorm1d", "batch normalization"),
        resolve=_bn_resolve,
        torch=_bn_torch,
        params=lambda layer: 2 * layer.num_features if layer.affine else 0,
        cost=lambda layer, i, o: {"norm": numel(o)},
        thop=lambda op: {"norm": 2 * op.cost.get("norm", 0)},
        ptflops=lambda op: {"norm": (2 if op.affine else 1) * op.cost.get("norm", 0)},
        options={**_NORM_OPTIONS, "momentum": ("momentum", None)},
        filter="norm",
        affine_map=True,
        expects=lambda layer: layer.num_features,
        describe=lambda layer, s: f"BatchNorm{'2d' if len(s) == 3 else '1d'}({layer.num_features})",
        attach=True,
        norm=True,
        cancels_bias=True,
    ),
    Entry(
        kind="layernorm",
        model=ir.LayerNorm,
        words=("Layer norm", "layernorm", "layer normalization", "LN"),
        resolve=lambda layer, shape: (layer.model_copy(update={"shape": shape}), shape),
        torch=lambda layer, shape: TorchOp(
            "LayerNorm",
            (list(layer.shape),),
            (("eps", layer.eps), ("elementwise_affine", layer.affine)),
            {"eps": 1e-5, "elementwise_affine": True},
        ),
        params=lambda layer: 2 * numel(layer.shape) if layer.affine else 0,
        cost=_stat_norm_cost,
        thop=_two_per_input,
        ptflops=_ptflops_norm,
        torch_cost=_stat_norm_torch_cost,
        torch_class="LayerNorm",
        options=_NORM_OPTIONS,
        describe=lambda layer, s: f"LayerNorm({format_shape(layer.shape or s)})",
        attach=True,
        norm=True,
    ),
    Entry(
        kind="groupnorm",
        model=ir.GroupNorm,
        words=("Group norm", "groupnorm", "group normalization", "GN"),
        resolve=_groupnorm_resolve,
        torch=lambda layer, shape: TorchOp(
            "GroupNorm",
            (layer.groups, layer.num_features),
            (("eps", layer.eps), ("affine", layer.affine)),
            {"eps": 1e-5, "affine": True},
        ),
        params=lambda layer: 2 * layer.num_features if layer.affine else 0,
        cost=_stat_norm_cost,
        ptflops=_ptflops_norm,
        torch_cost=_stat_norm_torch_cost,
        torch_class="GroupNorm",
        value="groups",
        options={**_NORM_OPTIONS, "groups": ("groups", None)},
        filter="norm",
        expects=lambda layer: layer.num_features,
        describe=lambda layer, s: f"GroupNorm({layer.groups}, {layer.num_features})",
        attach=True,
        norm=True,
    ),
    Entry(
        kind="instancenorm",
        model=ir.InstanceNorm,
        words=("Instance norm", "instancenorm", "instancenorm2d", "instance normalization"),
        resolve=_instancenorm_resolve,
        torch=lambda layer, shape: TorchOp(
            "InstanceNorm2d",
            (layer.num_features,),
            (("eps", layer.eps), ("affine", layer.affine)),
            {"eps": 1e-5, "affine": False},
        ),
        params=lambda layer: 2 * layer.num_features if layer.affine else 0,
        cost=_stat_norm_cost,
        thop=_two_per_input,
        ptflops=_ptflops_norm,
        torch_cost=_stat_norm_torch_cost,
        torch_class="InstanceNorm2d",
        options=_NORM_OPTIONS,
        filter="norm",
        expects=lambda layer: layer.num_features,
        describe=lambda layer, s: f"InstanceNorm2d({layer.num_features})",
        attach=True,
        norm=True,
        cancels_bias=True,
    ),
    Entry(
        kind="dropout",
        model=ir.Dropout,
        words=("Dropout",),
        resolve=_same,
        torch=lambda layer, shape: TorchOp("Dropout", (layer.p,)),
        torch_cost=lambda module, i, o: {},
        torch_class="Dropout",
        value="p",
        options={"p": ("p", None), "rate": ("p", None)},
        affine_map=True,  # the identity at inference
        describe=lambda layer, s: f"Dropout({layer.p})",
        attach=True,
    ),
    Entry(
        kind="dropout2d",
        model=ir.Dropout2d,
        words=("Dropout2d", "channel dropout", "spatial dropout"),
        resolve=_dropout2d_resolve,
        torch=lambda layer, shape: TorchOp("Dropout2d", (layer.p,)),
        torch_cost=lambda module, i, o: {},
        torch_class="Dropout2d",
        value="p",
        options={"p": ("p", None), "rate": ("p", None)},
        affine_map=True,  # the identity at inference
        describe=lambda layer, s: f"Dropout2d({layer.p})",
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
        torch=_plain("Flatten"),
        torch_cost=lambda module, i, o: {},
        torch_class="Flatten",
        affine_map=True,
        describe=_named("Flatten"),
        attach=True,
    ),
    *[
        Entry(
            kind=kind,
            model=ir.Activation,
            words=words,
            resolve=_same,
            torch=_plain(cls),
            cost=_act_cost,
            ptflops=_act_by_output if kind in PTFLOPS_PRICED else lambda op: {},
            torch_cost=(lambda module, i, o: {}) if kind == "identity" else _act_torch_cost,
            torch_class=cls,
            affine_map=kind == "identity",
            describe=_named(cls),
            attach=True,
            activation=True,
        )
        for kind, (cls, words) in ACTIVATIONS.items()
    ],
    Entry(
        kind="leakyrelu",
        model=ir.LeakyReLU,
        words=("Leaky ReLU", "lrelu"),
        resolve=_same,
        torch=lambda layer, shape: TorchOp("LeakyReLU", (layer.negative_slope,)),
        cost=_act_cost,
        thop=lambda op: {"act": op.cost.get("act", 0)},
        ptflops=_act_by_output,
        torch_cost=_act_torch_cost,
        torch_class="LeakyReLU",
        value="negative_slope",
        options={"slope": ("negative_slope", None), "negative slope": ("negative_slope", None)},
        describe=lambda layer, s: f"LeakyReLU({layer.negative_slope})",
        attach=True,
        activation=True,
    ),
    Entry(
        kind="elu",
        model=ir.ELU,
        words=("ELU",),
        resolve=_same,
        torch=lambda layer, shape: TorchOp("ELU", (layer.alpha,)),
        cost=_act_cost,
        ptflops=_act_by_output,
        torch_cost=_act_torch_cost,
        torch_class="ELU",
        value="alpha",
        options={"alpha": ("alpha", None)},
        describe=lambda layer, s: f"ELU({layer.alpha})",
        attach=True,
        activation=True,
    ),
    Entry(
        kind="prelu",
        model=ir.PReLU,
        words=("PReLU",),
        resolve=_prelu_resolve,
        torch=lambda layer, shape: TorchOp("PReLU", (layer.num_parameters,)),
        params=lambda layer: layer.num_parameters or 1,
        cost=_act_cost,
        ptflops=_act_by_output,
        torch_cost=_act_torch_cost,
        torch_class="PReLU",
        options={"per channel": ("per_channel", True)},
        describe=lambda layer, s: f"PReLU({layer.num_parameters})",
        attach=True,
        activation=True,
    ),
]
