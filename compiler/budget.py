"""How big a model may be before anything is allocated or run: memory and compute guards.

`guard_stn` refuses a spatial transformer whose float32 weights plus its largest feature map
at batch 1 exceed the memory budget, whose multiply-accumulates per image exceed the compute
budget, or one of whose tensors alone exceeds 2^31 elements, each at the spec row (or head)
responsible. `guard_backbone` counts a backbone's parameters on torch's meta device (no
memory) when `num_classes` could make its classifier huge. The budgets (8 GiB, 250 GMACs per
image) are generous for real localization nets (at 1024 px the specs in specs/ need at most
0.1 GiB and 59 GMACs, rare-tps.spec) and stop what would run for hours (an 828-GMAC net takes
100 s to compile on 2 shared cores; a 513×513 kernel at 1024 px is 26 TMACs); raise them
deliberately with LSTNDSL_MAX_GIB and LSTNDSL_MAX_GMACS.

Not here: the shapes and counts themselves (lstndsl.check), building (build.py).
"""

from __future__ import annotations

import os
from typing import Any

from lstndsl import check, ir
from lstndsl.errors import CompileError, Diagnostic, UsageError

#: the most float32 elements one tensor may hold (8 GiB)
MAX_ELEMENTS = 2**31
#: default budgets: memory for weights + the largest feature map at batch 1; MACs per image
DEFAULT_GIB = 8.0
DEFAULT_GMACS = 250.0
#: below this many classes no backbone's classifier can be large (counted only above it)
MANY_CLASSES = 10_000


def _limit(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{name} must be a positive number, not '{text}'")
    return value


def max_bytes() -> float:
    return _limit("LSTNDSL_MAX_GIB", DEFAULT_GIB) * 2**30


def max_macs() -> float:
    return _limit("LSTNDSL_MAX_GMACS", DEFAULT_GMACS) * 1e9


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _error(spec: ir.Spec, message: str, pos: ir.Pos | None, hint: str) -> CompileError:
    p = pos or ir.Pos(line=1, column=1)
    d = Diagnostic("error", message, spec.path, p.line, p.column, hint, p.width, "too-large")
    return CompileError([d], spec.source)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def guard_stn(spec: ir.Spec, analysis: check.Analysis) -> None:
    """Raise CompileError before building when the transformer would not fit (see above)."""
    # (what, parameters, output elements per image, MACs, where)
    places: list[tuple[str, int, int, int, ir.Pos | None]] = [
        (rr.row.type.text, rr.params, _numel(rr.output or ()), rr.macs, rr.row.type.pos)
        for rr in analysis.rows
    ]
    places += [(r.name, r.params, _numel(r.output), r.macs, spec.head_pos) for r in analysis.head]
    for what, params, elements, _, pos in places:
        if max(params, elements) > MAX_ELEMENTS:
            count, size = max((params, "parameters"), (elements, "output elements per image"))
            message = (
                f"'{what}' has {count:,} {size} ({_gib(count * 4)} in float32): too large to build"
            )
            raise _error(spec, message, pos, "check the Filter Shape and the input size")
    params = sum(p[1] for p in places)
    largest = max([_numel(analysis.input), *(p[2] for p in places)])
    need = 4 * (params + largest)
    if need > max_bytes():
        where = max(places, key=lambda p: p[1] + p[2])
        message = (
            f"the transformer needs {_gib(need)} in float32 ({params:,} parameters and a"
            f" largest feature map of {largest:,} values at batch 1), over the budget of"
            f" {_gib(max_bytes())}; the largest part is '{where[0]}'"
        )
        hint = "check the Filter Shape and the input size, or set LSTNDSL_MAX_GIB to build it"
        raise _error(spec, message, where[4], hint)
    macs = sum(p[3] for p in places)
    if macs > max_macs():
        where = max(places, key=lambda p: p[3])
        message = (
            f"the transformer takes {macs / 1e9:,.0f} GMACs per image, over the budget of"
            f" {max_macs() / 1e9:,.0f} GMACs (the dry forward alone would take minutes or hours);"
            f" '{where[0]}' takes {where[3] / 1e9:,.0f}"
        )
        hint = "check the Filter Shape and the input size, or set LSTNDSL_MAX_GMACS to build it"
        raise _error(spec, message, where[4], hint)


def guard_backbone(name: str, num_classes: int | None, create: Any) -> None:
    """With many classes, count the backbone's parameters on the meta device (`create()` is
    called under it: nothing is allocated) and raise UsageError over the memory budget."""
    if num_classes is None or num_classes <= MANY_CLASSES:
        return
    import torch

    with torch.device("meta"):
        net = create()
    params = sum(p.numel() for p in net.parameters())
    if 4 * params > max_bytes():
        raise UsageError(
            f"the backbone {name} with num_classes {num_classes:,} has {params:,} parameters"
            f" ({_gib(4 * params)} in float32), over the budget of {_gib(max_bytes())};"
            " check num_classes, or set LSTNDSL_MAX_GIB to build it"
        )
