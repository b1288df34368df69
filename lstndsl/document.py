"""The raw document: a spec's header lines and table rows as cells of items of atoms, each
with its source position, nothing interpreted yet (the parser makes it, interpret.py reads it,
fmt rewrites it).

Plain dataclasses; this module imports nothing of lstndsl but the IR's positions, so both the
parser and the interpreter can import it (no import circle).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lstndsl import ir


class Atom(NamedTuple):
    """One word, number, dimension list, dash or range (a tuple: 280,000 of them in a hostile
    spec are made in a fraction of a second)."""

    kind: str  # WORD NUMBER DIMS DASH range
    text: str
    line: int
    column: int
    start: int
    end: int

    @property
    def value(self) -> Any:
        """The atom as a Python value: int/float, a tuple of dims, a (lo, hi) range, a word."""
        if self.kind == "NUMBER":
            text = self.text.replace(",", "")
            return int(text) if re.fullmatch(r"\d+", text) else float(text)
        if self.kind == "DIMS":
            return tuple(int(n) for n in re.findall(r"\d+", self.text))
        if self.kind == "range":
            lo, hi = self.text.split("..")
            return (float(lo), float(hi))
        return self.text


@dataclass(frozen=True)
class Item:
    atoms: tuple[Atom, ...]
    text: str

    @property
    def pos(self) -> ir.Pos:
        first, last = self.atoms[0], self.atoms[-1]
        width = last.end - first.start if last.line == first.line else len(first.text)
        return ir.Pos(line=first.line, column=first.column, width=max(1, width))


@dataclass(frozen=True)
class RawCell:
    items: tuple[Item, ...]
    text: str
    """The cell's content as written, trimmed."""
    line: int
    column: int

    @property
    def pos(self) -> ir.Pos:
        return ir.Pos(line=self.line, column=self.column, width=max(1, len(self.text)))

    @property
    def empty(self) -> bool:
        return not self.items or all(a.kind == "DASH" for i in self.items for a in i.atoms)


@dataclass(frozen=True)
class RawRow:
    line: int
    cells: tuple[RawCell, ...]


@dataclass(frozen=True)
class Header:
    key: str
    """The key as written."""
    items: tuple[Item, ...]
    text: str
    """The value as written (for `name:`, the name)."""
    line: int
    column: int
    value_column: int

    @property
    def pos(self) -> ir.Pos:
        return ir.Pos(line=self.line, column=self.column, width=len(self.key))

    @property
    def value_pos(self) -> ir.Pos:
        return ir.Pos(line=self.line, column=self.value_column, width=max(1, len(self.text)))


@dataclass
class Document:
    path: str
    source: str
    headers: list[Header] = field(default_factory=list)
    caption: tuple[str, int] | None = None
    rows: list[RawRow] = field(default_factory=list)
    """Every table row, the column header row included, in order."""
    separator_lines: list[int] = field(default_factory=list)
