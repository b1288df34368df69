"""The normalization, dropout and activation kinds: batch, layer, group and instance norm,
dropout and Dropout2d, the activations (the parameter-free ones from the one table,
activations.py; leaky ReLU, ELU and PReLU with their settings). One `Entry` each (entry.py);
convolution, pooling and linear are in kinds.py.

Pure Python (no torch). This module is not: the lookup tables (catalog.py).
"""

from __future__ import annotations

from typing import Any

from lstndsl import ir
from lstndsl.activations import ACTIVATIONS, PTFLOPS_PRICED
from lstndsl.entry import Cost, Entry, InferError, TorchOp, named, numel, plain, same_shape, spatial
from lstndsl.ir import Shape, format_shape

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


ENTRIES: list[Entry] = [
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
        resolve=same_shape,
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
    *[
        Entry(
            kind=kind,
            model=ir.Activation,
            words=words,
            resolve=same_shape,
            torch=plain(cls),
            cost=_act_cost,
            ptflops=_act_by_output if kind in PTFLOPS_PRICED else lambda op: {},
            torch_cost=(lambda module, i, o: {}) if kind == "identity" else _act_torch_cost,
            torch_class=cls,
            affine_map=kind == "identity",
            describe=named(cls),
            attach=True,
            activation=True,
        )
        for kind, (cls, words) in ACTIVATIONS.items()
    ],
    Entry(
        kind="leakyrelu",
        model=ir.LeakyReLU,
        words=("Leaky ReLU", "lrelu"),
        resolve=same_shape,
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
        resolve=same_shape,
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
