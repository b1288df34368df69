"""Inference and checking: every row's shape, parameters and cost, against what the spec declares.

`analyze(spec)` walks the table, then the head, through the catalog (pure Python, no torch),
and returns an `Analysis`: the inferred numbers per row and every diagnostic. Each declared
number (Filter Shape channels, Output Shape, Parameters, Total) is compared with inference;
a mismatch is an error at its cell, with the fix that would make the row consistent when one
exists. After a mismatch, inference goes on from the declared value, so one misprint gives
one error. Suspicious but legal designs get warnings.

With `input_size`, the numbers are re-inferred at that size; declared Output Shapes are only
checked at the declared size (parameters of size-independent layers always are).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lstndsl import catalog, ir
from lstndsl.errors import Diagnostic, Severity, SpecCheckError
from lstndsl.ir import Shape, format_shape


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


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _terms(terms: tuple[int, ...] | list[int]) -> str:
    return "+".join(str(t) for t in terms) if terms else "0"


class _Walker:
    def __init__(self, spec: ir.Spec, shape: Shape, checking: bool, note: str = "") -> None:
        self.spec = spec
        self.shape = shape
        self.checking = checking
        self.note = note  # "at input 240×240: " for an overridden size
        self.diags: list[Diagnostic] = []
        self.rows: list[RowResult] = []
        self.head: list[LayerResult] = []
        self.complete = True
        self.effective: list[int] = []  # per row: params the Total should count
        self.as_declared: list[int] = []  # per row: the declared params, else inferred

    def diag(
        self,
        message: str,
        pos: ir.Pos | None,
        hint: str | None = None,
        code: str = "",
        severity: Severity = "error",
    ) -> None:
        p = pos or ir.Pos(line=1, column=1)
        self.diags.append(
            Diagnostic(
                severity,
                self.note + message,
                self.spec.path,
                p.line,
                p.column,
                hint,
                p.width,
                code,
            )
        )

    # one chain of layers ----------------------------------------------------------------

    def run(self, layers: tuple[Any, ...], shape: Shape) -> tuple[list[LayerResult], Shape]:
        """Resolve layers in order. Raises InferError (with the failing layer attached)."""
        out: list[LayerResult] = []
        for layer in layers:
            entry = catalog.entry(layer)
            try:
                resolved, new_shape = entry.resolve(layer, shape)
            except catalog.InferError as err:
                err.layer = layer  # type: ignore[attr-defined]
                raise
            out.append(
                LayerResult(
                    resolved,
                    shape,
                    new_shape,
                    entry.params(resolved),
                    entry.cost(resolved, shape, new_shape),
                )
            )
            shape = new_shape
        return out, shape

    # the table ------------------------------------------------------------------------

    def table(self) -> None:
        shape: Shape | None = self.shape
        for row in self.spec.rows:
            layers = row.layers
            if not self.checking:
                # at another input size the declared in-features of a linear row do not hold
                layers = tuple(
                    layer.model_copy(update={"in_features": None})
                    if layer.kind == "linear"
                    else layer
                    for layer in layers
                )
            if shape is None:  # an earlier row failed and declared nothing to go on from
                shape = self._declared_output(row)
                continue
            self._check_expects(row, layers[0], shape)
            try:
                results, out = self.run(layers, shape)
            except catalog.InferError as err:
                layer = getattr(err, "layer", None)
                pos = row.type.pos if layer is None or layer.pos is None else layer.pos
                self.diag(err.message, pos, err.hint, code="infer")
                self.complete = False
                self.rows.append(RowResult(row, shape, (), None))
                shape = self._declared_output(row)
                self.effective.append(0)
                self.as_declared.append(row.params.total if row.params else 0)
                continue
            result = RowResult(row, shape, tuple(results), out)
            self.rows.append(result)
            next_shape = out
            if self.checking and row.output is not None:
                declared = row.output.values
                if declared != out:
                    self._shape_mismatch(row, layers, shape, out)
                    next_shape = declared
            effective = result.params
            if self.checking and row.params is not None:
                effective = self._params_mismatch(row, result)
            self.effective.append(effective)
            self.as_declared.append(row.params.total if row.params else result.params)
            shape = next_shape
        if self.checking and self.spec.total is not None:
            self._check_total()
        self.shape = shape if shape is not None else self.shape
        if shape is None:
            self.complete = False

    def _declared_output(self, row: ir.Row) -> Shape | None:
        if self.checking and row.output is not None:
            return row.output.values
        return None

    def _check_expects(self, row: ir.Row, layer: Any, shape: Shape) -> None:
        entry = catalog.entry(layer)
        expected = entry.expects(layer)
        have = shape[0]
        if expected is None or expected == have:
            return
        # a map where a vector belongs (or the reverse) is the resolver's error, not a channel one
        flat = len(shape) == 1
        if (entry.filter in {"conv", "pool"} and flat) or (entry.filter == "linear" and not flat):
            return
        if layer.kind == "linear":
            if not self.checking:
                return
            what = f"{expected} input features, the previous row gives {have}"
        else:
            what = f"{expected} input channels, the previous row gives {have}"
        pos = row.filter.pos if row.filter is not None else layer.pos
        self.diag(f"the filter expects {what}", pos, code="channels")

    def _shape_mismatch(
        self, row: ir.Row, layers: tuple[Any, ...], shape: Shape, out: Shape
    ) -> None:
        assert row.output is not None
        declared = row.output.values
        message = f"output shape: declared {format_shape(declared)}, inferred {format_shape(out)}"
        hint = None
        if len(declared) == 3 and len(out) == 3 and declared[0] != out[0]:
            hint = f"the row makes {out[0]} channels, not {declared[0]}"
        else:
            fix = _shape_fix(layers, shape, declared)
            if fix:
                hint = f"declared {format_shape(declared)} fits {fix}"
        self.diag(message, row.output.pos, hint, code="shape")

    def _params_mismatch(self, row: ir.Row, result: RowResult) -> int:
        """Report a Parameters mismatch; return what the Total should count for the row."""
        assert row.params is not None
        declared = row.params.terms
        inferred = result.param_terms
        if sum(declared) == result.params and (len(declared) == 1 or declared == inferred):
            return result.params
        message = f"parameters: declared {_terms(declared)}, inferred {_terms(inferred)}"
        hint, structural = _params_fix(row, result, declared, inferred)
        self.diag(message, row.params.pos, hint, code="params")
        return sum(declared) if structural else result.params

    def _check_total(self) -> None:
        total = self.spec.total
        assert total is not None
        rows_sum = sum(self.effective)
        if total.total in (rows_sum, sum(self.as_declared)):
            return
        hint = None
        if self.complete:
            hint = f"the rows add up to {rows_sum}"
        self.diag(
            f"total: declared {total.total}, inferred {rows_sum}", total.pos, hint, code="total"
        )

    # the head -------------------------------------------------------------------------

    def head_chain(self) -> None:
        if not self.complete:
            return
        try:
            self.head, out = self.run(self.spec.head, self.shape)
        except catalog.InferError as err:
            layer = getattr(err, "layer", None)
            pos = layer.pos if layer is not None and layer.pos else self.spec.head_pos
            self.diag(f"head: {err.message}", pos, err.hint, code="infer")
            self.complete = False
            return
        dof = self.spec.transform.dof
        last = self.spec.head[-1] if self.spec.head else None
        pos = last.pos if last is not None and last.pos else self.spec.head_pos
        if out != (dof,):
            t = self.spec.transform
            takes = f"{dof} number{'s' * (dof != 1)}"
            if t.kind == "tps" and t.points is not None:
                takes = f"2 × {t.points[0] * t.points[1]} control points = {dof} numbers (x, y)"
            self.diag(
                f"the head ends in {format_shape(out)} outputs, but"
                f" {_article(t.kind)} {t.kind} transform takes {takes}",
                pos,
                f"end the head with 'fc {dof}'",
                code="head",
            )
        elif last is not None and not isinstance(last, ir.Linear):
            # the compiler starts θ at the identity in the last linear layer's bias
            self.diag(
                "the head must end in a linear layer: θ starts at the identity transform in"
                " its bias",
                pos,
                f"end the head with 'fc {dof}'",
                code="head",
            )
        elif last is not None and not last.bias:
            self.diag(
                "the head's last linear layer needs a bias to hold the identity transform",
                pos,
                "remove 'no bias'",
                code="head",
            )

    # warnings -------------------------------------------------------------------------

    def warnings(self) -> None:
        chain: list[tuple[Any, int]] = []  # weighted layers since the last nonlinearity

        def flush() -> None:
            if len(chain) >= 2:
                names = [
                    f"{catalog.canonical_word(layer.kind)} (line {line})" for layer, line in chain
                ]
                listed = ", ".join(names[:-1]) + " and " + names[-1]
                first_pos = chain[1][0].pos
                self.diag(
                    f"{listed} follow one another with no nonlinearity between them:"
                    " together they are one linear map",
                    first_pos,
                    "add an activation (e.g. '+ ReLU') or merge them",
                    code="linear-stack",
                    severity="warning",
                )
            chain.clear()

        for layer, line in self._all_layers():
            entry = catalog.entry(layer)
            if entry.weighted:
                chain.append((layer, line))
            elif not entry.affine_map:
                flush()
        flush()

    def dead_biases(self) -> None:
        """A bias right before a batch norm (or an instance norm) is cancelled by it (the norm
        subtracts the mean), so it never gets a gradient: one warning for the whole net, at the
        first one."""
        results = [(r, row.row.pos.line) for row in self.rows for r in row.layers]
        results += [(r, 0) for r in self.head]
        dead = [
            (r, line, after)
            for (r, line), (after, _) in itertools.pairwise(results)
            if catalog.entry(r.layer).weighted
            and r.layer.bias
            and catalog.entry(after.layer).cancels_bias
        ]
        if not dead:
            return
        count = sum(
            r.layer.out_channels if r.layer.kind == "conv" else r.layer.out_features
            for r, _, _ in dead
        )
        first, line, _ = dead[0]
        where = f"line {line}" if line else "the head"
        word = catalog.canonical_word(first.layer.kind)
        kinds = {after.layer.kind for _, _, after in dead}
        norm = "batch norm" if kinds == {"batchnorm"} else "norm"
        if len(dead) == 1:
            what = f"the {word} bias at {where} is cancelled by the {norm} right after it"
        else:
            what = (
                f"{len(dead)} biases (the first a {word} bias at {where}) are cancelled by the"
                f" {norm} right after each"
            )
        self.diag(
            f"{what} (it subtracts the mean): {count} parameters that never learn",
            first.layer.pos,
            "write 'no bias' in the Type cell to drop them",
            code="dead-bias",
            severity="warning",
        )

    def _all_layers(self) -> Iterator[tuple[Any, int]]:
        for row in self.spec.rows:
            for layer in row.layers:
                yield (
                    (layer if layer.pos else layer.model_copy(update={"pos": row.type.pos})),
                    row.pos.line,
                )
        for layer in self.spec.head:
            yield layer, layer.pos.line if layer.pos else 0


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


def _shape_fix(layers: tuple[Any, ...], shape: Shape, declared: Shape) -> str | None:
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


def _params_fix(
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
            f"{_terms(declared)} implies a batch norm the Type cell does not name"
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
            f" the row has {result.params} ({_terms(inferred)})",
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


def analyze(spec: ir.Spec, input_size: tuple[int, int] | None = None) -> Analysis:
    """Infer every row and the head, check every declared number, and collect diagnostics.

    `input_size` (H, W) re-infers the net at another size: the checks still run at the
    declared size, the returned numbers are the ones at `input_size`.
    """
    declared_shape = spec.input.shape
    walker = _Walker(spec, declared_shape, checking=True)
    walker.table()
    walker.head_chain()
    walker.warnings()
    walker.dead_biases()
    diags = walker.diags
    result = walker
    shape = declared_shape
    if input_size is not None and tuple(input_size) != declared_shape[1:]:
        shape = (spec.input.channels, *input_size)
        note = f"at input {input_size[0]}×{input_size[1]}: "
        result = _Walker(spec, shape, checking=False, note=note)
        result.table()
        result.head_chain()
        diags = diags + [d for d in result.diags if d not in diags]
    return Analysis(
        spec=spec,
        input=shape,
        rows=result.rows,
        head=result.head,
        diagnostics=sorted(diags, key=lambda d: (d.line, d.column)),
        complete=walker.complete and result.complete,
    )


def check(spec: ir.Spec, input_size: tuple[int, int] | None = None) -> Analysis:
    """`analyze`, raising SpecCheckError when any number disagrees."""
    analysis = analyze(spec, input_size)
    analysis.raise_for_errors()
    return analysis
