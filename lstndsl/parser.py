"""Spec text -> Document -> typed IR.

`parse_document` runs the Lark grammar (grammar/spec.lark, LALR with positions) and returns a
`Document` (document.py): header lines and table rows as cells of items, each with its source
position, nothing interpreted yet (fmt works on this). A syntax error becomes a
`SpecInputError` with its line and column: Lark's own errors never escape. `parse` then hands
the Document to interpret.py, which turns words into IR (interpret.py imports the Document
types from document.py, not from here: no import circle).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import lark

from lstndsl import ir
from lstndsl.document import Atom, Document, Header, Item, RawCell, RawRow
from lstndsl.errors import Diagnostic, SpecInputError
from lstndsl.interpret import build_spec

__all__ = [
    "Atom",
    "Document",
    "Header",
    "Item",
    "RawCell",
    "RawRow",
    "parse",
    "parse_document",
    "parse_file",
    "read_source",
]

# --- Lark -> Document ---------------------------------------------------------------------


@functools.cache
def _lark() -> lark.Lark:
    grammar = resources.files("lstndsl").joinpath("grammar/spec.lark").read_text("utf-8")
    return lark.Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


_TERMINAL_NAMES = {
    "WORD": "a word",
    "NUMBER": "a number",
    "DIMS": "dimensions such as 3×3×8×4",
    "DASH": "'-'",
    "PIPE": "'|'",
    "COLON": "':'",
    "_SEP": "',' or '+' or '->'",
    "_EQ": "'='",
    "_DOTDOT": "'..'",
    "_NL": "the end of the line",
    "TEXT": "a name",
    "NAME_KEY": "a header such as 'name:'",
    "SEPARATOR": "a Markdown delimiter row (|---|---|)",
    "CAPTION": "a caption",
    "$END": "the end of the file",
}


def _expected(names: set[str] | frozenset[str]) -> str:
    described = sorted({_TERMINAL_NAMES.get(n, n.lower()) for n in names})
    return ", ".join(described[:-1]) + (" or " if len(described) > 1 else "") + described[-1]


def _syntax_error(err: lark.exceptions.UnexpectedInput, path: str, text: str) -> SpecInputError:
    line, column = max(1, err.line), max(1, err.column)
    if isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "$END":
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        found = "the end of the file"
    else:
        lines = text.splitlines()
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        char = src[column - 1 : column] if column <= len(src) else ""
        if isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "_NL":
            found = "the end of the line"
        else:
            found = f"'{char}'" if char else "the end of the line"
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None) or set()
    message = f"unexpected {found}"
    hint = f"expected {_expected(expected)}" if expected else None
    if isinstance(err, lark.exceptions.UnexpectedToken) and "COLON" in expected:
        hint = "a header line is 'key: value', e.g. 'input: 224x224x3'"
        if found == "'|'":
            hint = (
                "a table row starts with '|': | Type | Filter Shape | Output Shape | Parameters |"
            )
    return SpecInputError([Diagnostic("error", message, path, line, column, hint, code="syntax")])


class _ToDocument(lark.Visitor):
    def __init__(self, doc: Document) -> None:
        self.doc = doc

    def _items(self, tree: lark.Tree) -> tuple[Item, ...]:
        return tuple(self._item(t) for t in tree.children if isinstance(t, lark.Tree))

    def _item(self, tree: lark.Tree) -> Item:
        atoms: list[Atom] = []
        for child in tree.children:
            if isinstance(child, lark.Token):
                atoms.append(
                    Atom(
                        child.type,
                        str(child),
                        child.line or 0,
                        child.column or 0,
                        child.start_pos or 0,
                        child.end_pos or 0,
                    )
                )
            else:  # range
                lo, hi = child.children
                assert isinstance(lo, lark.Token) and isinstance(hi, lark.Token)
                atoms.append(
                    Atom(
                        "range",
                        f"{lo}..{hi}",
                        lo.line or 0,
                        lo.column or 0,
                        lo.start_pos or 0,
                        hi.end_pos or 0,
                    )
                )
        text = self.doc.source[atoms[0].start : atoms[-1].end]
        return Item(tuple(atoms), text)

    def header(self, tree: lark.Tree) -> None:
        key_tree = tree.children[0]
        assert isinstance(key_tree, lark.Tree)
        words = [t for t in key_tree.children if isinstance(t, lark.Token)]
        items = self._items(tree.children[1]) if len(tree.children) > 1 else ()
        value_text = (
            self.doc.source[items[0].atoms[0].start : items[-1].atoms[-1].end] if items else ""
        )
        value_column = items[0].atoms[0].column if items else (words[-1].end_column or 0) + 1
        self.doc.headers.append(
            Header(
                " ".join(str(w) for w in words),
                items,
                value_text,
                words[0].line or 0,
                words[0].column or 0,
                value_column,
            )
        )

    def name_header(self, tree: lark.Tree) -> None:
        key = tree.children[0]
        assert isinstance(key, lark.Token)
        raw = str(tree.children[1]) if len(tree.children) > 1 else ""
        value_column = (key.end_column or 0) + 1
        if len(tree.children) > 1:
            tok = tree.children[1]
            assert isinstance(tok, lark.Token)
            value_column = (tok.column or 0) + len(raw) - len(raw.lstrip())
        self.doc.headers.append(
            Header("name", (), raw.strip(), key.line or 0, key.column or 0, value_column)
        )

    def caption(self, tree: lark.Tree) -> None:
        tok = tree.children[0]
        assert isinstance(tok, lark.Token)
        self.doc.caption = (str(tok).strip(), tok.line or 0)

    def separator(self, tree: lark.Tree) -> None:
        tok = tree.children[0]
        assert isinstance(tok, lark.Token)
        self.doc.separator_lines.append(tok.line or 0)

    def row(self, tree: lark.Tree) -> None:
        cells: list[RawCell] = []
        pending: lark.Tree | None = None
        last_pipe: lark.Token | None = None
        for child in tree.children:
            if isinstance(child, lark.Token):  # a pipe closes a cell
                if last_pipe is not None:
                    cells.append(self._cell(pending, last_pipe, child.start_pos or 0))
                pending, last_pipe = None, child
            else:
                pending = child
        if pending is not None and last_pipe is not None:
            cells.append(self._cell(pending, last_pipe, None))
        first = tree.children[0]
        assert isinstance(first, lark.Token)
        self.doc.rows.append(RawRow(first.line or 0, tuple(cells)))

    def _cell(self, items_tree: lark.Tree | None, pipe: lark.Token, end: int | None) -> RawCell:
        """A cell between `pipe` and the source offset `end` (None: the cell's last item)."""
        start = pipe.end_pos or 0
        if items_tree is None:
            text = self.doc.source[start:end].strip() if end is not None else ""
            # an empty cell stands right after its pipe (Lark's end_column is 1-based, exclusive)
            return RawCell((), text, pipe.line or 0, pipe.end_column or 1)
        items = self._items(items_tree)
        first, last = items[0].atoms[0], items[-1].atoms[-1]
        raw = self.doc.source[start : end if end is not None else last.end]
        text = raw.split("#", 1)[0].strip()  # keep LaTeX dollars, drop a trailing comment
        return RawCell(items, text, first.line, first.column)


def read_source(path: str | Path) -> str:
    """Read a spec file; unreadable or undecodable input is a SpecInputError with a position."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        reason = err.strerror or str(err)
        raise SpecInputError(
            [Diagnostic("error", f"cannot read the spec: {reason}", name, 1, 1, code="read")]
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = err.start - (before.rfind(b"\n") + 1) + 1
        raise SpecInputError(
            [
                Diagnostic(
                    "error",
                    f"the spec is not UTF-8 text (byte 0x{data[err.start]:02x})",
                    name,
                    line,
                    column,
                    "save it as UTF-8",
                    code="read",
                )
            ]
        ) from None


def parse_document(text: str, path: str = "<spec>") -> Document:
    """Run the grammar. Raises SpecInputError (with the position) on a syntax error."""
    text = text.lstrip("\ufeff")
    doc = Document(path=path, source=text)
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as err:
        raise _syntax_error(err, path, text) from None
    _ToDocument(doc).visit_topdown(tree)
    return doc


def parse(text: str, path: str = "<spec>") -> ir.Spec:
    """Spec text -> IR. Raises SpecInputError (exit 2) on anything unusable."""
    try:
        return build_spec(parse_document(text, path))
    except SpecInputError as err:
        err.source = text
        raise


def parse_file(path: str | Path) -> ir.Spec:
    return parse(read_source(path), str(path))
