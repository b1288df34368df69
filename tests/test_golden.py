"""Golden fixtures: tests/fixtures/good/*.spec parse, check clean and round-trip through fmt;
tests/fixtures/bad/*.spec each start with `# expect: LINE:COL exit N CODE` lines, and
`lstndsl check` reports exactly those errors (line, column, code) with exit code N.

To add a case, drop a file into the right folder; nothing here needs to change.
Not here: the messages' wording (test_parser.py, test_check.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lstndsl import analyze, catalog, load, parse
from lstndsl.cli import main
from lstndsl.fmt import format_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOOD = sorted((FIXTURES / "good").glob("*.spec"))
BAD = sorted((FIXTURES / "bad").glob("*.spec"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) exit ([012]) ([a-z-]+)\s*$")


def test_there_are_fixtures() -> None:
    assert len(GOOD) >= 10 and len(BAD) >= 30


def expected_warnings(path: Path) -> list[str]:
    """A good fixture may name the warnings it expects, one `# warn: CODE` line each."""
    return re.findall(r"^# warn: ([\w-]+)", path.read_text(encoding="utf-8"), re.M)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_spec_checks_clean(path: Path) -> None:
    spec = load(path)  # raises on any error
    analysis = analyze(spec)
    assert [d.code for d in analysis.diagnostics] == expected_warnings(path)
    assert analysis.errors == []
    assert analysis.complete


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_spec_round_trips_through_fmt(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    spec = parse(text, str(path))
    formatted = format_spec(text, str(path))
    assert parse(formatted, str(path)).semantic() == spec.semantic()
    assert format_spec(formatted, str(path)) == formatted
    filled = parse(format_spec(text, str(path), fill=True), str(path))
    assert [d.code for d in analyze(filled).diagnostics] == expected_warnings(path)
    # filling only adds declarations: the layers, head and headers are the same
    for key in ("input", "head", "activation", "transform", "sampler", "name"):
        assert filled.semantic()[key] == spec.semantic()[key]
    layers = [row["layers"] for row in spec.semantic()["rows"]]
    assert [row["layers"] for row in filled.semantic()["rows"]] == layers


def test_good_fixtures_cover_every_layer_kind_and_spelling() -> None:
    kinds: set[str] = set()
    text = ""
    for path in GOOD:
        text += path.read_text(encoding="utf-8")
        spec = parse(path.read_text(encoding="utf-8"), str(path))
        kinds |= {layer.kind for row in spec.rows for layer in row.layers}
        kinds |= {layer.kind for layer in spec.head}
    assert kinds == set(catalog.CATALOG)
    for spelling in ("$7 \\times 7 \\times 3 \\times 8$", "3x3x3x8", "3 × 3 × 1 × 4", "2*2*6*6"):
        assert spelling in text


def expectations(path: Path) -> list[tuple[int, int, int, str]]:
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    found = []
    for line in lines:
        m = EXPECT.match(line)
        if not m:
            break
        found.append((int(m[1]), int(m[2]), int(m[3]), m[4]))
    assert found, f"{path.name} must start with '# expect: LINE:COL exit N CODE'"
    assert len({f[2] for f in found}) == 1, "one exit code per file"
    return found


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_spec_reports_exactly_its_expected_errors(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = expectations(path)
    code = main(["check", "--json", str(path)])
    out = capsys.readouterr()
    assert code == expected[0][2]
    (result,) = json.loads(out.out)
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert [(d["line"], d["column"], d["code"]) for d in errors] == [
        (line, column, code) for line, column, _, code in expected
    ]
    for d in errors:
        assert d["path"] == str(path) and d["message"]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_spec_prints_each_error_at_its_position(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = expectations(path)
    main(["check", str(path)])
    err = capsys.readouterr().err
    printed = re.findall(rf"^{re.escape(str(path))}:(\d+):(\d+): error: ", err, flags=re.M)
    assert [(int(a), int(b)) for a, b in printed] == [(e[0], e[1]) for e in expected]
    assert "Traceback" not in err
