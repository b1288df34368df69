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
from lstndsl.train.model import load_spec

#: files of a run directory
CONFIG, METRICS, SUMMARY, LOG = "config.json", "metrics.jsonl", "summary.json", "log.txt"
PICTURES = "pictures"


def resolve_image_size(config: TrainConfig) -> int | None:
    """--image-size, else the digits' own canvas (None), else the backbone's resolution."""
    if config.image_size is not None:
        return config.image_size
    kind, _ = parse_dataset_name(config.dataset)
    if kind == "digits":
        return None
    from compiler import backbones

    return backbones.default_resolution(config.backbone)


def resolve_out(config: TrainConfig) -> Path:
    """The run directory, checked and locked for this process until `rundir.release_claims`:
    --out, or runs/<spec>-<backbone>-<dataset>-s<seed>[-2, -3 …] (rundir.claim says which
    directories are refused)."""
    return rundir.claim(config)


def read_spec_text(config: TrainConfig) -> str | None:
    if config.no_stn or config.spec is None:
        return None
    try:
        return Path(config.spec).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the spec {config.spec}: {exc.strerror or exc}") from exc


def check_inputs(config: TrainConfig, spec_text: str | None) -> None:
    """Fail fast, before any data is read: the spec must check, the backbone must exist."""
    from compiler import backbones

    backbones.resolve(config.backbone)
    if spec_text is not None and config.spec is not None:
        from lstndsl import analyze

        analyze(load_spec(spec_text, config.spec)).raise_for_errors()
