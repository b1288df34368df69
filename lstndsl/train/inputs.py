"""What a run settles before it trains: its run directory and the files in it, the spec text,
the image size, and a fail-fast check of the spec and the backbone.

What it is: small functions of the config (no model, no data beyond parsing the dataset's name).
The run directory: --out, or runs/<spec>-<backbone>-<dataset>-s<seed> with -2, -3 … when
that one already holds a run; it gets the spec's text, config.json, split.json, metrics.jsonl,
log.txt, last.pt and best.pt, pictures/ and summary.json, and first of all lstndsl.lock (rundir.py).
What it is not: writing them (loop.py).
"""

from __future__ import annotations

from pathlib import Path

from lstndsl.errors import UsageError
from lstndsl.train import rundir
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import parse_dataset_name
from lstndsl.train.digits import VARIANTS
from lstndsl.train.model import load_spec

#: files of a run directory
CONFIG, METRICS, SUMMARY, LOG = "config.json", "metrics.jsonl", "summary.json", "log.txt"
PICTURES = "pictures"


def resolve_image_size(config: TrainConfig) -> int | None:
    """--image-size, else the embedded digits' own canvas (None), else the backbone's resolution."""
    if config.image_size is not None:
        return config.image_size
    kind, _ = parse_dataset_name(config.dataset)
    if kind in VARIANTS:
        return None
    from compiler import backbones

    return backbones.default_resolution(config.backbone)


def resolve_out(config: TrainConfig) -> Path:
    """The run directory, checked and locked for this process until `rundir.release_claims`:
    --out, or runs/<spec>-<backbone>-<dataset>-s<seed>[-2, -3 …] (rundir.claim says which
    directories are refused)."""
    return rundir.claim(config)


def spec_copy_names(paths: list[str]) -> list[str]:
    """The file name each spec's copy gets in the run directory: its own, `2-name` for a second
    spec of the same name, and so on."""
    names: list[str] = []
    for path in paths:
        name, k = Path(path).name, 2
        while name in names:
            name, k = f"{k}-{Path(path).name}", k + 1
        names.append(name)
    return names


def read_spec_texts(config: TrainConfig) -> list[str]:
    """The text of every spec of the run, in order (none with --no-stn)."""
    texts = []
    for path in config.spec_paths:
        try:
            texts.append(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise UsageError(f"cannot read the spec {path}: {why}") from exc
    return texts


def saved_spec_texts(saved: dict[str, object]) -> list[str]:
    """Every spec text a checkpoint carries, in order."""
    first = saved.get("spec_text")
    more = saved.get("more_spec_texts") or []
    assert isinstance(more, list)
    return ([first] if isinstance(first, str) else []) + [str(t) for t in more]


def check_inputs(config: TrainConfig, spec_texts: list[str]) -> None:
    """Fail fast, before any data is read: the specs must check, the backbone must exist."""
    from compiler import backbones

    backbones.resolve(config.backbone)
    if spec_texts:
        from lstndsl import analyze

        for path, text in zip(config.spec_paths, spec_texts, strict=True):
            analyze(load_spec(text, path)).raise_for_errors()
