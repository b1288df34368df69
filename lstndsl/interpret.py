"""Document -> IR: what the words of a spec mean.

The parser (parser.py) gives cells and header values as items of words and numbers; this
module interprets them through the catalog's vocabulary: layer words and options become IR
layers, table columns are matched by name, Filter Shape is folded into each row's primary
layer, header defaults are applied. Every problem is collected, and all are raised together
as one `SpecInputError` (exit 2), each at its item's line and column.

This module does not infer shapes or check declared numbers (check.py does).
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lstndsl import catalog, ir
from lstndsl.errors import Diagnostic, SpecInputError, did_you_mean
from lstndsl.numbers import number_errors
from lstndsl.parser import Atom, Document, Header, Item, RawCell, RawRow

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

TRANSFORM_WORDS = {
    "affine": "affine",
    "translation": "translation",
    "shift": "translation",
    "similarity": "similarity",
    "projective": "projective",
    "homography": "projective",
    "perspective": "projective",
    "rotation": "rotation",
    "rotate": "rotation",
    "tps": "tps",
    "thin plate spline": "tps",
    "thin plate splines": "tps",
}
#: transform kinds that take a value (`tps 20`, `tps 4x4`)
TRANSFORM_VALUES = {"tps": "points"}
TRANSFORM_OPTIONS: dict[str, tuple[str, Any]] = {
    "scale": ("scale", None),
    "translation": ("translation", None),
    "shift": ("translation", None),
    "angle": ("angle", None),
}
#: what the transform header's error lists: each kind once (as it is written), then the bounds
TRANSFORM_KIND_NAMES = ("affine", "translation", "similarity", "projective", "rotation", "tps N")
TRANSFORM_BOUND_NAMES = ("scale LO..HI", "translation B", "angle DEGREES")
#: a backbone module name as `named_modules()` spells it: layer2, features.3, stages.1
_MODULE_NAME = re.compile(r"[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)*")
SAMPLER_WORDS = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic"}
SAMPLER_OPTIONS: dict[str, tuple[str, Any]] = {
    "padding": ("padding_mode", None),
    "padding mode": ("padding_mode", None),
    "align corners": ("align_corners", None),
    "mode": ("mode", None),
}

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _word_value(value: Any) -> Any:
    if isinstance(value, str):
        return _BOOL_WORDS.get(value.lower(), value.lower())
    return value


class _Builder:
    """Interprets a Document, collecting every problem before raising."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.diags: list[Diagnostic] = []

    def error(self, message: str, pos: ir.Pos, hint: str | None = None, code: str = "") -> None:
        self.diags.append(
            Diagnostic("error", message, self.doc.path, pos.line, pos.column, hint, pos.width, code)
        )

    # items -> layers ----------------------------------------------------------------------

    def _split(self, item: Item) -> tuple[list[Atom], list[Atom]]:
        words: list[Atom] = []
        for atom in item.atoms:
            if atom.kind != "WORD":
                break
            words.append(atom)
        return words, list(item.atoms[len(words) :])

    def _match(
        self, words: list[Atom], vocab: dict[str, Any]
    ) -> tuple[Any, list[Atom]] | tuple[None, None]:
        """Longest prefix of `words` that is a phrase of `vocab`; the rest become values."""
        for n in range(len(words), 0, -1):
            phrase = catalog.normalize(" ".join(a.text for a in words[:n]))
            if phrase in vocab:
                return vocab[phrase], words[n:]
        return None, None

    def layers(self, items: tuple[Item, ...], where: str) -> list[Any]:
        """Interpret a chain of items (a Type cell or the head) as layers with their options."""
        layers: list[dict[str, Any]] = []  # field dicts, "kind" and "pos" included
        sources: list[dict[str, Item]] = []  # per layer: field -> the item that set it
        pending: list[tuple[Item, str, Any]] = []  # options written before any layer
        ok = True
        for item in items:
            words, values = self._split(item)
            if not words:
                self.error(
                    f"'{item.text}' is not a layer or an option",
                    item.pos,
                    "name the layer first, e.g. 'Conv' or 'fc 32'",
                    code="unknown-word",
                )
                ok = False
                continue
            kind, rest = self._match(words, catalog.KIND_WORDS)
            if kind is not None:
                assert rest is not None
                values = rest + values
                entry = catalog.CATALOG[kind]
                fields: dict[str, Any] = {"kind": kind, "pos": item.pos}
                src: dict[str, Item] = {}
                if values and self._joined(item, values):
                    ok = False
                elif values:
                    if entry.value is None or len(values) > 1:
                        self.error(
                            f"'{catalog.canonical_word(kind)}' takes "
                            + ("no value" if entry.value is None else "one value")
                            + f", not '{' '.join(a.text for a in values)}'",
                            item.pos,
                            code="bad-value",
                        )
                        ok = False
                    else:
                        fields[entry.value] = _word_value(values[0].value)
                        src[entry.value] = item
                layers.append(fields)
                sources.append(src)
                for p_item, f_name, f_value in pending:
                    if f_name in entry.model.model_fields:
                        fields[f_name] = f_value
                        src[f_name] = p_item
                    else:
                        self._not_applicable(p_item, f_name, [fields])
                        ok = False
                pending = []
                continue
            # an option: the nearest preceding layer that takes it, else the next one
            targets = list(reversed(range(len(layers))))
            found = False
            for idx in targets:
                vocab = catalog.CATALOG[layers[idx]["kind"]].vocabulary()
                option, rest = self._match(words, vocab)
                if option is None:
                    continue
                assert rest is not None
                name, fixed = option
                value = (
                    _BAD
                    if self._joined(item, rest + values)
                    else self._option_value(item, name, fixed, rest + values)
                )
                if value is _BAD:
                    ok = False
                elif name in sources[idx]:
                    self.error(
                        f"'{item.text}' sets {name.replace('_', ' ')} again",
                        item.pos,
                        f"it was set by '{sources[idx][name].text}'",
                        code="duplicate-option",
                    )
                    ok = False
                else:
                    layers[idx][name] = value
                    sources[idx][name] = item
                found = True
                break
            if found:
                continue
            option, rest = self._match(words, _every_option())
            if option is not None and not layers:
                assert rest is not None
                value = self._option_value(item, option[0], option[1], rest + values)
                if value is not _BAD:
                    pending.append((item, option[0], value))
                continue
            if option is not None:
                self._not_applicable(item, option[0], layers)
            elif self._not_supported(words, item, where):
                if not layers:
                    return []
            else:
                phrase = " ".join(a.text for a in words)
                kind_words = [w for e in catalog.CATALOG.values() for w in e.words]
                option_words = [k for e in catalog.CATALOG.values() for k in e.options]
                self.error(
                    f"unknown {where} word '{phrase}'",
                    item.pos,
                    did_you_mean(phrase, kind_words)  # a layer first, then an option
                    or did_you_mean(phrase, option_words)
                    or f"layer words: {_layer_words()}",
                    code="unknown-word",
                )
                if not layers:  # the unknown word was the layer: its options have no owner
                    return []
            ok = False
        for p_item, f_name, _ in pending:
            self._not_applicable(p_item, f_name, layers)
            ok = False
        if not ok:
            return []
        built: list[Any] = []
        for fields, src in zip(layers, sources, strict=True):
            layer = self._model(catalog.CATALOG[fields["kind"]].model, fields, src)
            if layer is None:
                return []
            built.append(layer)
        return built

    def _not_supported(self, words: list[Atom], item: Item, where: str) -> bool:
        """A torch layer lstndsl has no kind for: say so, and suggest no other layer."""
        for n in range(len(words), 0, -1):
            phrase = " ".join(a.text for a in words[:n])
            if catalog.normalize(phrase) in catalog.NOT_SUPPORTED:
                self.error(
                    f"'{phrase}' is a torch layer lstndsl has no {where} kind for",
                    item.pos,
                    f"layer words: {_layer_words()}",
                    code="unknown-word",
                )
                return True
        return False

    def _joined(self, item: Item, values: list[Atom]) -> bool:
        """Report `Conv relu` or `stride 2 padding 1`: a layer or option word among the values
        of one item means a missing ',' or '+'. Returns whether it reported."""
        for j, atom in enumerate(values):
            if atom.kind != "WORD" or (j and values[j - 1].kind == "WORD"):
                continue
            run = list(itertools.takewhile(lambda a: a.kind == "WORD", values[j:]))
            if all(self._match(run, v)[0] is None for v in (catalog.KIND_WORDS, _every_option())):
                continue
            k = item.atoms.index(atom)
            if k == 0:
                continue
            source = self.doc.source
            before = source[item.atoms[0].start : item.atoms[k - 1].end]
            after = source[atom.start : item.atoms[-1].end]
            self.error(
                f"'{item.text}' runs two items together",
                item.pos,
                f"separate them with ',' or '+': '{before}, {after}'",
                code="missing-separator",
            )
            return True
        return False

    def _option_value(self, item: Item, name: str, fixed: Any, values: list[Atom]) -> Any:
        if fixed is not None:
            if values:
                self.error(f"'{item.text}' takes no value", item.pos, code="bad-value")
                return _BAD
            return fixed
        if not values:
            return True  # `ceil mode`, `bias`, `align corners`
        if len(values) > 1:
            self.error(
                f"'{item.text}': one value expected for {name.replace('_', ' ')}",
                item.pos,
                code="bad-value",
            )
            return _BAD
        return _word_value(values[0].value)

    def _not_applicable(self, item: Item, name: str, layers: list[dict[str, Any]]) -> None:
        takers = sorted(
            catalog.canonical_word(e.kind)
            for e in catalog.CATALOG.values()
            if name in e.model.model_fields and name != "kind"
        )
        present = ", ".join(catalog.canonical_word(f["kind"]) for f in layers)
        self.error(
            f"'{item.text}' does not apply to {present}"
            if present
            else f"'{item.text}' is an option, but no layer is named",
            item.pos,
            f"it is an option of {', '.join(takers)}" if takers else None,
            code="bad-option",
        )

    def _model(self, model: type[Any], fields: dict[str, Any], src: dict[str, Item]) -> Any:
        try:
            return model(**fields)
        except ValidationError as err:
            reported: set[tuple[str, str]] = set()
            for e in err.errors():
                name = str(e["loc"][0]) if e["loc"] else ""
                pos = src[name].pos if name in src else fields.get("pos")
                what = name.replace("_", " ")
                shown = src[name].text if name in src else what
                message = f"'{shown}': {what} {_pydantic_message(e)}"
                if (name, message) in reported:  # `stride 0`: one error, not one per side
                    continue
                reported.add((name, message))
                self.error(message, pos or ir.Pos(line=1, column=1), code="bad-value")
            return None

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
            if kind is not None and kind in TRANSFORM_VALUES and kind_field == "kind":
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
            if value is _BAD:
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
        listed = (
            f"transform kinds {', '.join(TRANSFORM_KIND_NAMES)};"
            f" bounds {', '.join(TRANSFORM_BOUND_NAMES)}"
        )
        got = self._settings(header, TRANSFORM_WORDS, "kind", TRANSFORM_OPTIONS, listed)
        if got is None:
            return ir.Transform()
        fields, src = got
        kind = fields.get("kind", "affine")
        misplaced = {
            "scale": kind in ("translation", "rotation", "tps"),
            "translation": kind == "rotation",
            "angle": kind != "rotation",
        }
        fixes = {
            "scale": f"a {kind} transform has no scale to bound; remove it"
            + (" (tps: 'translation B' bounds how far each control point moves)" * (kind == "tps")),
            "translation": "a rotation turns about the center and has no translation; remove"
            " it, or use 'similarity' for rotation, scale and shift",
            "angle": "an angle bound belongs to 'rotation' (e.g. 'rotation, angle 45')",
        }
        for name, wrong in misplaced.items():
            if wrong and name in src:
                self.error(
                    f"'{src[name].text}' does not apply to {_article(kind)} {kind} transform",
                    src[name].pos,
                    fixes[name],
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
        return ir.InputSize(height=h, width=w, channels=c, pos=header.value_pos)

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
                f"the Type cell says {_shown(getattr(primary, name))},"
                f" the Filter Shape {_shown(updates[name])}",
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
        seps = self.doc.separator_lines
        has_delimiter = bool(seps) and seps[0] == header_row.line + 1
        if not has_delimiter:
            self.error(
                "the table's header row must be followed by a delimiter row",
                ir.Pos(line=header_row.line, column=1),
                "add |---|---|---|---| on the next line",
                code="bad-table",
            )
        for extra in seps[1:]:
            self.error(
                "a second delimiter row; a spec has one table",
                ir.Pos(line=extra, column=1),
                code="bad-table",
            )
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
        seen: dict[str, Header] = {}
        keys = sorted(set(HEADER_KEYS.values()))
        guessed: set[str] = set()  # keys an unknown header was probably meant to be
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
        top = ir.Pos(line=1, column=1)
        name = seen["name"].text if "name" in seen else ""
        if not name and self.doc.caption:
            name = re.sub(r"^table\s+\w+\s*[.:]\s*", "", self.doc.caption[0], flags=re.I)
        if not name:
            name = Path(self.doc.path).stem

        input_size = self.input_size(seen["input"]) if "input" in seen else None
        if "input" not in seen and "input" not in guessed:
            self.error(
                "the spec has no 'input:' header",
                top,
                "add the input size as H×W×C, e.g. 'input: 224x224x3'",
                code="bad-header",
            )
        default_act = None
        if "activation" in seen:
            acts = self.layers(seen["activation"].items, "activation")
            if len(acts) != 1 or not catalog.is_activation(acts[0].kind):
                if acts:
                    self.error(
                        f"'{seen['activation'].text}' is not one activation",
                        seen["activation"].value_pos,
                        "e.g. 'activation: relu'",
                        code="bad-header",
                    )
            else:
                default_act = acts[0]
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
        sampler = ir.Sampler()
        if "sampler" in seen:
            got = self._settings(seen["sampler"], SAMPLER_WORDS, "mode", SAMPLER_OPTIONS)
            if got is not None:
                sampler = self._model(ir.Sampler, *got) or sampler
        rows, total, total_pos = self.table(default_act)
        if self.diags or input_size is None:
            return None
        return ir.Spec(
            name=name,
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


@functools.cache
def _every_option() -> dict[str, tuple[str, Any]]:
    """Every option word of every layer kind (normalized) -> (field, fixed value)."""
    return {k: v for e in catalog.CATALOG.values() for k, v in e.vocabulary().items()}


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


def _shown(value: Any) -> str:
    """A field value as a spec would write it: (3, 3) -> 3×3."""
    if isinstance(value, tuple):
        return "×".join(str(v) for v in value)
    return str(value)


def _layer_words() -> str:
    return ", ".join(sorted(catalog.canonical_word(k) for k in catalog.CATALOG))


class _Bad:
    pass


_BAD = _Bad()


def _pydantic_message(e: Any) -> str:
    kind = e.get("type", "")
    ctx = e.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "greater_than":
        return f"must be more than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind.startswith("int") or kind.startswith("float"):
        return "must be a number" + (" (a whole one)" if kind.startswith("int") else "")
    if kind.startswith("bool"):
        return "must be true or false"
    if kind == "value_error" and ctx.get("error") is not None:
        return str(ctx["error"])  # our validators' own words (ir.py)
    if kind.startswith("tuple") or kind == "too_long" or kind == "too_short":
        return "must be one number or two (H×W)"
    return str(e.get("msg", "is not valid")).lower()


def build_spec(doc: Document) -> ir.Spec:
    """Interpret a parsed Document. Raises SpecInputError with every problem found."""
    builder = _Builder(doc)
    spec = builder.spec()
    if spec is None:
        raise SpecInputError(builder.diags, doc.source)
    return spec
