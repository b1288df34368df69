"""IR -> torch: build the spatial transformers (and, with a backbone, the model object), then
check that torch agrees with the catalog, row by row.

Three witnesses for every number: the spec declares it, the catalog infers it (check.py),
and here the real module is counted and run. A disagreement is a CompileError at the row.

One place decides what a model is compiled at (`model_input`): the image's channels (the first
input transformer's, else 3) and size (the size asked for, else the backbone's default
resolution, else the spec's declared input). A transformer at the input is inferred at that
size; one on a backbone module (`at: layer2`) at the real feature map there
(compiler/placement.py), whose channels its `input:` must declare exactly.

Errors name parameters (`num_classes`, `input_size`), never command-line flags: the commands
say which flag that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compiler import backbones, budget, placement, transforms
from compiler.layers import build_chain
from compiler.stn import INPUT, SpatialTransformer, STNModel
from lstndsl import check, ir
from lstndsl.errors import (
    CompileError,
    Diagnostic,
    SpecCheckError,
    SpecInputError,
    UsageError,
    did_you_mean,
)
from lstndsl.ir import format_shape

InputSize = int | tuple[int, int] | None
Specs = ir.Spec | Sequence[ir.Spec]


def as_specs(specs: Specs) -> list[ir.Spec]:
    """One spec or several, as a list (in the order they apply)."""
    out = [specs] if isinstance(specs, ir.Spec) else list(specs)
    if not out:
        raise UsageError("build needs at least one spec")
    return out


def size_pair(input_size: InputSize) -> tuple[int, int] | None:
    """`input_size` as (H, W): N, (H, W) or None; anything else is a UsageError."""
    if input_size is None:
        return None
    if isinstance(input_size, bool):
        raise UsageError(f"input_size must be N or (H, W), got {input_size!r}")
    if isinstance(input_size, int):
        pair: tuple[Any, ...] = (input_size, input_size)
    elif isinstance(input_size, tuple | list) and len(input_size) == 2:
        pair = tuple(input_size)
    else:
        raise UsageError(f"input_size must be N or (H, W), got {input_size!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise UsageError(f"input_size must be whole numbers, got {input_size!r}")
    return (pair[0], pair[1])


def _first_input_spec(specs: Specs) -> ir.Spec | None:
    return next((s for s in as_specs(specs) if s.at == INPUT), None)


def model_size(specs: Specs, backbone: str | None, input_size: InputSize) -> tuple[int, int]:
    """The (H, W) a model is compiled at: the size asked for, else the backbone's default
    resolution, else the (first input) spec's declared input size."""
    size = size_pair(input_size)
    if size is not None:
        return size
    if backbone is not None:
        r = backbones.default_resolution(backbone)
        return (r, r)
    first = _first_input_spec(specs) or as_specs(specs)[0]
    return (first.input.height, first.input.width)


def model_input(
    specs: Specs, backbone: str | None, input_size: InputSize = None
) -> tuple[int, int, int]:
    """(C, H, W) of the images the model takes: the first input transformer's channels (else
    3, a backbone's usual input), at `model_size`. The trainer feeds batches of this shape."""
    first = _first_input_spec(specs)
    if first is None and backbone is None:
        first = as_specs(specs)[0]
    channels = first.input.channels if first is not None else 3
    return (channels, *model_size(specs, backbone, input_size))


def check_backbone_args(backbone: str | None, num_classes: int | None) -> None:
    if num_classes is not None and backbone is None:
        raise UsageError("num_classes needs a backbone")


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


def _error(
    spec: ir.Spec, message: str, pos: ir.Pos | None, hint: str | None, code: str
) -> Diagnostic:
    p = pos or ir.Pos(line=1, column=1)
    return Diagnostic("error", message, spec.path, p.line, p.column, hint, code=code)


def build_stn(spec: ir.Spec, analysis: check.Analysis) -> SpatialTransformer:
    """The spec's spatial transformer at the analysis' size, at the identity transform."""
    budget.guard_stn(spec, analysis)
    localization = nn.Sequential()
    for i, rr in enumerate(analysis.rows, start=1):
        kinds = "_".join(dict.fromkeys(r.layer.kind for r in rr.layers))
        localization.add_module(f"row{i:02d}_{kinds}", build_chain(rr.layers))
    head = build_chain(analysis.head)
    last = list(head.children())[-1] if len(head) else None
    if not isinstance(last, nn.Linear) or last.bias is None:
        message = (
            "the head must end in a linear layer: it starts at the identity transform"
            " (zero weights, identity bias)"
            if not isinstance(last, nn.Linear)
            else "the head's last linear layer needs a bias to hold the identity"
        )
        hint = f"end the head with 'fc {spec.transform.dof}'"
        raise CompileError([_error(spec, message, spec.head_pos, hint, "head")], spec.source)
    with torch.no_grad():
        last.weight.zero_()
        identity = transforms.identity_raw(spec.transform)
        last.bias.copy_(torch.tensor(identity, dtype=last.bias.dtype, device=last.bias.device))
    _, h, w = analysis.input
    stn = SpatialTransformer(localization, head, spec.transform, spec.sampler, (h, w), spec.at)
    stn.analysis = analysis
    return stn


def verify(stn: SpatialTransformer, analysis: check.Analysis) -> None:
    """Count and run the real module; raise CompileError at each row torch disagrees with."""
    spec = analysis.spec
    diags: list[Diagnostic] = []

    def disagree(message: str, pos: ir.Pos | None) -> None:
        diags.append(_error(spec, message, pos, None, "torch"))

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
            _run_rows(stn, analysis, modules, disagree)
    finally:
        stn.train(was_training)
    if diags:
        raise CompileError(diags, spec.source)


def _run_rows(
    stn: SpatialTransformer, analysis: check.Analysis, modules: list[nn.Module], disagree: Any
) -> None:
    spec = analysis.spec
    x = torch.zeros(1, *analysis.input)  # cpu-ok: build-time probe of fresh CPU modules
    for module, rr in zip(modules, analysis.rows, strict=True):
        try:
            x = module(x)
        except RuntimeError as err:  # e.g. a builder that disagrees on channels
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            disagree(f"torch cannot run this row: {reason}", rr.row.type.pos)
            return
        got = tuple(x.shape[1:])
        if got != rr.output:
            disagree(
                f"torch's output is {format_shape(got)}, the catalog infers"
                f" {format_shape(rr.output or ())}",
                rr.row.type.pos,
            )
            return
    out = stn.head(x)
    if tuple(out.shape[1:]) != (spec.transform.dof,):
        disagree(
            f"torch's head gives {tuple(out.shape[1:])}, expected ({spec.transform.dof},)",
            spec.head_pos,
        )


def compile_stn(spec: ir.Spec, input_size: InputSize = None) -> SpatialTransformer:
    """One spec's transformer, analyzed, built and verified at `input_size` (None: declared)."""
    analysis = analyze_for_build(spec, input_size)
    stn = build_stn(spec, analysis)
    verify(stn, analysis)
    return stn


def _place(
    spec: ir.Spec, probes: dict[str, placement.Probe], net: nn.Module, image: tuple[int, int, int]
) -> tuple[int, int]:
    """The (H, W) of the feature map `spec` sits on; SpecInputError at `at:` when there is no
    such map, SpecCheckError at `input:` when its channels differ from the declared ones."""
    reason = placement.why_not(probes.get(spec.at), spec.at)
    if reason is not None:
        names = placement.placeable(net, image)
        hint = did_you_mean(spec.at, names) or ""
        stages = {n: s for n, s in names.items() if "." not in n} or names
        shown = ", ".join(f"{n} ({format_shape(s)})" for n, s in stages.items())
        hint = (hint + " " if hint else "") + f"feature maps of this backbone: {shown}"
        raise SpecInputError([_error(spec, reason, spec.at_pos, hint, "at")], spec.source)
    c, h, w = probes[spec.at].shape
    if spec.input.channels != c:
        declared = format_shape(spec.input.shape)
        message = (
            f"'{spec.at}' outputs {format_shape((c, h, w))} here, not {declared}: the"
            f" transformer's input needs {c} channels"
        )
        hint = f"declare 'input: {h}x{w}x{c}'"
        raise SpecCheckError([_error(spec, message, spec.input.pos, hint, "at")], spec.source)
    return (h, w)


def _probe(
    specs: list[ir.Spec], net: nn.Module, image: tuple[int, int, int], sites: list[str]
) -> dict[str, placement.Probe]:
    if not sites:
        return {}
    try:
        return placement.feature_shapes(net, image, sites)
    except (RuntimeError, ValueError, AssertionError) as err:
        spec = next(s for s in specs if s.at != INPUT)
        c, h, w = image
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        message = f"the backbone cannot run a {h}×{w}×{c} image to find '{spec.at}': {reason}"
        raise SpecInputError([_error(spec, message, spec.at_pos, None, "at")], spec.source) from err


def _chain(specs: list[ir.Spec], input_size: InputSize) -> nn.Module:
    """Several transformers, no backbone: each at its declared input (input transformers at
    `input_size`), applied in order; the shapes must chain."""
    out: list[SpatialTransformer] = []
    shape: tuple[int, ...] | None = None
    for spec in specs:
        if spec.at != INPUT:
            message = f"a transformer at '{spec.at}' needs a backbone to sit in"
            raise SpecInputError([_error(spec, message, spec.at_pos, None, "at")], spec.source)
        stn = compile_stn(spec, input_size)
        if shape is not None and stn.analysis.input != shape:
            message = (
                f"this transformer takes {format_shape(stn.analysis.input)}, the one before it"
                f" gives {format_shape(shape)}"
            )
            raise SpecCheckError(
                [_error(spec, message, spec.input.pos, None, "chain")], spec.source
            )
        shape = stn.analysis.input
        out.append(stn)
    model = STNModel(out, None)
    model.image = out[0].analysis.input
    return model


def _create_backbone(
    name: str, num_classes: int | None, options: dict[str, Any], given: set[str]
) -> nn.Module:
    """backbones.create, with an option the library does not take (timm's and torchvision's
    TypeError, or a ValueError about its value) as a UsageError that names the options."""
    try:
        budget.guard_backbone(
            name, num_classes, lambda: backbones.create(name, num_classes=num_classes, **options)
        )
        return backbones.create(name, num_classes=num_classes, **options)
    except (TypeError, ValueError) as err:
        named = ", ".join(f"{k}={options[k]!r}" for k in sorted(given)) or "its defaults"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"the backbone {name} cannot be built with {named}: {reason}") from None


def build(
    spec: Specs,
    backbone: str | None = None,
    num_classes: int | None = None,
    input_size: InputSize = None,
    **backbone_options: Any,
) -> nn.Module:
    """Compile one spec or several (applied in the order given).

    Without a backbone, one spec: its spatial transformer alone (input in, resampled input
    out), at its declared input or `input_size`; several: an `STNModel` chaining them. With a
    backbone (any `compiler.backbones` name, built from scratch with `num_classes` outputs and
    the image channels of `model_input`): an `STNModel` whose transformers sit at their spec's
    `at:` site. `input_size` (N or (H, W)) sets the image size; with a backbone and none, its
    default resolution (224 for ResNet, 240 for efficientnet_b1 …).
    """
    specs = as_specs(spec)
    size = size_pair(input_size)
    if backbone is None:
        if num_classes is not None or backbone_options:
            raise UsageError("num_classes and backbone options need a backbone")
        if len(specs) == 1:
            return compile_stn(specs[0], size)
        return _chain(specs, size)
    image = model_input(specs, backbone, size)
    given = set(backbone_options)
    backbone_options.setdefault("in_chans", image[0])
    if image[1] == image[2]:
        backbone_options.setdefault("input_size", image[1])
    # the backbone first: under one seed it starts from the same weights with or without
    # spatial transformers (the trainer's baselines rely on it)
    net = _create_backbone(backbone, num_classes, backbone_options, given)
    sites = [s.at for s in specs if s.at != INPUT]
    probes = _probe(specs, net, image, sites)
    stns: list[SpatialTransformer] = []
    for s in specs:
        if s.at == INPUT:
            if s.input.channels != image[0]:
                message = (
                    f"the image has {image[0]} channels (the first transformer's input), this"
                    f" transformer's input declares {s.input.channels}"
                )
                raise SpecCheckError([_error(s, message, s.input.pos, None, "chain")], s.source)
            stns.append(compile_stn(s, image[1:]))
        else:
            stns.append(compile_stn(s, _place(s, probes, net, image)))
    model = STNModel(stns, net)
    model.image = image
    return model
