"""The results of inference: one `LayerResult` per layer, one `RowResult` per table row, and
the `Analysis` of a whole spec (rows, head, diagnostics, totals).

Plain dataclasses over the IR and the catalog; check.py fills them, every consumer (cost,
render, the compiler) reads them. This module is not: the inference itself (check.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lstndsl import catalog, ir
from lstndsl.errors import Diagnostic, SpecCheckError
from lstndsl.ir import Shape


@dataclass(frozen=True)
class LayerResult:
    """One layer, resolved (every field filled), with what goes in and out of it."""

    layer: Any
    input: Shape
    output: Shape
    params: int
    cost: catalog.Cost

    @property
    def macs(self) -> int:
        return self.cost.get("mac", 0)

    @property
    def name(self) -> str:
        return catalog.entry(self.layer).describe(self.layer, self.input)


@dataclass(frozen=True)
class RowResult:
    """One table row as inferred. `output` is the inferred shape (None if inference failed)."""

    row: ir.Row
    input: Shape
    layers: tuple[LayerResult, ...]
    output: Shape | None

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def param_terms(self) -> tuple[int, ...]:
        return tuple(r.params for r in self.layers if r.params)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.layers)

    def cost(self) -> catalog.Cost:
        return _sum_costs(r.cost for r in self.layers)


@dataclass
class Analysis:
    spec: ir.Spec
    input: Shape
    """(C, H, W) the numbers below are inferred at."""
    rows: list[RowResult] = field(default_factory=list)
    head: list[LayerResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    complete: bool = True
    """Every row and the head could be inferred."""

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.complete and not self.errors

    @property
    def localization_output(self) -> Shape:
        return self.rows[-1].output or self.input if self.rows else self.input

    @property
    def params_localization(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def params_head(self) -> int:
        return sum(r.params for r in self.head)

    @property
    def params_total(self) -> int:
        return self.params_localization + self.params_head

    @property
    def macs_localization(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def macs_head(self) -> int:
        return sum(r.macs for r in self.head)

    def layer_results(self) -> Iterator[LayerResult]:
        """Every layer in order: the table's, then the head's."""
        for row in self.rows:
            yield from row.layers
        yield from self.head

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecCheckError(self.diagnostics, self.spec.source)


def _sum_costs(costs: Any) -> catalog.Cost:
    total: catalog.Cost = {}
    for c in costs:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total
