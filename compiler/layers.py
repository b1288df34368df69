"""Layer builders: one per catalog kind, from a resolved layer to a torch module.

The builder's key is the layer's one name (the IR tag, the catalog key); a completeness test
asserts the three sets are equal. Builders receive `check.LayerResult`s, whose every field is
already resolved by the catalog, so nothing here infers a shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from lstndsl.check import LayerResult

Builder = Callable[[Any, LayerResult], nn.Module]


def _conv(layer: Any, r: LayerResult) -> nn.Module:
    return nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias,
    )


def _batchnorm(layer: Any, r: LayerResult) -> nn.Module:
    cls = nn.BatchNorm2d if len(r.input) == 3 else nn.BatchNorm1d
    return cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine)


BUILDERS: dict[str, Builder] = {
    "conv": _conv,
    "maxpool": lambda layer, r: nn.MaxPool2d(
        layer.kernel,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        ceil_mode=layer.ceil_mode,
    ),
    "avgpool": lambda layer, r: nn.AvgPool2d(
        layer.kernel,
        stride=layer.stride,
        padding=layer.padding,
        ceil_mode=layer.ceil_mode,
        count_include_pad=layer.count_include_pad,
    ),
    "adaptiveavgpool": lambda layer, r: nn.AdaptiveAvgPool2d(layer.output),
    "batchnorm": _batchnorm,
    "dropout": lambda layer, r: nn.Dropout(layer.p),
    "linear": lambda layer, r: nn.Linear(layer.in_features, layer.out_features, bias=layer.bias),
    "flatten": lambda layer, r: nn.Flatten(),
    "relu": lambda layer, r: nn.ReLU(),
    "relu6": lambda layer, r: nn.ReLU6(),
    "selu": lambda layer, r: nn.SELU(),
    "gelu": lambda layer, r: nn.GELU(),
    "silu": lambda layer, r: nn.SiLU(),
    "mish": lambda layer, r: nn.Mish(),
    "sigmoid": lambda layer, r: nn.Sigmoid(),
    "tanh": lambda layer, r: nn.Tanh(),
    "hardswish": lambda layer, r: nn.Hardswish(),
    "hardsigmoid": lambda layer, r: nn.Hardsigmoid(),
    "softplus": lambda layer, r: nn.Softplus(),
    "identity": lambda layer, r: nn.Identity(),
    "leakyrelu": lambda layer, r: nn.LeakyReLU(layer.negative_slope),
    "elu": lambda layer, r: nn.ELU(layer.alpha),
    "prelu": lambda layer, r: nn.PReLU(layer.num_parameters),
}


def build_layer(r: LayerResult) -> nn.Module:
    return BUILDERS[r.layer.kind](r.layer, r)


def build_chain(results: list[LayerResult] | tuple[LayerResult, ...]) -> nn.Sequential:
    """A Sequential whose children are named after the layers' kinds (conv, batchnorm, relu …)."""
    seq = nn.Sequential()
    counts: dict[str, int] = {}
    for r in results:
        kind = r.layer.kind
        counts[kind] = counts.get(kind, 0) + 1
        name = kind if counts[kind] == 1 else f"{kind}{counts[kind]}"
        seq.add_module(name, build_layer(r))
    return seq
