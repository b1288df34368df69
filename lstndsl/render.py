"""Tables for papers: a spec's layer table and comparison grids, as Markdown, CSV or LaTeX.

Pure Python (no torch). `Grid` is a header, rows of cells and a column alignment; `render`
writes it in one of `FORMATS`. `layer_table(analysis)` is a spec as the paper prints it (Type |
Filter Shape | Output Shape | Parameters, then Total), every value inferred, so a table made
here always agrees with the net it describes.

This module is not: the numbers (check.py, cost.py) or the commands that print (commands/).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lstndsl import catalog, check
from lstndsl.ir import format_shape

FORMATS = ("markdown", "csv", "latex")


@dataclass
class Grid:
    """A table: header, rows (cells as text), one of l/r per column, optional notes below."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""
    caption: str | None = None
    notes: list[str] = field(default_factory=list)
    rules_before: set[int] = field(default_factory=set)
    """Row indices preceded by a horizontal rule (LaTeX \\midrule; ignored elsewhere)."""

    def __post_init__(self) -> None:
        if not self.align:
            self.align = "l" * len(self.header)


def group(n: int) -> str:
    """12,345 for people; CSV gets plain numbers from the caller."""
    return f"{n:,}"


def giga(n: int, digits: int = 4) -> str:
    """MACs in G (10^9), with the paper's four decimals."""
    return f"{n / 1e9:.{digits}f}"


def mega(n: int, digits: int = 2) -> str:
    return f"{n / 1e6:.{digits}f}"


# --- formats ------------------------------------------------------------------------------


def markdown_cell(text: str) -> str:
    """A cell's text safe in a Markdown table: a '|' in a name would start a new column."""
    return text.replace("|", "\\|")


def markdown(grid: Grid) -> str:
    header = [markdown_cell(c) for c in grid.header]
    rows = [[markdown_cell(c) for c in r] for r in grid.rows]
    widths = [max(len(c) for c in [header[i], *(r[i] for r in rows)]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(cells, widths, grid.align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    dashes = [
        "-" * (w + 1) + ":" if a == "r" else "-" * (w + 2)
        for w, a in zip(widths, grid.align, strict=True)
    ]
    rule = "|" + "|".join(dashes) + "|"
    out = []
    if grid.caption:
        out += [grid.caption, ""]
    out += [line(header), rule, *(line(r) for r in rows)]
    if grid.notes:
        out += ["", *grid.notes]
    return "\n".join(out) + "\n"


def to_csv(grid: Grid) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(grid.header)
    writer.writerows(grid.rows)
    return buf.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
#: characters written in math mode; a run of them shares one pair of dollars
_LATEX_MATH = {"×": r"\times", "θ": r"\theta", "→": r"\rightarrow"}


def latex_escape(text: str) -> str:
    """Text safe in LaTeX: specials escaped (a '$' of the spec is a literal \\$), ×, θ and →
    in math mode, a run of them in one $…$ (never by merging dollars, which would eat an
    escaped one: '$x$×' is \\$x\\$$\\times$)."""
    out: list[str] = []
    math: list[str] = []
    for ch in text:
        if ch in _LATEX_MATH:
            math.append(_LATEX_MATH[ch])
            continue
        if math:
            out.append("$" + "".join(math) + "$")
            math = []
        out.append(_LATEX_SPECIAL.get(ch, ch))
    if math:
        out.append("$" + "".join(math) + "$")
    return "".join(out)


def latex(grid: Grid) -> str:
    out = [
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
    ]
    if grid.caption:
        out.append(r"\caption{" + latex_escape(grid.caption) + "}")
    out += [
        r"\begin{tabular}{" + grid.align + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in grid.header) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(grid.rows):
        if i in grid.rules_before and i:
            out.append(r"\midrule")
        out.append(" & ".join(latex_escape(c) for c in row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    for note in grid.notes:
        out.append(r"\par\smallskip\footnotesize " + latex_escape(note))
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def render(grid: Grid, fmt: str) -> str:
    """The grid as `markdown`, `csv` or `latex` text."""
    if fmt == "markdown":
        return markdown(grid)
    if fmt == "csv":
        return to_csv(grid)
    if fmt == "latex":
        return latex(grid)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --- a spec as the paper's layer table ----------------------------------------------------


def _filter(r: check.RowResult) -> str:
    """kh×kw×c_in×c_out of the row's primary layer, as the paper writes it."""
    if not r.layers:
        return ""
    first = r.layers[0]
    layer: Any = first.layer
    how = catalog.entry(layer).filter
    if how == "conv":
        kh, kw = layer.kernel
        return f"{kh}×{kw}×{layer.in_channels}×{layer.out_channels}"
    if how == "pool":
        kh, kw = layer.kernel
        c = first.input[0]
        return f"{kh}×{kw}×{c}×{c}"
    if how == "linear":
        return f"{layer.in_features}×{layer.out_features}"
    return ""


def layer_table(analysis: check.Analysis, head: bool = False, plain: bool = False) -> Grid:
    """The spec's table with every value inferred: Filter Shape from the resolved layers,
    Output Shape as H×W×C, Parameters as the paper writes them (conv+bn: "112+8"), Total.
    `head` adds the regression head's layers; `plain` gives unformatted numbers (for CSV)."""
    spec = analysis.spec
    grid = Grid(["Type", "Filter Shape", "Output Shape", "Parameters"], align="lllr")
    fmt = str if plain else group
    for r in analysis.rows:
        terms = r.param_terms
        params = "+".join(str(t) for t in terms) if len(terms) > 1 else fmt(r.params)
        grid.rows.append([r.row.type.text, _filter(r), format_shape(r.output or ()), params])
    total = analysis.params_localization
    if head:
        grid.rules_before.add(len(grid.rows))
        for h in analysis.head:
            if h.layer.kind == "flatten":
                continue
            layer: Any = h.layer
            filt = f"{layer.in_features}×{layer.out_features}" if layer.kind == "linear" else ""
            word = catalog.canonical_word(layer.kind)
            if layer.kind == "linear":
                word = f"{word} {layer.out_features}"
            grid.rows.append([word, filt, format_shape(h.output), fmt(h.params)])
        total = analysis.params_total
    grid.rules_before.add(len(grid.rows))
    grid.rows.append(["Total", "", "", fmt(total)])
    c, hgt, w = analysis.input
    what = "localization net and regression head" if head else "localization net"
    grid.caption = f"{spec.name} {what}, input {hgt}×{w}×{c}."
    return grid
