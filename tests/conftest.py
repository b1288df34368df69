"""Shared pytest setup: repository paths, a reproducible hypothesis profile, and two small
fixtures (`write_spec` writes spec text to a file, `cli` runs `lstndsl` in-process).

Kept small and generic on purpose: test files own their specific fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"

# One profile for CI and local runs: derandomized (the same examples every run, so a failure
# reproduces), no per-example deadline (the first torch call in a worker is slow).
settings.register_profile(
    "lstndsl",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lstndsl"))


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """`write_spec(text, name="x.spec")` -> the path of a new file holding `text` (UTF-8)."""

    def write(text: str, name: str = "x.spec") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """`cli("check", path, ...)` runs `lstndsl.cli.main` in-process and captures its output."""
    from lstndsl.cli import main

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse exits on bad flags
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
