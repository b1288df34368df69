"""The `lstndsl` command line: exit codes, diagnostic lines, `--json` contracts, `--input-size`,
`-o`, `python -m lstndsl`, unusable files, and a fuzz test that no input ever ends in a
traceback.

Runs `lstndsl.cli.main` in-process (the `cli` fixture, conftest.py) except for the one test
of `python -m lstndsl`. Not here: what the diagnostics say (test_check.py, test_parser.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstndsl.cli import main

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
STN, VSTN, LSTN = (SPECS / f"{n}.spec" for n in ("stn", "vstn", "lstn"))

#: a diagnostic line: path:line:col: error|warning: message
DIAGNOSTIC = re.compile(r"^.+:\d+:\d+: (error|warning): \S")
#: the source line and caret under a diagnostic
GUTTER = re.compile(r"^\s+(\d+ )?\| ")

HEADER = "input: 32x32x3\nhead: flatten -> fc 6\n"
TABLE = "| Type | Filter Shape | Output Shape | Parameters |\n|---|---|---|---|\n"
CLEAN = HEADER + TABLE + "| Conv + ReLU | 3x3x3x4 | 30x30x4 | 112 |\n"
WARNS = HEADER + TABLE + "| Conv | 3x3x3x4 | 30x30x4 | 112 |\n"
FAILS = HEADER + TABLE + "| Conv + ReLU | 3x3x3x4 | 32x32x4 | 112 |\n"
BROKEN = HEADER + TABLE + "| Cnv + ReLU | 3x3x3x4 | | |\n"


def diagnostic_lines(stderr: str) -> list[str]:
    """Every stderr line that is not a source line or caret must be a diagnostic."""
    lines = [ln for ln in stderr.splitlines() if ln and not GUTTER.match(ln)]
    for ln in lines:
        assert DIAGNOSTIC.match(ln), ln
    return lines


# --- check --------------------------------------------------------------------------------


def test_check_exit_codes(cli: Callable[..., Any], write_spec: Callable[..., Path]) -> None:
    r = cli("check", write_spec(CLEAN))
    assert (r.code, r.err) == (0, "")
    assert r.out.endswith(
        ": ok: x, 1 rows, 32×32×3 -> 30×30×4, parameters 112 localization + 21,606 head = 21,718\n"
    )
    r = cli("check", write_spec(FAILS))
    assert r.code == 1
    assert diagnostic_lines(r.err)[0].endswith(
        ":5:27: error: output shape: declared 32×32×4, inferred 30×30×4;"
        " declared 32×32×4 fits padding 1"
    )
    assert r.out.endswith(": 1 error, 0 warnings\n")
    broken = write_spec(BROKEN, "broken.spec")
    r = cli("check", broken)
    assert (r.code, r.out) == (2, "")
    assert diagnostic_lines(r.err) == [
        f"{broken}:5:3: error: unknown layer word 'Cnv'; did you mean 'Conv' or 'conv2d'?"
    ]


def test_check_worst_exit_code_over_several_files(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    clean, fails, broken = (
        write_spec(CLEAN, "a.spec"),
        write_spec(FAILS, "b.spec"),
        write_spec(BROKEN, "c.spec"),
    )
    assert cli("check", clean, fails).code == 1
    assert cli("check", fails, broken, clean).code == 2
    r = cli("check", clean, fails, broken)
    assert [ln.split(":")[0][-6:] for ln in diagnostic_lines(r.err)] == ["b.spec", "c.spec"]


def test_warnings_pass_unless_strict(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    path = write_spec(WARNS)
    r = cli("check", path)
    assert r.code == 0
    (line,) = diagnostic_lines(r.err)
    assert line.startswith(f"{path}:2:18: warning: Conv (line 5) and FC (line 2)")
    assert ": ok, 1 warning: " in r.out
    assert cli("check", "--strict", path).code == 1
    assert cli("check", "--strict", write_spec(CLEAN)).code == 0


def test_the_three_specs_check(cli: Callable[..., Any]) -> None:
    r = cli("check", STN, VSTN, LSTN)
    assert r.code == 0
    # V-STN's two linear stacks, L-STN's dead biases
    assert len(diagnostic_lines(r.err)) == 3
    assert cli("check", "--strict", STN).code == 0
    assert cli("check", "--strict", VSTN).code == 1
    assert cli("check", "--strict", LSTN).code == 1


def test_diagnostics_show_the_source_line_and_a_caret(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    path = write_spec(FAILS)
    lines = cli("check", path).err.splitlines()
    assert lines[1:3] == [
        "    5 | | Conv + ReLU | 3x3x3x4 | 32x32x4 | 112 |",
        "      |                           ^~~~~~~",
    ]


CHECK_KEYS = {"path", "name", "ok", "diagnostics", "input", "localization_output", "params"}
DIAGNOSTIC_KEYS = {"severity", "code", "path", "line", "column", "message", "hint"}


def test_check_json_contract(cli: Callable[..., Any], write_spec: Callable[..., Path]) -> None:
    import json

    broken = write_spec(BROKEN, "broken.spec")
    r = cli("check", "--json", STN, VSTN, broken)
    assert r.code == 2 and r.err == ""
    stn, vstn, bad = json.loads(r.out)
    assert set(stn) >= CHECK_KEYS
    assert stn["path"] == str(STN) and stn["name"] == "STN" and stn["ok"] is True
    assert stn["input"] == [3, 224, 224] and stn["localization_output"] == [10, 52, 52]
    assert stn["params"] == {"localization": 3194, "head": 865510, "total": 868704}
    assert stn["diagnostics"] == []
    assert vstn["ok"] is True
    for d in vstn["diagnostics"]:
        assert set(d) >= DIAGNOSTIC_KEYS
        assert (d["severity"], d["code"]) == ("warning", "linear-stack")
        assert isinstance(d["line"], int) and isinstance(d["column"], int)
    assert [d["line"] for d in vstn["diagnostics"]] == [18, 22]
    assert bad["ok"] is False and bad["path"] == str(broken)
    (d,) = bad["diagnostics"]
    assert (d["line"], d["column"], d["code"], d["severity"]) == (5, 3, "unknown-word", "error")
    assert d["hint"] == "did you mean 'Conv' or 'conv2d'?"
    # --strict turns a warning into ok: false
    (strict,) = json.loads(cli("check", "--json", "--strict", VSTN).out)
    assert strict["ok"] is False


# --- compile ------------------------------------------------------------------------------

LAYER_KEYS = {"line", "type", "output", "params", "macs"}


def _is_chw(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value)


def test_compile_json_contract(cli: Callable[..., Any]) -> None:
    import json

    r = cli("compile", "--json", STN)
    assert r.code == 0
    data = json.loads(r.out)
    assert set(data) >= {"name", "input", "layers", "localization_output", "params"}
    assert data["name"] == "STN" and isinstance(data["name"], str)
    assert data["input"] == [3, 224, 224]
    assert data["localization_output"] == [10, 52, 52]
    assert data["params"] == {"localization": 3194, "head": 865510, "total": 868704}
    assert all(isinstance(v, int) for v in data["params"].values())
    layers = data["layers"]
    for layer in layers:
        assert set(layer) >= LAYER_KEYS
        assert isinstance(layer["line"], int) and isinstance(layer["type"], str)
        assert _is_chw(layer["output"])
        assert isinstance(layer["params"], int) and isinstance(layer["macs"], int)
    assert [(x["line"], x["type"], x["output"], x["params"]) for x in layers] == [
        (15, "Conv", [8, 218, 218], 1184),
        (16, "Max pool, stride 2 + ReLU", [8, 109, 109], 0),
        (17, "Conv", [10, 105, 105], 2010),
        (18, "Max pool, stride 2 + ReLU", [10, 52, 52], 0),
    ]
    assert [x["macs"] for x in layers] == [218 * 218 * 8 * 147, 0, 105 * 105 * 10 * 200, 0]


def test_compile_input_size_reinfers_shapes_head_and_cost(cli: Callable[..., Any]) -> None:
    import json

    # STN at 240: 7×7 conv 240 -> 234, pool -> 117, 5×5 conv -> 113, pool -> 56
    data = json.loads(cli("compile", "--json", "--input-size", "240", STN).out)
    assert data["input"] == [3, 240, 240]
    assert [x["output"] for x in data["layers"]] == [
        [8, 234, 234],
        [8, 117, 117],
        [10, 113, 113],
        [10, 56, 56],
    ]
    head = 56 * 56 * 10 * 32 + 32 + 32 * 6 + 6
    assert head == 1_003_750
    assert data["params"] == {"localization": 3194, "head": head, "total": 3194 + head}
    assert data["layers"][0]["macs"] == 234 * 234 * 8 * 147
    # 240x320: the width goes 314 -> 157 -> 153 -> 76
    data = json.loads(cli("compile", "--json", "--input-size", "240x320", STN).out)
    assert data["input"] == [3, 240, 320]
    assert data["localization_output"] == [10, 56, 76]
    assert data["params"]["head"] == 56 * 76 * 10 * 32 + 230 == 1_362_150


def test_compile_table_output(cli: Callable[..., Any]) -> None:
    r = cli("compile", LSTN)
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].startswith("L-STN") and "input 224×224×3" in lines[0]
    assert "parameters: localization 3,690 + head 865,510 = 869,200" in r.out
    assert "torch agrees with the catalog: 17 rows and the head" in r.out
    row1 = next(ln for ln in lines if "Conv, stride 2, padding 1 + BN" in ln)
    assert "112×112×4" in row1 and "112+8" in row1 and "1,354,752" in row1


def test_compile_rejects_a_spec_with_errors(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    r = cli("compile", write_spec(FAILS))
    assert r.code == 1 and r.out == ""
    assert diagnostic_lines(r.err)[0].split(": ", 1)[0].endswith(":5:27")
    assert cli("compile", write_spec(BROKEN)).code == 2
    r = cli("compile", "--input-size", "10", STN)
    assert r.code == 1
    assert diagnostic_lines(r.err)[0].endswith(
        "spec:17:3: error: at input 10×10: a convolution with a 5×5 window does not fit a 2×2"
        " input (output would be 0×0); use a larger input, padding, or a smaller kernel"
    )


@pytest.mark.parametrize("bad", ["0", "abc", "240x", "-3", "240x0"])
def test_bad_input_size_is_a_usage_error(cli: Callable[..., Any], bad: str) -> None:
    for command in ("check", "compile"):
        r = cli(command, f"--input-size={bad}", STN)
        assert r.code == 2
        assert r.err == (
            f"lstndsl: error: --input-size takes N or HxW (e.g. 240 or 240x320), not '{bad}'\n"
        )


def test_compile_o_saves_a_loadable_module(cli: Callable[..., Any], tmp_path: Path) -> None:
    import torch

    out = tmp_path / "sub" / "stn.pt"
    r = cli("compile", "-o", out, STN)
    assert r.code == 0 and out.is_file()
    assert f"saved the compiled module to {out}" in r.out
    stn = torch.load(out, weights_only=False)
    assert sum(p.numel() for p in stn.parameters()) == 868_704
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        y = stn.eval()(x)
    assert y.shape == x.shape
    # a fresh transformer starts at the identity
    assert torch.allclose(y, x, atol=1e-4)


# --- the program as a whole -----------------------------------------------------------------


def test_python_dash_m_lstndsl() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "lstndsl", "check", str(STN)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{STN}: ok: STN, 4 rows")
    r = subprocess.run(
        [sys.executable, "-m", "lstndsl", "check", str(REPO / "nowhere.spec")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.startswith(f"{REPO / 'nowhere.spec'}:1:1: error: cannot read the spec")
    assert "Traceback" not in r.stderr


def test_help_and_bad_flags_exit_like_argparse(cli: Callable[..., Any]) -> None:
    r = cli("--help")
    assert r.code == 0
    for command in ("check", "compile", "fmt"):
        assert command in r.out
    assert cli("check").code == 2  # SPEC is required
    assert cli("check", "--bogus", STN).code == 2
    assert cli("nonsense").code == 2


EMPTY = "the spec is empty: no header lines and no table"


@pytest.mark.parametrize(
    ("content", "name", "line", "column", "message"),
    [
        (None, "missing.spec", 1, 1, "cannot read the spec: No such file or directory"),
        ("DIR", "a-directory", 1, 1, "cannot read the spec: Is a directory"),
        (b"input: 224x2\xff4x3\n", "latin.spec", 1, 13, "the spec is not UTF-8 text (byte 0xff)"),
        (b"# ok\n\xe9t\xe9\n", "latin2.spec", 2, 1, "the spec is not UTF-8 text (byte 0xe9)"),
        (b"", "empty.spec", 1, 1, EMPTY),
        (b"\n\n  \n", "blank.spec", 1, 1, EMPTY),
    ],
)
def test_unusable_files_exit_2_with_a_position(
    cli: Callable[..., Any],
    tmp_path: Path,
    content: bytes | str | None,
    name: str,
    line: int,
    column: int,
    message: str,
) -> None:
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    # fmt works on the text as written: it refuses what it cannot read, not an empty spec
    commands = ["check", "compile"] + (["fmt"] if message != EMPTY else [])
    for command in commands:
        r = cli(command, path)
        assert r.code == 2, command
        first = diagnostic_lines(r.err)[0]
        assert first.startswith(f"{path}:{line}:{column}: error: {message}"), first


def test_permission_denied_exits_2(
    cli: Callable[..., Any], write_spec: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable file (simulated: these tests may run as root, who reads anything)."""
    path = write_spec(CLEAN)

    def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    r = cli("check", path)
    assert r.code == 2
    first = diagnostic_lines(r.err)[0]
    assert first == f"{path}:1:1: error: cannot read the spec: Permission denied"


# --- no traceback, ever ----------------------------------------------------------------------

SEEDS = [p.read_text(encoding="utf-8") for p in (STN, VSTN, LSTN)]
ODD = st.sampled_from(
    [*"|x×*\\$#:,+->.=—–0129 \t\n\r", "ü", "\u200b", "\x00", "\u2028", "²", "٣", "🙂"]
)


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        n = len(text)
        i = draw(st.integers(0, n - 1))
        j = min(n, i + draw(st.integers(1, 40)))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "unicode"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "swap":
            k = draw(st.integers(0, n - 1))
            chars = list(text)
            chars[i], chars[k] = chars[k], chars[i]
            text = "".join(chars)
        elif op == "insert":
            text = text[:i] + draw(ODD) + text[i:]
        else:
            text = text[:i] + draw(st.text(min_size=1, max_size=3)) + text[i:]
        if not text:
            break
    return text


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated_specs())
def test_fuzzed_specs_never_raise_anything_but_lstn_errors(
    text: str, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--debug` lets any non-LstnError escape `main`: the test fails on the first one."""
    path = tmp_path_factory.getbasetemp() / "fuzz.spec"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main(["--debug", "check", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    diagnostic_lines(err)
    assert main(["--debug", "fmt", "--fill", str(path)]) in (0, 1, 2)
    capsys.readouterr()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_lstn_errors(
    data: bytes, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path_factory.getbasetemp() / "bytes.spec"
    path.write_bytes(data)
    assert main(["--debug", "check", str(path)]) == 2  # random bytes are never a spec
    diagnostic_lines(capsys.readouterr().err)


def test_compile_refuses_a_net_too_large_to_build(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    """A mistyped channel count would die in the allocator: refuse it at its row instead."""
    path = write_spec(
        "input: 64x64x3\nhead: flatten -> fc 6\n\n| Type | Filter Shape |\n|---|---|\n"
        "| Conv + ReLU | 3x3x3x100000000 |\n"
    )
    r = cli("compile", path)
    assert r.code == 1
    (line,) = diagnostic_lines(r.err)
    assert ":6:3: error: 'Conv + ReLU' has 384,400,000,000 output elements per image" in line
    r = cli("compile", "--input-size", "100000", STN)
    assert r.code == 1
    (line,) = diagnostic_lines(r.err)
    assert "stn.spec:15:3: error: 'Conv' has 79,990,400,288 output elements per image" in line


# --- numbers torch cannot hold: exit 2 at the cell from every command, never exit 3 --------


@pytest.mark.parametrize(
    ("header", "row", "where"),
    [
        ("transform: affine, translation 1e999\n", "Max pool 2", ":3:32: error: "),
        ("transform: affine, scale 0.5..1e999\n", "Max pool 2", ":3:26: error: "),
        ("activation: relu\n", "Conv, stride 1e20", ":6:16: error: "),
        ("", "ELU 1e999", ":5:7: error: "),
    ],
)
@pytest.mark.parametrize("command", ["check", "compile", "table", "fmt --fill"])
def test_numbers_beyond_float32_are_exit_2_at_their_cell(
    cli: Callable[..., Any],
    write_spec: Callable[..., Path],
    header: str,
    row: str,
    where: str,
    command: str,
) -> None:
    path = write_spec(HEADER + header + TABLE + f"| {row} | | | |\n")
    r = cli(*command.split(), path)
    assert r.code == 2, r.err
    assert f"{path}{where}" in r.err and "Traceback" not in r.err


def test_a_hundred_thousand_digit_filter_shape_is_exit_2_at_its_cell(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    path = write_spec(HEADER + TABLE + f"| Conv | 3x3x3x{'9' * 100_000} | | |\n")
    for command in ("check", "compile"):
        r = cli(command, path)
        assert r.code == 2 and f"{path}:5:10: error: " in r.err
