"""Liveness: does the spatial transformer reach the output, and does all of it learn?

`check(model)` runs on a deep copy of the model, with a tiny random batch (2 images at the size
the model was built for), and raises `CompileError` at the rows of the spec concerned if, for
any of the model's transformers (at the input or on a backbone feature map):

1. changing θ does not change the model's output: the spatial transformer does not reach it
   (the defect of the L-STN authors' ResNet-50/152 and EfficientNet notebooks, whose forward
   computed the transformer and threw the result away);
2. after one optimizer step, some localization or head parameter gets no gradient, or a
   gradient that is not finite. One step first, because the head's last layer starts at zero
   weights (the identity transform), which blocks every gradient upstream of it on the very
   first step.

Parameters that get no gradient by construction are named in the result, not failed: a bias
right before a batch norm, which subtracts the batch mean and so removes the bias (all 17 of the
paper's L-STN convolutions are followed by one; its parameter totals count these biases).

This module is not: the model (stn.py, build.py); it only tries one.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compiler.stn import SpatialTransformer, compiled
from lstndsl import ir
from lstndsl.check import Analysis
from lstndsl.errors import CompileError, Diagnostic

#: how far θ's raw parameters move to see whether the output follows
_NUDGE = 0.25


@dataclass(frozen=True)
class Liveness:
    """What the check saw."""

    parameters: int
    """Localization and head parameter tensors checked."""
    output_change: float
    """Largest change of the output when θ moves by the nudge."""
    smallest_gradient: float
    """Smallest gradient norm among the checked tensors (after one optimizer step)."""
    dead_by_construction: list[str] = field(default_factory=list)
    """Parameters whose gradient is zero by design (biases right before a batch norm)."""


def _last_linear(stn: SpatialTransformer) -> nn.Linear:
    last = list(stn.head.children())[-1]
    assert isinstance(last, nn.Linear) and last.bias is not None
    return last


def _loss(out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if out.ndim == 2:  # logits: a classification loss on random labels
        shape = (out.shape[0],)
        target = torch.randint(0, out.shape[1], shape, generator=generator, device=generator.device)
        target = target.to(out.device)
        return F.cross_entropy(out, target)
    # an image: any loss that sees it all (drawn where the generator is, used where out is)
    weights = torch.randn(out.shape, generator=generator, device=generator.device).to(out)
    return (out * weights).mean()


def _dead_by_construction(stn: SpatialTransformer) -> set[str]:
    """Names (in stn) of conv/linear biases a batch norm right after them cancels."""
    dead: set[str] = set()
    for row_name, row in stn.localization.named_children():
        children = list(row.named_children())
        for (name, layer), (_, after) in itertools.pairwise(children):
            weighted = isinstance(layer, nn.Conv2d | nn.Linear)
            normed = isinstance(after, nn.modules.batchnorm._BatchNorm)
            if weighted and normed and getattr(layer, "bias", None) is not None:
                dead.add(f"localization.{row_name}.{name}.bias")
    return dead


def _where(name: str, stn: SpatialTransformer, analysis: Analysis) -> ir.Pos:
    spec = analysis.spec
    if name.startswith("localization."):
        row_names = [n for n, _ in stn.localization.named_children()]
        row = name.split(".")[1]
        if row in row_names and row_names.index(row) < len(analysis.rows):
            return analysis.rows[row_names.index(row)].row.type.pos
    return spec.head_pos or ir.Pos(line=1, column=1)


def _image(model: nn.Module) -> tuple[int, ...]:
    """(C, H, W) of what the model takes: the image (STNModel.image) or a lone transformer's
    input."""
    image = getattr(model, "image", None)
    if image is None:
        image = next(iter(compiled(model).transformers.values())).analysis.input
    return tuple(image)


def _fail(
    analysis: Analysis, message: str, pos: ir.Pos | None, hint: str | None = None
) -> CompileError:
    spec = analysis.spec
    p = pos or ir.Pos(line=1, column=1)
    diag = Diagnostic("error", message, spec.path, p.line, p.column, hint, code="liveness")
    return CompileError([diag], spec.source)


def _reaches_output(model: nn.Module, x: torch.Tensor, stns: dict[str, Any]) -> float:
    """The smallest, over transformers, of the largest output change when its θ moves."""
    model.eval()
    smallest = float("inf")
    first = next(iter(stns.values())).analysis
    try:
        with torch.no_grad():
            before = model(x)
            for stn in stns.values():
                last = _last_linear(stn)
                last.bias.add_(_NUDGE)
                after = model(x)
                last.bias.sub_(_NUDGE)
                same = after.shape == before.shape
                change = float((after - before).abs().max()) if same else float("inf")
                if not change > 0:
                    spec = stn.analysis.spec
                    raise _fail(
                        stn.analysis,
                        "the spatial transformer does not reach the output: changing θ leaves"
                        " the model's output unchanged",
                        spec.transform.pos or spec.head_pos,
                        "the forward must use the resampled input (backbone(stn(x))), not throw"
                        " it away",
                    )
                smallest = min(smallest, change)
    except (RuntimeError, AssertionError, ValueError) as err:
        c, h, w = x.shape[1:]
        raise _fail(
            first,
            f"the model cannot run a batch of {x.shape[0]} {h}×{w}×{c} images: {err}",
            first.spec.input.pos,
            "try another input size, or another backbone",
        ) from err
    return smallest


def _gradient_problems(stn: Any) -> tuple[list[Diagnostic], float, int, list[str]]:
    analysis = stn.analysis
    spec = analysis.spec
    dead = _dead_by_construction(stn)
    named = [(f"localization.{n}", p) for n, p in stn.localization.named_parameters()]
    named += [(f"head.{n}", p) for n, p in stn.head.named_parameters()]
    diags: list[Diagnostic] = []
    smallest = float("inf")
    for name, p in named:
        if not p.requires_grad or name in dead:
            continue
        pos = _where(name, stn, analysis)
        grad = p.grad
        if grad is None or not bool((grad != 0).any()):
            message = (
                f"{name} gets no gradient after one optimizer step: the spatial transformer"
                " does not reach the output through it"
            )
        elif not bool(torch.isfinite(grad).all()):
            message = f"{name} gets a gradient that is not finite"
        else:
            smallest = min(smallest, float(grad.norm()))
            continue
        diags.append(Diagnostic("error", message, spec.path, pos.line, pos.column, code="liveness"))
    return diags, smallest, len(named), sorted(dead)


def check(
    model: nn.Module, analysis: Analysis | None = None, batch: int = 2, seed: int = 0
) -> Liveness:
    """Try the model (a copy of it) as described above; raise CompileError if it is not live.
    Every transformer is checked, each against the analysis it was built from (`analysis`, if
    given, stands for a lone transformer's)."""
    model = compiled(copy.deepcopy(model))
    stns = dict(model.transformers)
    if analysis is not None and len(stns) == 1:
        next(iter(stns.values())).analysis = analysis
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *_image(model)), generator=generator, device=generator.device)
    x = x.to(next(model.parameters()).device)
    change = _reaches_output(model, x, stns)

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(2):
        optimizer.zero_grad(set_to_none=True)
        _loss(model(x), generator).backward()
        if step == 0:
            optimizer.step()
    smallest, count, dead = float("inf"), 0, []
    for name, stn in stns.items():
        diags, small, n, dd = _gradient_problems(stn)
        if diags:  # each spec's problems with its own source text
            raise CompileError(diags, stn.analysis.spec.source)
        smallest, count = min(smallest, small), count + n
        dead += dd if len(stns) == 1 else [f"{name}.{x}" for x in dd]
    return Liveness(
        parameters=count,
        output_change=change,
        smallest_gradient=smallest,
        dead_by_construction=dead,
    )
