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

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

from lstndsl import catalog, ir
from lstndsl.errors import Diagnostic, Severity
from lstndsl.fixes import params_fix, shape_fix, terms
from lstndsl.ir import Shape, format_shape
from lstndsl.results import Analysis, LayerResult, RowResult

__all__ = ["Analysis", "LayerResult", "RowResult", "analyze", "check"]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


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
            fix = shape_fix(layers, shape, declared)
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
        message = f"parameters: declared {terms(declared)}, inferred {terms(inferred)}"
        hint, structural = params_fix(row, result, declared, inferred)
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

    def input_warnings(self) -> None:
        """`input: 28x28` assumes 3 channels; `input: 1x28x28` is PyTorch's C×H×W order read
        as H×W×C. Warnings, not errors: both are legal specs (an RGB input, a 1-pixel-high
        image), but a newcomer means something else by them more often than not."""
        size = self.spec.input
        h, w, c = size.height, size.width, size.channels
        if not size.channels_written:
            self.diag(
                f"the input has no channel count: read as {h}×{w}×3 (RGB)",
                size.pos,
                f"write 'input: {h}x{w}x3' to say so, or 'input: {h}x{w}x1' for grayscale",
                code="input-channels",
                severity="warning",
            )
        elif h in (1, 3, 4) and w == c and c > 4:
            self.diag(
                f"input {h}×{w}×{c} reads as height {h}, width {w}, {c} channels",
                size.pos,
                f"the order is H×W×C; for PyTorch's C×H×W = {h}×{w}×{c} write 'input: {w}x{c}x{h}'",
                code="input-order",
                severity="warning",
            )

    def total_counts_the_head(self) -> None:
        """A Total that is the localization net plus the head (what torchsummary prints for the
        whole transformer) gets the hint that the Total counts the localization net only."""
        total = self.spec.total
        if total is None or not self.complete or not self.head:
            return
        head = sum(r.params for r in self.head)
        if total.total != sum(self.effective) + head:
            return
        for i, d in enumerate(self.diags):
            if d.code == "total":
                hint = (
                    f"the Total counts the localization net only ({sum(self.effective)});"
                    f" {total.total} is the localization net plus the head ({head}), what"
                    " torchsummary prints for the whole transformer"
                )
                self.diags[i] = dataclasses.replace(d, hint=hint)

    def _all_layers(self) -> Iterator[tuple[Any, int]]:
        for row in self.spec.rows:
            for layer in row.layers:
                yield (
                    (layer if layer.pos else layer.model_copy(update={"pos": row.type.pos})),
                    row.pos.line,
                )
        for layer in self.spec.head:
            yield layer, layer.pos.line if layer.pos else 0


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
    walker.input_warnings()
    walker.total_counts_the_head()
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
