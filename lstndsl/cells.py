"""The layer table -> IR rows: columns by name, Type cells, Filter Shape, Output Shape,
Parameters and the Total row.

A mixin of the interpreter (interpret.py): it checks the table's structure (one delimiter row,
consecutive rows, nothing after the Total), folds each Filter Shape into its row's primary
layer, and puts the header's default activation where people put it (after the weighted layer
and its norm, before pooling and dropout).

This module is not: the layer words (words.py) or header values (headers.py).
"""

from __future__ import annotations

from typing import Any

from lstndsl import catalog, ir
from lstndsl.document import RawCell, RawRow
from lstndsl.errors import did_you_mean
from lstndsl.headers import Headers
from lstndsl.words import shown

#: column names (normalized) -> canonical column
COLUMNS = {
    "type": "type",
    "layer": "type",
    "layertype": "type",
    "filtershape": "filter",
    "filter": "filter",
    "filtersize": "filter",
    "kernel": "filter",
    "outputshape": "output",
    "output": "output",
    "outputsize": "output",
    "parameters": "params",
    "params": "params",
    "param": "params",
    "parametercount": "params",
}
COLUMN_TITLES = {
    "type": "Type",
    "filter": "Filter Shape",
    "output": "Output Shape",
    "params": "Parameters",
}


class Cells(Headers):
    """Interprets the layer table."""

    # the table ------------------------------------------------------------------------

    def columns(self, header_row: RawRow) -> list[str] | None:
        names: list[str] = []
        ok = True
        for cell in header_row.cells:
            key = catalog.normalize(cell.text)
            col = COLUMNS.get(key)
            if col is None:
                self.error(
                    f"unknown column '{cell.text}'",
                    cell.pos,
                    did_you_mean(cell.text, COLUMN_TITLES.values())
                    or "the columns are Type | Filter Shape | Output Shape | Parameters",
                    code="bad-table",
                )
                ok = False
            elif col in names:
                self.error(f"column '{cell.text}' appears twice", cell.pos, code="bad-table")
                ok = False
            names.append(col or "?")
        if ok and "type" not in names:
            self.error(
                "the table has no Type column",
                header_row.cells[0].pos,
                "the columns are Type | Filter Shape | Output Shape | Parameters",
                code="bad-table",
            )
            ok = False
        return names if ok else None

    def dims(self, cell: RawCell, what: str, hint: str) -> ir.Dims | None:
        if cell.empty:
            return None
        atoms = [a for i in cell.items for a in i.atoms]
        if len(atoms) == 1 and atoms[0].kind in {"DIMS", "NUMBER"}:
            value = atoms[0].value
            values = (value,) if isinstance(value, int) else value
            if isinstance(values, tuple) and 0 in values:
                self.error(
                    f"{what} '{cell.text}' has a zero dimension",
                    cell.pos,
                    "every dimension is at least 1",
                    code="bad-cell",
                )
                return None
            if isinstance(values, tuple):
                return ir.Dims(values=values, pos=cell.pos)
        self.error(f"cannot read {what} '{cell.text}'", cell.pos, hint, code="bad-cell")
        return None

    def params(self, cell: RawCell) -> ir.DeclaredParams | None:
        if cell.empty:
            return None
        terms: list[int] = []
        for item in cell.items:
            if len(item.atoms) != 1 or not isinstance(item.atoms[0].value, int):
                self.error(
                    f"cannot read parameters '{cell.text}'",
                    cell.pos,
                    "write a whole number, or a sum such as 112+8 (conv, then batch norm)",
                    code="bad-cell",
                )
                return None
            terms.append(item.atoms[0].value)
        return ir.DeclaredParams(terms=tuple(terms), pos=cell.pos)

    def fold_filter(self, layers: list[Any], f: ir.Dims) -> list[Any]:
        primary = layers[0]
        entry = catalog.CATALOG[primary.kind]
        v = f.values
        word = catalog.canonical_word(primary.kind)
        updates: dict[str, Any]
        if entry.filter == "conv" and len(v) == 4:
            updates = {"kernel": (v[0], v[1]), "in_channels": v[2], "out_channels": v[3]}
        elif entry.filter == "pool" and len(v) in (2, 4):
            if len(v) == 4 and v[2] != v[3]:
                self.error(
                    f"pooling keeps the channels, but the Filter Shape goes from {v[2]} to {v[3]}",
                    f.pos,
                    f"write {v[0]}×{v[1]}×{v[2]}×{v[2]}",
                    code="bad-cell",
                )
                return []
            updates = {"kernel": (v[0], v[1])}
            if len(v) == 4:
                updates["channels"] = v[2]
        elif entry.filter == "linear" and len(v) == 2:
            updates = {"in_features": v[0], "out_features": v[1]}
        elif entry.filter == "norm" and len(v) == 1:
            updates = {"num_features": v[0]}
        else:
            expected = {
                "conv": "kh×kw×c_in×c_out",
                "pool": "kh×kw×C×C",
                "linear": "in×out",
                "norm": "the channel count",
            }.get(entry.filter or "")
            self.error(
                f"a {word} row cannot take the Filter Shape '{'×'.join(map(str, v))}'",
                f.pos,
                f"write {expected}" if expected else "leave the Filter Shape empty",
                code="bad-cell",
            )
            return []
        clashes = [
            k
            for k, val in updates.items()
            if k in primary.model_fields_set and getattr(primary, k) != val
        ]
        if clashes:
            name = clashes[0]
            self.error(
                f"the Type cell and the Filter Shape disagree on {name.replace('_', ' ')}",
                f.pos,
                f"the Type cell says {shown(getattr(primary, name))},"
                f" the Filter Shape {shown(updates[name])}",
                code="bad-cell",
            )
            return []
        return [primary.model_copy(update=updates), *layers[1:]]

    def table(self, default_act: Any) -> tuple[list[ir.Row], ir.DeclaredParams | None, Any]:
        raw = self.doc.rows
        if not raw:
            self.error(
                "the spec has no layer table",
                ir.Pos(line=max(1, self.doc.source.count("\n")), column=1),
                "add a Markdown table: | Type | Filter Shape | Output Shape | Parameters |",
                code="bad-table",
            )
            return [], None, None
        header_row = raw[0]
        has_delimiter = self._delimiters(header_row.line)
        cols = self.columns(header_row)
        if cols is None:
            return [], None, None
        # without its delimiter row the table still runs on from the header: one error, not two
        expected_line = header_row.line + (2 if has_delimiter else 1)
        rows: list[ir.Row] = []
        total: ir.DeclaredParams | None = None
        total_pos: ir.Pos | None = None
        for raw_row in raw[1:]:
            if raw_row.line != expected_line:
                self.error(
                    "the table is interrupted before this row; a spec has one table",
                    ir.Pos(line=raw_row.line, column=1),
                    "keep the rows on consecutive lines (Markdown ends a table at the first"
                    " line that is not a row)",
                    code="bad-table",
                )
            expected_line = raw_row.line + 1
            cells = dict(zip(cols, raw_row.cells, strict=False))
            if len(raw_row.cells) > len(cols):
                cell = raw_row.cells[len(cols)]
                self.error(
                    f"this row has {len(raw_row.cells)} cells, the header has {len(cols)}",
                    cell.pos,
                    code="bad-table",
                )
                continue
            type_cell = cells.get("type")
            if type_cell is None or type_cell.empty:
                pos = type_cell.pos if type_cell else ir.Pos(line=raw_row.line, column=1)
                self.error("this row has no Type", pos, code="bad-table")
                continue
            if total_pos is not None:
                self.error(
                    "a row after the Total row",
                    type_cell.pos,
                    "the Total row ends the table",
                    code="bad-table",
                )
                continue
            if catalog.normalize(type_cell.text) in {"total", "sum"}:
                total_pos = type_cell.pos
                if "params" in cells:
                    total = self.params(cells["params"])
                continue
            row = self.row(raw_row, cells, default_act)
            if row is not None:
                rows.append(row)
        if not rows and not self.diags:
            self.error(
                "the table has no layers",
                ir.Pos(line=header_row.line, column=1),
                "add a row per layer under the delimiter row, e.g. | Conv | 3×3×3×8 |",
                code="bad-table",
            )
        return rows, total, total_pos

    def _delimiters(self, header_line: int) -> bool:
        """Whether the header row has its delimiter row right below; a second delimiter row
        is an error at it."""
        seps = self.doc.separator_lines
        has_delimiter = bool(seps) and seps[0] == header_line + 1
        if not has_delimiter:
            self.error(
                "the table's header row must be followed by a delimiter row",
                ir.Pos(line=header_line, column=1),
                "add |---|---|---|---| on the next line",
                code="bad-table",
            )
        for extra in seps[1:]:
            self.error(
                "a second delimiter row; a spec has one table",
                ir.Pos(line=extra, column=1),
                code="bad-table",
            )
        return has_delimiter

    def row(self, raw: RawRow, cells: dict[str, RawCell], default_act: Any) -> ir.Row | None:
        type_cell = cells["type"]
        layers = self.layers(type_cell.items, "layer")
        if not layers:
            return None
        for later in layers[1:]:
            if not catalog.CATALOG[later.kind].attach:  # `Conv, Conv`: two weighted layers
                word = catalog.canonical_word(later.kind)
                self.error(
                    f"'{word}' cannot follow another layer in the same row",
                    later.pos or type_cell.pos,
                    f"a row has one {word}; start a new row for it",
                    code="bad-row",
                )
                return None
        f = (
            self.dims(cells["filter"], "the Filter Shape", "write kh×kw×c_in×c_out")
            if "filter" in cells
            else None
        )
        if f is not None:
            layers = self.fold_filter(layers, f)
            if not layers:
                return None
        out = (
            self.dims(cells["output"], "the Output Shape", "write H×W×C, e.g. 52×52×10")
            if "output" in cells
            else None
        )
        if out is not None and len(out.values) == 2:
            self.error(
                f"cannot read the Output Shape '{cells['output'].text}'",
                out.pos,
                "write H×W×C, e.g. 52×52×10, or a single number after a flatten",
                code="bad-cell",
            )
            out = None
        params = self.params(cells["params"]) if "params" in cells else None
        named_act = any(catalog.is_activation(layer.kind) for layer in layers)
        weighted = catalog.CATALOG[layers[0].kind].weighted
        if default_act is not None and weighted and not named_act:
            # where people put it: right after the weighted layer and its norm, before any
            # pooling or dropout (conv -> BN -> act -> pool)
            at = 1
            while at < len(layers) and catalog.CATALOG[layers[at].kind].norm:
                at += 1
            layers.insert(at, default_act.model_copy(update={"pos": None}))
        output = None
        if out is not None:
            v = out.values
            output = ir.Dims(values=(v[2], v[0], v[1]) if len(v) == 3 else v, pos=out.pos)
        return ir.Row(
            pos=ir.Pos(line=raw.line, column=1),
            type=ir.Cell(text=type_cell.text, pos=type_cell.pos),
            layers=tuple(layers),
            filter=f,
            output=output,
            params=params,
        )
