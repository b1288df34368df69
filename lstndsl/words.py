"""Items -> IR layers: what the words of a Type cell, the head and the header activation mean.

`Words` is the base of the interpreter (interpret.py): it holds the Document and the
diagnostics, and turns a chain of items (`Conv, stride 2 + BN`) into IR layers through the
catalog's vocabulary: layer words, their options in any order, a bare value (`fc 32`),
options written before their layer. Every problem is collected at its item's position.

This module is not: headers (headers.py), table cells (cells.py) or the whole spec
(interpret.py).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lstndsl import catalog, ir
from lstndsl.document import Atom, Document, Item
from lstndsl.errors import Diagnostic, did_you_mean

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def word_value(value: Any) -> Any:
    if isinstance(value, str):
        return _BOOL_WORDS.get(value.lower(), value.lower())
    return value


def _longest(vocab: dict[str, Any]) -> int:
    """The longest normalized phrase in `vocab`, in characters."""
    return max(map(len, vocab), default=0)


@dataclass
class _Chain:
    """The layers of one chain of items as they are read: field dicts ("kind" and "pos"
    included), the item that set each field, and options written before any layer."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Item]] = field(default_factory=list)
    pending: list[tuple[Item, str, Any]] = field(default_factory=list)


class Words:
    """Interprets items as layers, collecting every problem."""

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
        """Longest prefix of `words` that is a phrase of `vocab`; the rest become values.
        No phrase has more words than characters, so a 50,000-word item tries only as many
        prefixes as the longest phrase has letters (linear, not quadratic)."""
        for n in range(min(len(words), _longest(vocab)), 0, -1):
            phrase = catalog.normalize(" ".join(a.text for a in words[:n]))
            if phrase in vocab:
                return vocab[phrase], words[n:]
        return None, None

    def layers(self, items: tuple[Item, ...], where: str) -> list[Any]:
        """Interpret a chain of items (a Type cell or the head) as layers with their options."""
        chain = _Chain()
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
                ok = self._start_layer(chain, item, kind, rest + values) and ok
                continue
            # an option: the nearest preceding layer that takes it, else the next one
            attached = self._attach(chain, item, words, values)
            if attached is not None:
                ok = attached and ok
                continue
            if self._pending(chain, item, words, values):
                continue
            if self._stray(chain, item, words, where) and not chain.layers:
                return []  # the unknown word was the layer: its options have no owner
            ok = False
        for p_item, f_name, _ in chain.pending:
            self._not_applicable(p_item, f_name, chain.layers)
            ok = False
        return self._build(chain) if ok else []

    def _start_layer(self, chain: _Chain, item: Item, kind: str, values: list[Atom]) -> bool:
        """A layer word and its value (`fc 32`); options written before it now apply to it."""
        entry = catalog.CATALOG[kind]
        fields: dict[str, Any] = {"kind": kind, "pos": item.pos}
        src: dict[str, Item] = {}
        ok = True
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
                fields[entry.value] = word_value(values[0].value)
                src[entry.value] = item
        chain.layers.append(fields)
        chain.sources.append(src)
        for p_item, f_name, f_value in chain.pending:
            if f_name in entry.model.model_fields:
                fields[f_name] = f_value
                src[f_name] = p_item
            else:
                self._not_applicable(p_item, f_name, [fields])
                ok = False
        chain.pending = []
        return ok

    def _attach(
        self, chain: _Chain, item: Item, words: list[Atom], values: list[Atom]
    ) -> bool | None:
        """An option for the nearest preceding layer that takes it: whether it was fine, or
        None when no layer so far takes it."""
        for idx in reversed(range(len(chain.layers))):
            vocab = catalog.CATALOG[chain.layers[idx]["kind"]].vocabulary()
            option, rest = self._match(words, vocab)
            if option is None:
                continue
            assert rest is not None
            name, fixed = option
            value = (
                BAD
                if self._joined(item, rest + values)
                else self._option_value(item, name, fixed, rest + values)
            )
            if value is BAD:
                return False
            if name in chain.sources[idx]:
                self.error(
                    f"'{item.text}' sets {name.replace('_', ' ')} again",
                    item.pos,
                    f"it was set by '{chain.sources[idx][name].text}'",
                    code="duplicate-option",
                )
                return False
            chain.layers[idx][name] = value
            chain.sources[idx][name] = item
            return True
        return None

    def _pending(self, chain: _Chain, item: Item, words: list[Atom], values: list[Atom]) -> bool:
        """An option before any layer (`stride 2, conv`) waits for the next layer. Whether
        the item was such an option."""
        if chain.layers:
            return False
        option, rest = self._match(words, _every_option())
        if option is None:
            return False
        assert rest is not None
        value = self._option_value(item, option[0], option[1], rest + values)
        if value is not BAD:
            chain.pending.append((item, option[0], value))
        return True

    def _stray(self, chain: _Chain, item: Item, words: list[Atom], where: str) -> bool:
        """An option no layer of the chain takes, or an unknown word: report it. Whether the
        chain must stop (a word that was meant to be the layer)."""
        option, _ = self._match(words, _every_option())
        if option is not None:
            self._not_applicable(item, option[0], chain.layers)
            return False
        if self._not_supported(words, item, where):
            return True
        phrase = " ".join(a.text for a in words)
        kind_words = [w for e in catalog.CATALOG.values() for w in e.words]
        option_words = [k for e in catalog.CATALOG.values() for k in e.options]
        self.error(
            f"unknown {where} word '{phrase}'",
            item.pos,
            did_you_mean(phrase, kind_words)  # a layer first, then an option
            or did_you_mean(phrase, option_words)
            or f"layer words: {layer_words()}",
            code="unknown-word",
        )
        return True

    def _build(self, chain: _Chain) -> list[Any]:
        """The IR layers of a chain without problems (none if one fails validation)."""
        built: list[Any] = []
        for fields, src in zip(chain.layers, chain.sources, strict=True):
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
                    f"layer words: {layer_words()}",
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
                return BAD
            return fixed
        if not values:
            return True  # `ceil mode`, `bias`, `align corners`
        if len(values) > 1:
            self.error(
                f"'{item.text}': one value expected for {name.replace('_', ' ')}",
                item.pos,
                code="bad-value",
            )
            return BAD
        return word_value(values[0].value)

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


@functools.cache
def _every_option() -> dict[str, tuple[str, Any]]:
    """Every option word of every layer kind (normalized) -> (field, fixed value)."""
    return {k: v for e in catalog.CATALOG.values() for k, v in e.vocabulary().items()}


def shown(value: Any) -> str:
    """A field value as a spec would write it: (3, 3) -> 3×3."""
    if isinstance(value, tuple):
        return "×".join(str(v) for v in value)
    return str(value)


def layer_words() -> str:
    return ", ".join(sorted(catalog.canonical_word(k) for k in catalog.CATALOG))


class _Bad:
    pass


BAD = _Bad()


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
