"""`lstndsl fmt`: print a spec with its table's columns aligned; optionally fill empty cells.

Only the table is rewritten; header lines, the caption and comments stay as written, and
every cell keeps its text (LaTeX, `x` or `×`, all as the author wrote them). With `fill`, empty
Output Shape and Parameters cells (and the Total) get the inferred values at the declared input
size, adding those columns if the table lacks them; a spec whose numbers disagree is refused
(`SpecCheckError`), since its "inferred" values would follow the misprint. Parse -> fmt -> parse
gives the same IR.
"""

from __future__ import annotations

import re

from lstndsl import catalog, check, parser
from lstndsl.errors import SpecCheckError, SpecInputError
from lstndsl.interpret import COLUMN_TITLES, COLUMNS, build_spec
from lstndsl.ir import format_shape
from lstndsl.parser import RawRow

_DIMS_SIGN = re.compile(r"\d( ?)(×|\\times|[xX*]) ?\d")


def _times(cells: list[str]) -> tuple[str, bool]:
    """The multiplication sign (and spacing) the table already uses for dimensions, and
    whether it wraps them in LaTeX dollars."""
    for cell in cells:
        m = _DIMS_SIGN.search(cell)
        if m:
            sign = f" {m.group(2)} " if m.group(1) else m.group(2)
            return sign, cell.startswith("$")
    return "×", False


def format_spec(text: str, path: str = "<spec>", fill: bool = False) -> str:
    doc = parser.parse_document(text, path)
    if not doc.rows:
        return doc.source
    header, data = doc.rows[0], doc.rows[1:]
    columns = [COLUMNS.get(catalog.normalize(c.text), "?") for c in header.cells]
    titles = [c.text for c in header.cells]
    grid: list[list[str]] = [[c.text for c in r.cells] for r in data]

    if fill:
        _fill(doc, columns, titles, grid)
    return _render(doc, header, data, titles, grid)


def _fill(
    doc: parser.Document, columns: list[str], titles: list[str], grid: list[list[str]]
) -> None:
    """Write the inferred Output Shape and Parameters into empty cells (and the Total), in the
    table's own style, adding the two columns if the table lacks them. Refuses a spec whose
    numbers disagree: "inferred" would follow the misprint."""
    for col in ("output", "params"):
        if col not in columns:
            columns.append(col)
            titles.append(COLUMN_TITLES[col])
            for cells in grid:
                cells.append("")
    try:
        spec = build_spec(doc)
    except SpecInputError as err:
        err.source = doc.source
        raise
    analysis = check.analyze(spec)
    if analysis.errors:
        raise SpecCheckError(analysis.errors, doc.source)
    times, dollars = _times([c for r in grid for c in r])
    results = iter(analysis.rows)
    total_params = analysis.params_localization if analysis.complete else None
    type_col, out_col, par_col = (columns.index(c) for c in ("type", "output", "params"))
    for cells in grid:
        cells.extend([""] * (len(columns) - len(cells)))
        if catalog.normalize(cells[type_col]) in {"total", "sum"}:
            if _blank(cells[par_col]) and total_params is not None:
                cells[par_col] = str(total_params)
            continue
        result = next(results, None)
        if result is None or result.output is None:
            continue
        if _blank(cells[out_col]):
            shape = format_shape(result.output, times)
            cells[out_col] = f"${shape}$" if dollars and len(result.output) > 1 else shape
        if _blank(cells[par_col]):
            terms = result.param_terms
            cells[par_col] = "+".join(map(str, terms)) if terms else "0"


def _separator(written: str, widths: list[int]) -> str:
    """The delimiter row at the new widths, each column's alignment colons kept (`:---`,
    `:---:`, `---:`): only the dashes change."""
    body = written.split("#", 1)[0].strip().removeprefix("|").removesuffix("|")
    marks = [cell.strip() for cell in body.split("|")]
    out = []
    for i, w in enumerate(widths):
        mark = marks[i] if i < len(marks) else ""
        left, right = mark.startswith(":"), mark.endswith(":") and len(mark) > 1
        dashes = "-" * (w + 2 - left - right)
        out.append((":" if left else "") + dashes + (":" if right else ""))
    return "|" + "|".join(out) + "|"


def _blank(cell: str) -> bool:
    return cell.strip() in {"", "-", "—", "–"}


def _render(
    doc: parser.Document,
    header: RawRow,
    data: list[RawRow],
    titles: list[str],
    grid: list[list[str]],
) -> str:
    ncols = max([len(titles), *(len(r) for r in grid)])
    rows = [titles + [""] * (ncols - len(titles))] + [r + [""] * (ncols - len(r)) for r in grid]
    widths = [max(3, *(len(r[i]) for r in rows)) for i in range(ncols)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines = doc.source.split("\n")
    rendered = {header.line: line(rows[0])}
    for raw, cells in zip(data, rows[1:], strict=True):
        rendered[raw.line] = line(cells)
    for sep_line in doc.separator_lines[:1]:
        rendered[sep_line] = _separator(lines[sep_line - 1], widths)
    for number, new in rendered.items():
        old = lines[number - 1]
        eol = "\r" if old.endswith("\r") else ""  # keep CRLF files CRLF
        old = old.removesuffix("\r")
        comment = old[old.index("#") :] if "#" in old else ""
        lines[number - 1] = (f"{new}  {comment}" if comment else new) + eol
    return "\n".join(lines)
