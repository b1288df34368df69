"""Header values -> IR: `transform:`, `sampler:`, `at:` and `input:`.

A mixin of the interpreter (interpret.py) over `Words`: a header of a kind word and options
(`transform: tps 20, translation 0.5`), a setting given twice (an error at the second, naming
the first), the transform kinds and their bounds, the placement, the input size.

This module is not: the layer words (words.py) or the table (cells.py).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from lstndsl import catalog, ir, transforms
from lstndsl.document import Atom, Header, Item
from lstndsl.words import BAD, Words

TRANSFORM_OPTIONS: dict[str, tuple[str, Any]] = {
    "scale": ("scale", None),
    "translation": ("translation", None),
    "shift": ("translation", None),
    "angle": ("angle", None),
}
#: a backbone module name as `named_modules()` spells it: layer2, features.3, stages.1
_MODULE_NAME = re.compile(r"[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)*")
SAMPLER_WORDS = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic"}
SAMPLER_OPTIONS: dict[str, tuple[str, Any]] = {
    "padding": ("padding_mode", None),
    "padding mode": ("padding_mode", None),
    "align corners": ("align_corners", None),
    "mode": ("mode", None),
}


class Headers(Words):
    """Interprets header values."""

    # header values --------------------------------------------------------------------

    def _settings(
        self,
        header: Header,
        kinds: dict[str, str],
        kind_field: str,
        options: dict[str, tuple[str, Any]],
        listed: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Item]] | None:
        """A header of a kind word and options (`transform:`, `sampler:`). `listed` is what
        an unknown word's error lists (default: every kind and option word)."""
        fields: dict[str, Any] = {"pos": header.value_pos}
        src: dict[str, Item] = {}
        vocab = {catalog.normalize(k): v for k, v in options.items()}
        kind_vocab = {catalog.normalize(k): v for k, v in kinds.items()}
        ok = True
        for item in header.items:
            words, values = self._split(item)
            kind, rest = self._match(words, kind_vocab)
            if kind is not None and kind in transforms.WITH_POINTS and kind_field == "kind":
                assert rest is not None
                points = self._tps_points(item, rest + values)
                if points is None:
                    ok = False
                    continue
                ok = self._set(fields, src, kind_field, kind, item) and ok
                ok = self._set(fields, src, "points", points, item) and ok
                continue
            if kind is not None and not rest and not values:
                ok = self._set(fields, src, kind_field, kind, item) and ok
                continue
            option, rest = self._match(words, vocab)
            if option is None:
                phrase = " ".join(a.text for a in words) or item.text
                self.error(
                    f"unknown {header.key} setting '{phrase}'",
                    item.pos,
                    _suggest(phrase, {**kinds, **{k: v[0] for k, v in options.items()}})
                    or f"expected one of: {listed or ', '.join(dict.fromkeys([*kinds, *options]))}",
                    code="unknown-word",
                )
                ok = False
                continue
            assert rest is not None
            value = self._option_value(item, option[0], option[1], rest + values)
            if value is BAD:
                ok = False
                continue
            ok = self._set(fields, src, option[0], value, item) and ok
        return (fields, src) if ok else None

    def _set(
        self, fields: dict[str, Any], src: dict[str, Item], name: str, value: Any, item: Item
    ) -> bool:
        """Set a header field once: a second setting is an error naming the first."""
        if name in src:
            first = src[name]
            self.error(
                f"'{item.text}' sets the {name.replace('_', ' ')} again",
                item.pos,
                f"it was set by '{first.text}' at column {first.pos.column}; keep one",
                code="conflict",
            )
            return False
        fields[name] = value
        src[name] = item
        return True

    def _tps_points(self, item: Item, values: list[Atom]) -> tuple[int, int] | None:
        """`tps N` (N even, at least 4: RARE's N/2 fiducials along the top edge and N/2 along
        the bottom, the grid (2, N/2)) or `tps RxC` (an R×C grid, R and C at least 2)."""
        if len(values) == 1 and values[0].kind == "DIMS" and len(values[0].value) == 2:
            rows, cols = values[0].value
            if min(rows, cols) < 2:
                self.error(
                    f"'{item.text}': a tps grid needs at least 2 control points per side",
                    item.pos,
                    f"write e.g. 'tps {max(rows, 2)}x{max(cols, 2)}'",
                    code="bad-value",
                )
                return None
            return (rows, cols)
        if len(values) == 1 and isinstance(values[0].value, int):
            n = values[0].value
            if n < 4:
                self.error(
                    f"'{item.text}': a tps transform needs at least 4 control points",
                    item.pos,
                    "write 'tps 4' (2 along the top edge, 2 along the bottom) or more,"
                    " e.g. RARE's 'tps 20'",
                    code="bad-value",
                )
                return None
            if n % 2:
                self.error(
                    f"'{item.text}': the number of tps control points must be even"
                    " (half along the top edge, half along the bottom)",
                    item.pos,
                    f"write 'tps {n - 1}' or 'tps {n + 1}', or a grid such as 'tps 3x4'",
                    code="bad-value",
                )
                return None
            return (2, n // 2)
        written = " ".join(a.text for a in values)
        self.error(
            f"'{item.text}': tps takes its control points"
            + (f", not '{written}'" if written else ""),
            item.pos,
            "write 'tps N' (N even: RARE's 20 fiducials are 'tps 20') or a grid 'tps RxC'"
            " such as 'tps 4x4'",
            code="bad-value",
        )
        return None

    def transform(self, header: Header) -> ir.Transform:
        """`transform: KIND[, bounds]`: affine, translation, similarity, projective, rotation
        (`angle` bound in degrees), tps N or tps RxC (`translation` bound per control point)."""
        got = self._settings(
            header, transforms.WORDS, "kind", TRANSFORM_OPTIONS, transforms.listed()
        )
        if got is None:
            return ir.Transform()
        fields, src = got
        kind = fields.get("kind", "affine")
        for name in transforms.BOUNDS:
            why = transforms.misplaced(kind, name)
            if why is not None and name in src:
                self.error(
                    f"'{src[name].text}' does not apply to {_article(kind)} {kind} transform",
                    src[name].pos,
                    why,
                    code="bad-value",
                )
                return ir.Transform()
        if isinstance(fields.get("translation"), tuple):
            self.error(
                "the translation bound is one number, |t| ≤ bound",
                src["translation"].pos,
                code="bad-value",
            )
        elif isinstance(fields.get("scale"), int | float):
            self.error(
                "the scale bound is a range, e.g. 'scale 0.5..2'",
                src["scale"].pos,
                code="bad-value",
            )
        elif isinstance(fields.get("angle"), tuple):
            self.error(
                "the angle bound is one number of degrees, |α| ≤ bound",
                src["angle"].pos,
                code="bad-value",
            )
        else:
            return self._model(ir.Transform, fields, src) or ir.Transform()
        return ir.Transform()

    def sampler(self, header: Header) -> ir.Sampler:
        """`sampler: bilinear, padding zeros, align corners false`."""
        got = self._settings(header, SAMPLER_WORDS, "mode", SAMPLER_OPTIONS)
        sampler: ir.Sampler | None = self._model(ir.Sampler, *got) if got is not None else None
        return sampler or ir.Sampler()

    def placement(self, header: Header) -> tuple[str, ir.Pos | None]:
        """`at: input` or `at: NAME`, a backbone module as `named_modules()` spells it. Only the
        form is checked here: whether the backbone has that module is the compiler's to say."""
        atoms = [a for i in header.items for a in i.atoms]
        text = header.text
        if len(atoms) == 1 and atoms[0].kind in ("WORD", "NUMBER") and _MODULE_NAME.fullmatch(text):
            return ("input" if text.lower() == "input" else text), header.value_pos
        self.error(
            f"cannot read the placement '{text}'" if text else "the 'at:' header is empty",
            header.value_pos,
            "write 'at: input' (the default: in front of the backbone) or a backbone module"
            " name as named_modules() spells it, e.g. 'at: layer2' or 'at: features.3'",
            code="bad-header",
        )
        return "input", None

    def input_size(self, header: Header) -> ir.InputSize | None:
        atoms = [a for i in header.items for a in i.atoms]
        hint = "write H×W×C, e.g. 'input: 224x224x3'"
        if len(atoms) != 1 or atoms[0].kind not in {"DIMS", "NUMBER"}:
            self.error(
                f"cannot read input size '{header.text}'", header.value_pos, hint, "bad-header"
            )
            return None
        value = atoms[0].value
        dims = (value,) if isinstance(value, int) else value
        if not isinstance(dims, tuple) or len(dims) not in (1, 2, 3):
            self.error(
                f"cannot read input size '{header.text}'", header.value_pos, hint, "bad-header"
            )
            return None
        h, w, c = (dims[0], dims[0], 3) if len(dims) == 1 else (*dims[:2], 3)
        if len(dims) == 3:
            c = dims[2]
        if min(h, w, c) < 1:
            self.error(
                f"input size '{header.text}' has a zero dimension",
                header.value_pos,
                code="bad-header",
            )
            return None
        return ir.InputSize(
            height=h, width=w, channels=c, channels_written=len(dims) == 3, pos=header.value_pos
        )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _suggest(phrase: str, words: dict[str, str]) -> str | None:
    """Did-you-mean over `words` (spelling -> what it means), one spelling per meaning: 'rotate'
    and 'rotation' are one suggestion, not two."""
    close = difflib.get_close_matches(phrase.lower(), [w.lower() for w in words], n=6, cutoff=0.6)
    by_lower = {w.lower(): w for w in words}
    picked: dict[str, str] = {}
    for c in close:
        picked.setdefault(words[by_lower[c]], by_lower[c])
    if not picked:
        return None
    return "did you mean " + " or ".join(f"'{w}'" for w in list(picked.values())[:3]) + "?"
