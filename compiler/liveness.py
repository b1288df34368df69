"""Liveness: does the spatial transformer reach the output, and does all of it learn?

`check(model, analysis)` runs on a deep copy of the model, with a tiny random batch (2 images
at the size the model was built for), and raises `CompileError` at the spec's rows if:

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

import torch
import torch.nn.functional as F
from torch import nn

from compiler.stn import SpatialTransformer
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


def _transformer(model: nn.Module) -> SpatialTransformer:
    stn = model if isinstance(model, SpatialTransformer) else getattr(model, "stn", None)
    if not isinstance(stn, SpatialTransformer):
        raise TypeError("liveness.check needs a SpatialTransformer or a model with .stn")
    return stn


def _last_linear(stn: SpatialTransformer) -> nn.Linear:
    last = list(stn.head.children())[-1]
    assert isinstance(last, nn.Linear) and last.bias is not None
    return last


def _loss(out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if out.ndim == 2:  # logits: a classification loss on random labels
        target = torch.randint(0, out.shape[1], (out.shape[0],), generator=generator)
        return F.cross_entropy(out, target)
    weights = torch.randn(out.shape, generator=generator)  # an image: any loss that sees it all
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


def check(model: nn.Module, analysis: Analysis, batch: int = 2, seed: int = 0) -> Liveness:
    """Try the model (a copy of it) as described above; raise CompileError if it is not live."""
    spec = analysis.spec
    model = copy.deepcopy(model)
    stn = _transformer(model)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *analysis.input), generator=generator)

    def fail(message: str, pos: ir.Pos | None, hint: str | None = None) -> CompileError:
        p = pos or ir.Pos(line=1, column=1)
        diag = Diagnostic("error", message, spec.path, p.line, p.column, hint, code="liveness")
        return CompileError([diag], spec.source)

    # 1. does θ reach the output?
    last = _last_linear(stn)
    model.eval()
    try:
        with torch.no_grad():
            before = model(x)
            last.bias.add_(_NUDGE)
            after = model(x)
            last.bias.sub_(_NUDGE)
    except (RuntimeError, AssertionError, ValueError) as err:
        c, h, w = analysis.input
        raise fail(
            f"the model cannot run a batch of {batch} {h}×{w}×{c} images: {err}",
            spec.input.pos,
            "try another --input-size, or another backbone",
        ) from err
    change = float((after - before).abs().max()) if after.shape == before.shape else float("inf")
    if not change > 0:
        raise fail(
            "the spatial transformer does not reach the output: changing θ leaves the"
            " model's output unchanged",
            spec.transform.pos or spec.head_pos,
            "the forward must use the resampled image (backbone(stn(x))), not throw it away",
        )

    # 2. does every localization and head parameter learn?
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(2):
        optimizer.zero_grad(set_to_none=True)
        _loss(model(x), generator).backward()
        if step == 0:
            optimizer.step()
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
            diags.append(
                Diagnostic(
                    "error",
                    f"{name} gets no gradient after one optimizer step: the spatial"
                    " transformer does not reach the output through it",
                    spec.path,
                    pos.line,
                    pos.column,
                    code="liveness",
                )
            )
            continue
        if not bool(torch.isfinite(grad).all()):
            diags.append(
                Diagnostic(
                    "error",
                    f"{name} gets a gradient that is not finite",
                    spec.path,
                    pos.line,
                    pos.column,
                    code="liveness",
                )
            )
            continue
        smallest = min(smallest, float(grad.norm()))
    if diags:
        raise CompileError(diags, spec.source)
    return Liveness(
        parameters=len(named),
        output_change=change,
        smallest_gradient=smallest,
        dead_by_construction=sorted(dead),
    )
