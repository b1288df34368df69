"""Spec text -> the lines of a Document (headers, caption, delimiter rows, table rows), each
with its positions: the grammar (grammar/spec.lark) run by Lark, and nothing else.

Two readers share one builder (`ToLines`, Lark's inline transformer for LALR: no parse tree is
built):

- Lark, LALR with the contextual lexer, reads every line;
- `fast_row` reads a table row in one pass of a regular expression made from the grammar's own
  terminals (in Lark's order): 0.8 s of CPU for a 20,000-row spec where Lark's per-token
  machinery takes 1.5 s (bench/check_speed.py). It accepts only a row whose tokens are exactly
  `PIPE (items? PIPE)+ items?` (the grammar's `row`), and says None to anything else, which Lark
  then reads (and reports). Lark still reads the whole text, with each row `fast_row` took
  blanked to spaces (a blank line is legal anywhere), so lines, columns and every syntax error
  stay Lark's. tests/test_diagnostics.py checks that the two readers agree (every row of
  specs/ and of the good fixtures, and generated rows).

Not here: syntax errors as diagnostics, reading files (parser.py); what the words mean
(interpret.py).
"""

from __future__ import annotations

import functools
import gc
import re
import threading
from importlib import resources
from typing import Any, NamedTuple

import lark

from lstndsl.document import Atom, Header, Item, RawCell, RawRow

__all__ = ["Caption", "Separator", "lines"]


@functools.cache
def _lark() -> lark.Lark:
    grammar = resources.files("lstndsl").joinpath("grammar/spec.lark").read_text("utf-8")
    return lark.Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=False,
        transformer=ToLines(),
    )


class ToLines(lark.Transformer[lark.Token, list[object]]):
    """Builds the Document's pieces while Lark parses (LALR's inline transformer: no parse
    tree is built, and each rule is reduced once). Stateless but for the source text of the
    parse in progress (`_STATE.source`), which items and cells slice their text from."""

    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        return lark.Tree(data, children)  # the inlined rules (_line) that Lark splices

    def start(self, children: list[Any]) -> list[object]:
        return children

    def range(self, children: list[lark.Token]) -> Atom:
        lo, hi = children
        return Atom(
            "range", f"{lo}..{hi}", lo.line or 0, lo.column or 0, lo.start_pos or 0, hi.end_pos or 0
        )

    def item(self, children: list[Any]) -> Item:
        atoms = tuple(
            c
            if isinstance(c, Atom)
            else Atom(c.type, str(c), c.line or 0, c.column or 0, c.start_pos or 0, c.end_pos or 0)
            for c in children
        )
        return Item(atoms, _source()[atoms[0].start : atoms[-1].end])

    def items(self, children: list[Item]) -> tuple[Item, ...]:
        return tuple(children)

    def key(self, children: list[lark.Token]) -> list[lark.Token]:
        return children

    def header(self, children: list[Any]) -> Header:
        words: list[lark.Token] = children[0]
        items: tuple[Item, ...] = children[1] if len(children) > 1 else ()
        source = _source()
        value_text = source[items[0].atoms[0].start : items[-1].atoms[-1].end] if items else ""
        value_column = items[0].atoms[0].column if items else (words[-1].end_column or 0) + 1
        return Header(
            " ".join(str(w) for w in words),
            items,
            value_text,
            words[0].line or 0,
            words[0].column or 0,
            value_column,
        )

    def name_header(self, children: list[lark.Token]) -> Header:
        key = children[0]
        raw = str(children[1]) if len(children) > 1 else ""
        value_column = (key.end_column or 0) + 1
        if len(children) > 1:
            value_column = (children[1].column or 0) + len(raw) - len(raw.lstrip())
        return Header("name", (), raw.strip(), key.line or 0, key.column or 0, value_column)

    def caption(self, children: list[lark.Token]) -> Caption:
        tok = children[0]
        return Caption(str(tok).strip(), tok.line or 0)

    def separator(self, children: list[lark.Token]) -> Separator:
        return Separator(children[0].line or 0)

    def row(self, children: list[Any]) -> RawRow:
        return _row(
            [
                _Pipe(c.line or 0, c.start_pos or 0, c.end_pos or 0, c.end_column or 1)
                if isinstance(c, lark.Token)
                else c
                for c in children
            ]
        )


class Caption(NamedTuple):
    text: str
    line: int


class Separator(NamedTuple):
    line: int


_STATE = threading.local()


def _source() -> str:
    return str(_STATE.source)


class _Pipe(NamedTuple):
    line: int
    start: int
    end: int
    end_column: int
    """the column right after it (1-based)"""


def _row(children: list[Any]) -> RawRow:
    """Pipes and the items between them -> the row's cells."""
    cells: list[RawCell] = []
    pending: tuple[Item, ...] | None = None
    last_pipe: _Pipe | None = None
    for child in children:
        if isinstance(child, _Pipe):  # a pipe closes a cell
            if last_pipe is not None:
                cells.append(_cell(pending, last_pipe, child.start))
            pending, last_pipe = None, child
        else:
            pending = child
    if pending is not None and last_pipe is not None:
        cells.append(_cell(pending, last_pipe, None))
    return RawRow(children[0].line, tuple(cells))


def _cell(items: tuple[Item, ...] | None, pipe: _Pipe, end: int | None) -> RawCell:
    """A cell between `pipe` and the source offset `end` (None: the cell's last item)."""
    source = _source()
    if not items:
        text = source[pipe.end : end].strip() if end is not None else ""
        # an empty cell stands right after its pipe
        return RawCell((), text, pipe.line, pipe.end_column)
    first, last = items[0].atoms[0], items[-1].atoms[-1]
    raw = source[pipe.end : end if end is not None else last.end]
    text = raw.split("#", 1)[0].strip()  # keep LaTeX dollars, drop a trailing comment
    return RawCell(items, text, first.line, first.column)


# --- the fast row reader --------------------------------------------------------------------

#: the terminals a row may hold (the grammar's `row`, `items`, `item`, `atom`, `range`)
_ROW_TERMINALS = ("PIPE", "WORD", "NUMBER", "DIMS", "DASH", "_SEP", "_EQ", "_DOTDOT")
_ATOMS = frozenset({"WORD", "NUMBER", "DIMS", "DASH"})


@functools.cache
def _row_scanner() -> tuple[re.Pattern[str], frozenset[str], re.Pattern[str]]:
    """One alternation of the row's terminals and the ignored ones, in the order Lark's lexer
    tries them (priority, then width); and the delimiter row's pattern (it outranks a row)."""
    parser = _lark()
    ignored = frozenset(parser.ignore_tokens)
    terms = [t for t in parser.terminals if t.name in _ROW_TERMINALS or t.name in ignored]
    terms.sort(key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
    scan = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terms))
    separator = next(t for t in parser.terminals if t.name == "SEPARATOR")
    return scan, ignored, re.compile(separator.pattern.to_regexp())


def _tokens(text: str, line: int, offset: int) -> list[Atom] | None:
    """The line's tokens as Lark would make them, or None where the scanner stops."""
    scan, ignored, _ = _row_scanner()
    out: list[Atom] = []
    pos, end = 0, len(text)
    while pos < end:
        m = scan.match(text, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup
        assert kind is not None
        if kind not in ignored:
            out.append(Atom(kind, m.group(), line, pos + 1, offset + pos, offset + m.end()))
        pos = m.end()
    return out


def _atoms(toks: list[Atom], build: ToLines) -> list[Atom] | None:
    """One item's atoms (ranges joined; '=' dropped), or None if they are not `atom (= atom)*`."""
    atoms: list[Atom] = []
    i, n = 0, len(toks)
    while i < n:
        tok = toks[i]
        if tok.kind == "_EQ":
            if not atoms or i + 1 == n or toks[i + 1].kind == "_EQ":
                return None
            i += 1
            continue
        if tok.kind not in _ATOMS:
            return None
        if i + 1 < n and toks[i + 1].kind == "_DOTDOT":
            if tok.kind != "NUMBER" or i + 2 >= n or toks[i + 2].kind != "NUMBER":
                return None
            hi = toks[i + 2]
            atoms.append(
                Atom("range", f"{tok.text}..{hi.text}", tok.line, tok.column, tok.start, hi.end)
            )
            i += 3
            continue
        atoms.append(tok)
        i += 1
    return atoms


def _items(toks: list[Atom], build: ToLines) -> tuple[Item, ...] | None:
    """A cell's items, split at the separators, or None if the cell is not `items`."""
    out: list[Item] = []
    start = 0
    for k in range(len(toks) + 1):
        if k == len(toks) or toks[k].kind == "_SEP":
            atoms = _atoms(toks[start:k], build)
            if not atoms:
                return None
            out.append(build.item(atoms))
            start = k + 1
    return build.items(out)


def fast_row(text: str, line: int, offset: int) -> RawRow | None:
    """A table row read without Lark, or None when this reader is not sure it is one."""
    _, _, separator = _row_scanner()
    stripped = text.lstrip(" \t\f")
    if not stripped.startswith("|") or separator.match(text, len(text) - len(stripped)):
        return None
    toks = _tokens(text, line, offset)
    if not toks or toks[0].kind != "PIPE":
        return None
    build = ToLines()
    children: list[Any] = []
    cell: list[Atom] = []
    pipes = 0
    for tok in [*toks, None]:
        if tok is None or tok.kind == "PIPE":
            if cell:
                items = _items(cell, build)
                if items is None:
                    return None
                children.append(items)
                cell = []
            if tok is not None:
                children.append(_Pipe(line, tok.start, tok.end, tok.column + 1))
                pipes += 1
        else:
            cell.append(tok)
    return _row(children) if pipes >= 2 else None


def lines(text: str, fast: bool = True) -> list[object]:
    """Every line of the spec as a Header, RawRow, Caption or Separator, in order; `fast=False`
    has Lark read the rows too (the tests compare the two). Raises Lark's UnexpectedInput on a
    syntax error (parser.py turns it into ours)."""
    _STATE.source = text
    collecting = gc.isenabled()
    gc.disable()  # a cycle collection every 700 new objects would double the time; none are cycles
    try:
        taken: dict[int, RawRow] = {}
        masked: list[str] = []
        offset = 0
        for number, raw in enumerate(text.split("\n"), 1):
            body = raw[:-1] if raw.endswith("\r") else raw
            row = fast_row(body, number, offset) if fast and "|" in body else None
            if row is not None:
                taken[number] = row
                raw = " " * len(body) + raw[len(body) :]  # a blank line to Lark
            masked.append(raw)
            offset += len(raw) + 1
        parsed = _lark().parse("\n".join(masked) if taken else text)
        assert isinstance(parsed, list)
        if not taken:
            return parsed
        merged: list[Any] = [*parsed, *taken.values()]
        merged.sort(key=lambda x: x.line)  # every line kind has its line: document order
        return merged
    finally:
        _STATE.source = None
        if collecting:
            gc.enable()
