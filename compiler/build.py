"""IR -> torch: build the spatial transformer (and, with a backbone, the full model), then
check that torch agrees with the catalog, row by row.

Three witnesses for every number: the spec declares it, the catalog infers it (check.py),
and here the real module is counted and run. A disagreement is a CompileError at the row.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from compiler import backbones, transforms
from compiler.layers import build_chain
from compiler.stn import SpatialTransformer, STNModel
from lstndsl import check, ir
from lstndsl.errors import CompileError, Diagnostic, SpecCheckError, UsageError
from lstndsl.ir import format_shape

InputSize = int | tuple[int, int] | None


def size_pair(input_size: InputSize) -> tuple[int, int] | None:
    if input_size is None:
        return None
    if isinstance(input_size, int):
        return (input_size, input_size)
    return (int(input_size[0]), int(input_size[1]))


def model_size(spec: ir.Spec, backbone: str | None, input_size: InputSize) -> tuple[int, int]:
    """The (H, W) a model is compiled at: the size asked for, else the backbone's default
    resolution, else the spec's declared input size."""
    size = size_pair(input_size)
    if size is not None:
        return size
    if backbone is not None:
        r = backbones.default_resolution(backbone)
        return (r, r)
    return (spec.input.height, spec.input.width)


def check_backbone_args(backbone: str | None, num_classes: int | None) -> None:
    if num_classes is not None and backbone is None:
        raise UsageError("--num-classes needs --backbone")


def analyze_for_build(spec: ir.Spec, input_size: InputSize = None) -> check.Analysis:
    """Analyze at the build size; any error (or an incomplete inference) raises."""
    size = size_pair(input_size)
    if size is not None and min(size) < 1:
        raise UsageError(f"input size {size[0]}x{size[1]} is not positive")
    analysis = check.analyze(spec, size)
    if analysis.errors:
        raise SpecCheckError(analysis.diagnostics, spec.source)
    if not analysis.complete:  # pragma: no cover - incomplete inference always reports errors
        raise SpecCheckError(analysis.diagnostics, spec.source)
    return analysis


#: the most float32 elements one tensor of a compiled spatial transformer may hold (8 GiB)
MAX_ELEMENTS = 2**31


def _guard_size(spec: ir.Spec, analysis: check.Analysis) -> None:
    """Refuse, at the first row where it happens, a net whose weights or one image's feature
    map would not fit in memory (a mistyped 100000-channel conv), instead of dying in the
    allocator."""
    diags = []
    places: list[tuple[str, int, int, ir.Pos | None]] = [
        (rr.row.type.text, rr.params, math.prod(rr.output or ()), rr.row.type.pos)
        for rr in analysis.rows
    ]
    places += [(r.name, r.params, math.prod(r.output), spec.head_pos) for r in analysis.head]
    for what, params, elements, pos in places:
        if max(params, elements) > MAX_ELEMENTS:
            p = pos or ir.Pos(line=1, column=1)
            count, size = max((params, "parameters"), (elements, "output elements per image"))
            gib = count * 4 / 2**30
            diags.append(
                Diagnostic(
                    "error",
                    f"'{what}' has {count:,} {size} ({gib:,.0f} GiB in float32):"
                    " too large to build",
                    spec.path,
                    p.line,
                    p.column,
                    "check the Filter Shape and the input size",
                    code="too-large",
                )
            )
            break  # the first one: the rest follow from it
    if diags:
        raise CompileError(diags, spec.source)


def build_stn(spec: ir.Spec, analysis: check.Analysis) -> SpatialTransformer:
    _guard_size(spec, analysis)
    localization = nn.Sequential()
    for i, rr in enumerate(analysis.rows, start=1):
        kinds = "_".join(dict.fromkeys(r.layer.kind for r in rr.layers))
        localization.add_module(f"row{i:02d}_{kinds}", build_chain(rr.layers))
    head = build_chain(analysis.head)
    last = list(head.children())[-1] if len(head) else None
    if not isinstance(last, nn.Linear):
        pos = spec.head_pos or ir.Pos(line=1, column=1)
        raise CompileError(
            [
                Diagnostic(
                    "error",
                    "the head must end in a linear layer: it starts at the identity transform"
                    " (zero weights, identity bias)",
                    spec.path,
                    pos.line,
                    pos.column,
                    f"end the head with 'fc {spec.transform.dof}'",
                    code="head",
                )
            ],
            spec.source,
        )
    with torch.no_grad():
        last.weight.zero_()
        if last.bias is None:
            raise CompileError(
                [
                    Diagnostic(
                        "error",
                        "the head's last linear layer needs a bias to hold the identity",
                        spec.path,
                        (spec.head_pos or ir.Pos(line=1, column=1)).line,
                        (spec.head_pos or ir.Pos(line=1, column=1)).column,
                        code="head",
                    )
                ],
                spec.source,
            )
        last.bias.copy_(torch.tensor(transforms.identity_raw(spec.transform)))
    return SpatialTransformer(localization, head, spec.transform, spec.sampler)


def verify(stn: SpatialTransformer, analysis: check.Analysis) -> None:
    """Count and run the real module; raise CompileError at each row torch disagrees with."""
    spec = analysis.spec
    diags: list[Diagnostic] = []

    def disagree(message: str, pos: ir.Pos | None) -> None:
        p = pos or ir.Pos(line=1, column=1)
        diags.append(Diagnostic("error", message, spec.path, p.line, p.column, code="torch"))

    modules = list(stn.localization.children())
    for module, rr in zip(modules, analysis.rows, strict=True):
        count = sum(p.numel() for p in module.parameters())
        if count != rr.params:
            disagree(
                f"torch's {module.__class__.__name__} has {count} parameters,"
                f" the catalog infers {rr.params}",
                rr.row.type.pos,
            )
    head_count = sum(p.numel() for p in stn.head.parameters())
    if head_count != analysis.params_head:
        disagree(
            f"torch's head has {head_count} parameters, the catalog infers {analysis.params_head}",
            spec.head_pos,
        )
    was_training = stn.training
    stn.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, *analysis.input)
            for module, rr in zip(modules, analysis.rows, strict=True):
                try:
                    x = module(x)
                except RuntimeError as err:  # e.g. a builder that disagrees on channels
                    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                    disagree(f"torch cannot run this row: {reason}", rr.row.type.pos)
                    break
                got = tuple(x.shape[1:])
                if got != rr.output:
                    disagree(
                        f"torch's output is {format_shape(got)}, the catalog infers"
                        f" {format_shape(rr.output or ())}",
                        rr.row.type.pos,
                    )
                    break
            else:
                out = stn.head(x)
                if tuple(out.shape[1:]) != (spec.transform.dof,):
                    disagree(
                        f"torch's head gives {tuple(out.shape[1:])}, expected"
                        f" ({spec.transform.dof},)",
                        spec.head_pos,
                    )
    finally:
        stn.train(was_training)
    if diags:
        raise CompileError(diags, spec.source)


def build(
    spec: ir.Spec,
    backbone: str | None = None,
    num_classes: int | None = None,
    input_size: InputSize = None,
    **backbone_options: Any,
) -> nn.Module:
    """Compile a spec. Without a backbone: the spatial transformer alone (image in, resampled
    image out). With one (any `compiler.backbones` name, built from scratch with
    `num_classes` outputs and the spec's input channels): `STNModel`, whose forward is
    `backbone(stn(x))`.

    `input_size` (N or (H, W)) re-infers the localization net and head at that size; with a
    backbone and no input size, the backbone's default resolution is used
    (`backbones.default_resolution`: 224 for ResNet, 240 for efficientnet_b1 …).
    """
    if backbone is None:
        if num_classes is not None or backbone_options:
            raise UsageError("--num-classes (and backbone options) need a backbone (--backbone)")
    else:
        size = model_size(spec, backbone, input_size)
        input_size = size
        backbone_options.setdefault("in_chans", spec.input.channels)
        if size[0] == size[1]:
            backbone_options.setdefault("input_size", size[0])
        # the backbone first: under one seed it starts from the same weights with or without
        # a spatial transformer in front (the trainer's baselines rely on it)
        net = backbones.create(backbone, num_classes=num_classes, **backbone_options)
        stn = build(spec, input_size=input_size)
        assert isinstance(stn, SpatialTransformer)
        return STNModel(stn, net)
    analysis = analyze_for_build(spec, input_size)
    stn = build_stn(spec, analysis)
    verify(stn, analysis)
    return stn
