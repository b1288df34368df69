"""Layer builders: a resolved layer to a torch module, from the torch op its catalog entry
describes as data (`lstndsl.entry.TorchOp`): `getattr(nn, op.cls)(*op.args, **op.kwargs)`.

`BUILDERS` has one builder per catalog kind (the IR tag, the catalog key; a completeness test
asserts the sets are equal); every one is the same generic builder, so a new kind needs no code
here, and compiler/emit.py writes the same op as source text. Builders receive
`check.LayerResult`s, whose every field is already resolved by the catalog, so nothing here
infers a shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from lstndsl import catalog
from lstndsl.check import LayerResult

Builder = Callable[[Any, LayerResult], nn.Module]


def build_op(op: catalog.TorchOp) -> nn.Module:
    """The torch module an op describes."""
    module: nn.Module = getattr(nn, op.cls)(*op.args, **dict(op.kwargs))
    return module


def _from_catalog(layer: Any, r: LayerResult) -> nn.Module:
    return build_op(catalog.torch_op(layer, r.input))


BUILDERS: dict[str, Builder] = dict.fromkeys(catalog.CATALOG, _from_catalog)


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
