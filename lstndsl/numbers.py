"""Every number of a spec, checked before any word is interpreted: what torch can hold.

`number_errors(doc)` looks at each NUMBER, DIMS and range atom of the header values and table
cells as written, without converting a 100,000-digit number (Python refuses that: its
int-string limit), and returns one error per bad number at its cell:

- a float outside float32 (|x| > 3.4e38, or `1e999`, which Python reads as infinity): torch
  holds bounds, slopes and rates in float32, where it becomes inf and θ becomes NaN;
- a non-zero float below float32's smallest normal number (`1e-300`): it becomes 0 there, and a
  bound of 0 divides by zero;
- a whole number too large to be a size (more than 2^31 − 1) anywhere but a Parameters cell;
  a Parameters cell holds at most 18 digits.

This module is not: what a number means for its field (interpret.py, ir.py), or whether a size
fits in memory (compiler/guard.py).
"""

from __future__ import annotations

import re

from lstndsl.document import Atom, Document, Item
from lstndsl.errors import Diagnostic

FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38
"""float32's smallest normal number."""
MAX_SIZE = 2**31 - 1
MAX_COUNT_DIGITS = 18
_INTEGER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def _digits(text: str) -> str:
    return text.replace(",", "")


def _float_problem(text: str) -> str | None:
    value = float(text)  # never raises on a NUMBER; a huge one is inf
    if abs(value) > FLOAT32_MAX:
        return (
            f"'{_short(text)}' is outside float32's range (at most 3.4e38), where torch holds"
            " it: it would become infinity"
        )
    if value != 0 and abs(value) < FLOAT32_TINY:
        return (
            f"'{_short(text)}' is below float32's smallest normal number (1.2e-38), where torch"
            " holds it: it would become 0"
        )
    return None


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:10]}…{text[-6:]} ({len(text)} characters)"


def _integer_problem(text: str, count: bool) -> str | None:
    digits = _digits(text)
    if count:
        if len(digits.lstrip("0")) > MAX_COUNT_DIGITS:
            return f"'{_short(text)}' has more than {MAX_COUNT_DIGITS} digits: not a count"
        return None
    if len(digits.lstrip("0")) > 10 or int(digits) > MAX_SIZE:
        return f"'{_short(text)}' is too large for a size or setting (at most 2^31 − 1)"
    return None


def atom_problem(atom: Atom, count: bool = False) -> str | None:
    """What is wrong with one atom's number(s), or None. `count`: a Parameters cell."""
    if atom.kind == "NUMBER":
        if _INTEGER.fullmatch(atom.text):
            return _integer_problem(atom.text, count)
        if "e" in atom.text.lower() and not count:
            value = float(atom.text)
            if value.is_integer() and abs(value) > MAX_SIZE:
                # `stride 1e20`: a whole number, but not one a size can be
                return _float_problem(atom.text) or (
                    f"'{atom.text}' is too large for a size or setting (at most 2^31 − 1)"
                )
        return _float_problem(atom.text)
    if atom.kind == "DIMS":
        for n in re.findall(r"\d+", atom.text):
            problem = _integer_problem(n, count=False)
            if problem:
                return problem
        return None
    if atom.kind == "range":
        for side in atom.text.split(".."):
            problem = _float_problem(side)
            if problem:
                return problem
    return None


def number_errors(doc: Document, params_column: int | None = None) -> list[Diagnostic]:
    """One error per number torch cannot hold, at its atom. `params_column`: the index of the
    Parameters column, whose cells are counts (up to 18 digits), not sizes."""
    diags: list[Diagnostic] = []

    def scan(items: tuple[Item, ...], count: bool) -> None:
        for item in items:
            for atom in item.atoms:
                problem = atom_problem(atom, count)
                if problem:
                    width = max(1, atom.end - atom.start)
                    diags.append(
                        Diagnostic(
                            "error",
                            problem,
                            doc.path,
                            atom.line,
                            atom.column,
                            "write a number float32 can hold" if "float32" in problem else None,
                            width,
                            "bad-number",
                        )
                    )

    for header in doc.headers:
        scan(header.items, count=False)
    for row in doc.rows[1:]:
        for i, cell in enumerate(row.cells):
            scan(cell.items, count=i == params_column)
    return diags
