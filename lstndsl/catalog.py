"""The layer catalog: the lookup tables over every layer kind's `Entry` (kinds.py).

Pure Python (no torch): `lstndsl check` must stay instant, and these formulas are one of the
three witnesses of every number (the spec declares, the catalog infers, torch confirms).

Each kind has one name, the IR tag (`ir.py`), used again by the compiler's builder. Adding a
kind is an IR class (ir.py) plus an `Entry` (kinds.py or kinds_norm.py) plus a row in
tests/fixtures/good/every-kind.spec; the grammar never changes, because layer words are data
(`Entry.words`), and the compiler builds and emits the torch op the entry describes.

Costs are counts by category, not one number, so that every convention (the paper's thop
rules, a complete count, ptflops) can be derived from them:

- `mac`: multiply-accumulates of convolution and linear weights;
- `bias`: one addition per output element of a layer with a bias;
- `norm`: elements a normalization touches (batch norm: once; layer, group and instance norm,
  which compute their statistics at inference too: 2 per element, 3 with an affine γ, β);
- `act`: elements an activation touches;
- `pool`: elements a pooling window reads (output elements × window area).
"""

from __future__ import annotations

from typing import Any

from lstndsl import ir, kinds, kinds_norm
from lstndsl.entry import (
    Cost,
    Entry,
    InferError,
    TorchOp,
    normalize,
    window_out,
)

__all__ = [
    "CATALOG",
    "KIND_WORDS",
    "NOT_SUPPORTED",
    "TORCH_CLASS_KINDS",
    "Cost",
    "Entry",
    "InferError",
    "TorchOp",
    "canonical_word",
    "entry",
    "is_activation",
    "normalize",
    "params_of",
    "torch_op",
    "window_out",
]

ENTRIES: list[Entry] = [*kinds.ENTRIES, *kinds_norm.ENTRIES]

#: kind -> entry
CATALOG: dict[str, Entry] = {e.kind: e for e in ENTRIES}

#: normalized spec word -> kind
KIND_WORDS: dict[str, str] = {normalize(w): e.kind for e in ENTRIES for w in (e.kind, *e.words)}

#: torch.nn class name -> kind, for the kinds whose torch-side cost the entry reads off a module
TORCH_CLASS_KINDS: dict[str, str] = {e.torch_class: e.kind for e in ENTRIES if e.torch_cost}

#: torch layers (normalized names) a spec may name but lstndsl has no kind for: the did-you-mean
#: must not offer another layer for them (`Dropout2d` is not `Dropout`)
NOT_SUPPORTED: frozenset[str] = frozenset(
    normalize(w)
    for w in [
        "conv1d",
        "conv3d",
        "convtranspose2d",
        "deconv",
        "deconvolution",
        "maxpool1d",
        "maxpool3d",
        "avgpool1d",
        "avgpool3d",
        "adaptivemaxpool2d",
        "batchnorm3d",
        "dropout1d",
        "dropout3d",
        "alphadropout",
        "localresponsenorm",
        "lrn",
        "upsample",
        "pixelshuffle",
        "embedding",
        "lstm",
        "gru",
        "rnn",
        "softmax",
        "logsoftmax",
        "softmin",
    ]
)


def entry(layer: Any) -> Entry:
    return CATALOG[layer.kind]


def canonical_word(kind: str) -> str:
    return CATALOG[kind].words[0]


def is_activation(kind: str) -> bool:
    return CATALOG[kind].activation


def params_of(layer: Any) -> int:
    """Trainable parameters of a resolved layer."""
    return entry(layer).params(layer)


def torch_op(layer: Any, shape: ir.Shape) -> TorchOp:
    """The torch module a resolved layer compiles to (given its input shape), as data."""
    return entry(layer).torch(layer, shape)
