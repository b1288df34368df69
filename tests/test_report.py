"""`lstndsl report` and `lstndsl table`: the paper's grids render for every spec in every
format, with the numbers of the cost model; the layer table carries the inferred values.

Only resnet18 is built (once per worker, at 224, for the backbone grid); the resolution grid
and the layer tables are pure Python.
This file does not test the cost rules themselves (test_cost.py).
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lstndsl import cost, parser, render
from lstndsl.check import analyze

SPECS = Path(__file__).resolve().parents[1] / "specs"
ALL = [SPECS / "stn.spec", SPECS / "vstn.spec", SPECS / "lstn.spec"]


def _sections(text: str) -> list[list[list[str]]]:
    return [list(csv.reader(io.StringIO(part))) for part in text.strip().split("\n\n")]


def test_report_backbone_grid_csv(cli: Callable[..., Any]) -> None:
    r = cli("report", *ALL, "--backbones", "resnet18", "--num-classes", "10", "--format", "csv")
    assert r.code == 0, r.err
    backbone_grid, resolution_grid = _sections(r.out)
    assert backbone_grid[0] == ["Model", "Input", "Parameters", "MACs thop", "MACs full"]
    rows = {row[0]: row for row in backbone_grid[1:]}
    assert list(rows) == ["resnet18", "resnet18 + STN", "resnet18 + V-STN", "resnet18 + L-STN"]
    alone = rows["resnet18"]
    lstn = rows["resnet18 + L-STN"]
    assert int(lstn[2]) == int(alone[2]) + 869_200  # L-STN's localization + head at 224
    assert int(lstn[3]) == 1_844_280_560  # the notebooks' 1.8443 "GFLOPS"
    assert int(lstn[4]) > int(lstn[3])
    analysis = analyze(parser.parse_file(SPECS / "lstn.spec"))
    assert int(lstn[3]) - int(alone[3]) == cost.spec_ops(analysis).macs("thop")["total"]
    assert [row[:2] for row in resolution_grid[1:]] == [
        ["STN", "224×224"],
        ["V-STN", "224×224"],
        ["L-STN", "224×224"],
    ]


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_report_resolution_grid_renders_for_every_spec(cli: Callable[..., Any], fmt: str) -> None:
    """Without backbones the report is the specs alone at their declared size (pure Python)."""
    r = cli("report", *ALL, "--backbones", "", "--format", fmt)
    assert r.code == 0, r.err
    for name in ("STN", "V-STN", "L-STN"):
        assert name in r.out
    if fmt == "markdown":
        assert (
            "| L-STN               | 224×224 |    869,200 |       0.0257 |       0.0278 |" in r.out
        )
    if fmt == "latex":
        assert r"\toprule" in r.out and r"224$\times$224" in r.out
    if fmt == "csv":
        (grid,) = _sections(r.out)
        assert grid[3] == ["L-STN", "224×224", "869200", "25721072", "27827654"]


def test_report_rejects_unknown_backbones_before_building(cli: Callable[..., Any]) -> None:
    r = cli("report", *ALL, "--backbones", "resnet18,resnt50")
    assert r.code == 2
    assert "did you mean 'resnet50'" in r.err


@pytest.mark.parametrize("spec", ALL, ids=lambda p: p.name)
def test_table_markdown_carries_the_inferred_values(cli: Callable[..., Any], spec: Path) -> None:
    r = cli("table", spec)
    assert r.code == 0, r.err
    analysis = analyze(parser.parse_file(spec))
    lines = [line for line in r.out.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(analysis.rows) + 1  # header, rule, rows, Total
    total = lines[-1].split("|")[-2].strip()
    assert total == f"{analysis.params_localization:,}"
    assert lines[1].endswith("|")


def test_table_lstn_rows_as_the_paper_prints_them(cli: Callable[..., Any]) -> None:
    r = cli("table", SPECS / "lstn.spec", "--format", "csv")
    rows = list(csv.reader(io.StringIO(r.out)))
    assert rows[1] == ["Conv, stride 2, padding 1 + BN", "3×3×3×4", "112×112×4", "112+8"]
    assert rows[-2] == ["Conv, BN", "1×1×4×10", "52×52×10", "50+20"]
    assert rows[-1] == ["Total", "", "", "3690"]


def test_table_latex_and_another_size(cli: Callable[..., Any]) -> None:
    r = cli("table", SPECS / "stn.spec", "--format", "latex", "--input-size", "300", "--head")
    assert r.code == 0, r.err
    assert r"\begin{tabular}{lllr}" in r.out
    assert r"7$\times$7$\times$3$\times$8 & 294$\times$294$\times$8 & 1,184 \\" in r.out
    assert r"FC 32 & 50410$\times$32" in r.out  # flatten 10·71·71 at 300
    assert "input 300$\\times$300$\\times$3" in r.out


def test_table_of_a_misprinted_spec_is_an_error_at_the_row(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    text = (SPECS / "stn.spec").read_text(encoding="utf-8").replace("| 2010 ", "| 2011 ")
    path = write_spec(text)
    r = cli("table", path)
    assert r.code == 1
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "| 2011 " in s)
    col = text.splitlines()[line - 1].index("2011") + 1
    assert f"{path}:{line}:{col}: error: parameters: declared 2011, inferred 2010" in r.err


def test_table_and_the_cost_rules_never_import_torch() -> None:
    code = (
        "import sys, lstndsl.cost, lstndsl.render, lstndsl.cli;"
        " lstndsl.cli.main(['table', 'specs/lstn.spec', '--format', 'latex']);"
        " heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'compiler')];"
        " print('HEAVY', heavy, file=sys.stderr)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=SPECS.parent, check=True
    )
    assert "HEAVY []" in r.stderr
    assert r"\toprule" in r.stdout


def test_latex_escapes() -> None:
    assert render.latex_escape("a & b_1 50% 3×3") == r"a \& b\_1 50\% 3$\times$3"
    grid = render.Grid(["A", "B"], [["x", "1"]], align="lr", caption="c")
    assert render.render(grid, "markdown").splitlines()[2:4] == ["| A | B |", "|---|--:|"]
