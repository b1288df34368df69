"""Document -> IR: what the words of a spec mean.

The parser (parser.py) gives cells and header values as items of words and numbers; this
module interprets them through the catalog's vocabulary: layer words and options become IR
layers, table columns are matched by name, Filter Shape is folded into each row's primary
layer, header defaults are applied. Every problem is collected, and all are raised together
as one `SpecInputError` (exit 2), each at its item's line and column.

The work is shared by three mixins, one file each: words.py (items -> layers), headers.py
(header values), cells.py (the table); this module holds the whole spec. It does not infer
shapes or check declared numbers (check.py does).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from lstndsl import catalog, ir
from lstndsl.cells import COLUMN_TITLES, COLUMNS, Cells
from lstndsl.document import Document, Header
from lstndsl.errors import SpecInputError, did_you_mean
from lstndsl.numbers import number_errors

__all__ = ["COLUMNS", "COLUMN_TITLES", "HEADER_KEYS", "build_spec"]

#: header keys (normalized) -> canonical key
HEADER_KEYS = {
    "name": "name",
    "input": "input",
    "inputsize": "input",
    "inputshape": "input",
    "head": "head",
    "regressionhead": "head",
    "transform": "transform",
    "sampler": "sampler",
    "activation": "activation",
    "at": "at",
    "placement": "at",
}


class _Builder(Cells):
    """Interprets a Document, collecting every problem before raising."""

    # the whole spec ---------------------------------------------------------------------

    def spec(self) -> ir.Spec | None:
        if not self.doc.headers and not self.doc.rows:
            self.error(
                "the spec is empty: no header lines and no table",
                ir.Pos(line=1, column=1),
                "start with 'input: 224x224x3' and 'head: flatten -> fc 32 -> relu -> fc 6',"
                " then a table | Type | Filter Shape | Output Shape | Parameters |",
                code="empty",
            )
            return None
        params_column = next(
            (
                i
                for i, c in enumerate(self.doc.rows[0].cells if self.doc.rows else ())
                if COLUMNS.get(catalog.normalize(c.text)) == "params"
            ),
            None,
        )
        bad_numbers = number_errors(self.doc, params_column)
        if bad_numbers:  # nothing below may convert them (a 100,000-digit int raises)
            self.diags += bad_numbers
            return None
        seen, guessed = self._headers()
        top = ir.Pos(line=1, column=1)
        input_size = self.input_size(seen["input"]) if "input" in seen else None
        if "input" not in seen and "input" not in guessed:
            self.error(
                "the spec has no 'input:' header",
                top,
                "add the input size as H×W×C, e.g. 'input: 224x224x3'",
                code="bad-header",
            )
        default_act = self._default_activation(seen.get("activation"))
        head: list[Any] = []
        head_pos = None
        if "head" in seen:
            head_pos = seen["head"].value_pos
            if not seen["head"].items:
                self.error("the head is empty", head_pos, code="bad-header")
            else:
                head = self.layers(seen["head"].items, "head")
        elif "head" not in guessed:
            self.error(
                "the spec has no 'head:' header",
                top,
                "the paper's regression head is 'head: flatten -> fc 32 -> relu -> fc 6'",
                code="bad-header",
            )
        transform = self.transform(seen["transform"]) if "transform" in seen else ir.Transform()
        at, at_pos = self.placement(seen["at"]) if "at" in seen else ("input", None)
        sampler = self.sampler(seen["sampler"]) if "sampler" in seen else ir.Sampler()
        rows, total, total_pos = self.table(default_act)
        if self.diags or input_size is None:
            return None
        return ir.Spec(
            name=self._name(seen),
            path=self.doc.path,
            source=self.doc.source,
            input=input_size,
            activation=default_act,
            head=tuple(head),
            head_text=seen["head"].text if "head" in seen else "",
            head_pos=head_pos,
            transform=transform,
            sampler=sampler,
            at=at,
            at_pos=at_pos,
            rows=tuple(rows),
            total=total,
            total_pos=total_pos,
        )

    def _headers(self) -> tuple[dict[str, Header], set[str]]:
        """Each header by its key (a second naming is an error at it, naming the first), and
        the keys unknown headers were probably meant to be (no 'missing' error for those)."""
        seen: dict[str, Header] = {}
        keys = sorted(set(HEADER_KEYS.values()))
        guessed: set[str] = set()
        for h in self.doc.headers:
            key = HEADER_KEYS.get(catalog.normalize(h.key))
            if key is None:
                self.error(
                    f"unknown header '{h.key}'",
                    h.pos,
                    did_you_mean(h.key, keys) or "headers: " + ", ".join(keys),
                    code="bad-header",
                )
                guessed.update(difflib.get_close_matches(h.key.lower(), keys, n=3, cutoff=0.6))
            elif key in seen:
                self.error(
                    f"header '{h.key}' appears twice",
                    h.pos,
                    f"first at line {seen[key].line}",
                    code="bad-header",
                )
            else:
                seen[key] = h
        return seen, guessed

    def _name(self, seen: dict[str, Header]) -> str:
        """`name:`, else the table's caption, else the file name."""
        name = seen["name"].text if "name" in seen else ""
        if not name and self.doc.caption:
            name = re.sub(r"^table\s+\w+\s*[.:]\s*", "", self.doc.caption[0], flags=re.I)
        return name or Path(self.doc.path).stem

    def _default_activation(self, header: Header | None) -> Any:
        """`activation:`, one activation appended to rows that name none (None: no header)."""
        if header is None:
            return None
        acts = self.layers(header.items, "activation")
        if len(acts) == 1 and catalog.is_activation(acts[0].kind):
            return acts[0]
        if acts:
            self.error(
                f"'{header.text}' is not one activation",
                header.value_pos,
                "e.g. 'activation: relu'",
                code="bad-header",
            )
        return None


def build_spec(doc: Document) -> ir.Spec:
    """Interpret a parsed Document. Raises SpecInputError with every problem found."""
    builder = _Builder(doc)
    spec = builder.spec()
    if spec is None:
        raise SpecInputError(builder.diags, doc.source)
    return spec
