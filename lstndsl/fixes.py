"""The fixes a mismatch's message suggests: the smallest change to a row's primary layer that
gives the declared Output Shape (`padding 1`, `stride 2 and ceil mode`), and what a declared
Parameters count fits (a batch norm the Type cell does not name, a bias too many or too few).

Pure functions over the IR and inference results (results.py). This module is not: the checks
that call them (check.py).
"""

from __future__ import annotations

import itertools
from typing import Any

from lstndsl import catalog, ir
from lstndsl.ir import Shape
from lstndsl.results import LayerResult, RowResult


def terms(values: tuple[int, ...] | list[int]) -> str:
    return "+".join(str(t) for t in values) if values else "0"


_FIX_TRIES: tuple[tuple[str, Any], ...] = (
    *(("padding", (p, p)) for p in range(0, 6)),
    *(("stride", (s, s)) for s in range(1, 5)),
    *(("dilation", (d, d)) for d in range(1, 4)),
    ("ceil_mode", True),
    ("ceil_mode", False),
)


def _fix_words(name: str, value: Any) -> str:
    if name == "ceil_mode":
        return "ceil mode" if value else "no ceil mode"
    return f"{name} {value[0]}"


def shape_fix(layers: tuple[Any, ...], shape: Shape, declared: Shape) -> str | None:
    """The smallest change to the row's primary layer that makes it output `declared`."""
    primary = layers[0]
    fields = type(primary).model_fields
    singles = [(n, v) for n, v in _FIX_TRIES if n in fields and getattr(primary, n) != v]
    pairs = [(a, b) for a, b in itertools.combinations(singles, 2) if a[0] != b[0]]
    for changes in [[s] for s in singles] + [list(p) for p in pairs]:
        candidate = primary.model_copy(update=dict(changes))
        try:
            out = _output_of((candidate, *layers[1:]), shape)
        except catalog.InferError:
            continue
        if out == declared:
            return " and ".join(_fix_words(n, v) for n, v in changes)
    return None


def _output_of(layers: tuple[Any, ...], shape: Shape) -> Shape:
    for layer in layers:
        _, shape = catalog.entry(layer).resolve(layer, shape)
    return shape


def params_fix(
    row: ir.Row, result: RowResult, declared: tuple[int, ...], inferred: tuple[int, ...]
) -> tuple[str | None, bool]:
    """(hint, structural): structural fixes change the Type cell, so the declared count stands."""
    weighted = [r for r in result.layers if r.params]
    channels = result.output[0] if result.output else 0
    has_bn = any(r.layer.kind == "batchnorm" for r in result.layers)
    bn = 2 * channels
    # a batch norm the Type cell does not name
    missing_bn = declared == (*inferred, bn) or (
        len(declared) == 1 and declared[0] == sum(inferred) + bn
    )
    if not has_bn and channels and missing_bn:
        norm = "BatchNorm2d" if result.output and len(result.output) == 3 else "BatchNorm1d"
        return (
            f"{terms(declared)} implies a batch norm the Type cell does not name"
            f" ({norm}({channels}) has {bn}): '{_with_bn(row)}' would fit",
            True,
        )
    if len(declared) == len(inferred) and len(declared) > 1:
        wrong = [(r, d) for r, d in zip(weighted, declared, strict=True) if r.params != d]
        parts = []
        structural = True
        for r, d in wrong:
            hint, is_structural = _term_fix(r, d)
            parts.append(hint)
            structural = structural and is_structural
        return "; ".join(parts), structural
    if len(declared) == 1 and len(weighted) == 1:
        return _term_fix(weighted[0], declared[0])
    if len(declared) == 1 and len(weighted) > 1 and declared[0] == weighted[0].params:
        rest = " and ".join(r.name for r in weighted[1:])
        return (
            f"declared {declared[0]} counts the {weighted[0].name} only; with {rest}"
            f" the row has {result.params} ({terms(inferred)})",
            False,
        )
    return None, False


def _with_bn(row: ir.Row) -> str:
    """The Type cell with '+ BN' where a batch norm goes: after the primary layer, before an
    activation the cell names ('Conv + ReLU' -> 'Conv + BN + ReLU')."""
    text, cell = row.type.text, row.type.pos
    attached = [x.pos for x in row.layers[1:] if x.pos is not None and x.pos.line == cell.line]
    if not attached:
        return f"{text} + BN"
    at = attached[0].column - cell.column
    return f"{text[:at].rstrip(' +,;')} + BN + {text[at:]}"


def _term_fix(r: LayerResult, declared: int) -> tuple[str, bool]:
    layer = r.layer
    if layer.kind in {"conv", "linear"} and layer.bias:
        nobias = r.params - (layer.out_channels if layer.kind == "conv" else layer.out_features)
        if declared == nobias:
            return f"{declared} fits {r.name} without a bias ('no bias')", True
    if layer.kind in {"conv", "linear"} and not layer.bias:
        withbias = r.params + (layer.out_channels if layer.kind == "conv" else layer.out_features)
        if declared == withbias:
            return f"{declared} fits {r.name} with a bias", True
    return f"{r.name} has {r.params} parameters, not {declared}", False
