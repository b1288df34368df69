"""Hostile input through the Python API and the CLI: only lstndsl's own errors escape, and
each says where and why (issue 9): a NUL in a path, an endless file, bad backbone options.

Not here: hostile spec text (test_diagnostics.py, the golden fixtures), emitted code
(test_emit.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lstndsl
from lstndsl.errors import SpecInputError, UsageError
from lstndsl.parser import MAX_SPEC_BYTES

SPECS = Path(__file__).resolve().parent.parent / "specs"


def test_a_nul_in_the_path_is_a_spec_input_error() -> None:
    with pytest.raises(SpecInputError) as info:
        lstndsl.load("a\0b.spec")
    d = info.value.diagnostics[0]
    assert (d.line, d.column, d.code) == (1, 1, "read")
    assert (
        d.format() == "a\\x00b.spec:1:1: error: cannot read the spec: its path has a NUL character"
    )


def test_check_reads_at_most_16_mb(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", "/dev/zero")
    assert result.code == 2
    assert result.err.splitlines() == [
        "/dev/zero:1:1: error: the spec is larger than 16 MB; reading stopped there;"
        " a spec is a page of text: is this the right file?"
    ]
    assert MAX_SPEC_BYTES == 16 * 2**20


def test_a_spec_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.spec"
    text = (SPECS / "lstn.spec").read_text(encoding="utf-8")
    path.write_bytes(text.encode() + b"#" * (MAX_SPEC_BYTES - len(text.encode())))
    assert lstndsl.load(path).name == "L-STN"
    path.write_bytes(path.read_bytes() + b"#")
    with pytest.raises(SpecInputError, match="larger than 16 MB"):
        lstndsl.load(path)


def test_bad_backbone_options_are_a_usage_error() -> None:
    compiler = pytest.importorskip("compiler")
    spec = lstndsl.load(SPECS / "lstn.spec")
    with pytest.raises(UsageError) as info:
        compiler.build(spec, backbone="resnet18", num_classes=10, nonsense=3)
    assert str(info.value) == (
        "lstndsl: error: the backbone resnet18 cannot be built with nonsense=3:"
        " ResNet.__init__() got an unexpected keyword argument 'nonsense'"
    )


@pytest.mark.parametrize("size", ["224", (224,), (224, 224, 3), 0, -5, 2.5, (0, 4)])
def test_bad_input_sizes_are_usage_errors(size: object) -> None:
    compiler = pytest.importorskip("compiler")
    spec = lstndsl.load(SPECS / "lstn.spec")
    with pytest.raises(UsageError, match=r"input_size must be|is not positive"):
        compiler.build(spec, input_size=size)  # type: ignore[arg-type]


# --- files that are safe -----------------------------------------------------------------

ALIGNED = (
    "name: a|b $x$\ninput: 32x32x3\nhead: flatten -> fc 6\n"
    "| Type | Filter Shape | Parameters |\n|:---|:---:|---:|\n| Conv | 3x3x3x4 | 112 |\n"
)


def test_fmt_write_keeps_alignment_colons_bom_and_mode(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.spec"
    path.write_bytes(b"\xef\xbb\xbf" + ALIGNED.encode())
    path.chmod(0o640)
    result = cli("fmt", "--write", path)
    assert (result.code, result.err) == (0, f"reformatted {path}\n")
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data[3:].decode().splitlines()
    assert lines[3:] == [
        "| Type | Filter Shape | Parameters |",
        "|:-----|:------------:|-----------:|",
        "| Conv | 3x3x3x4      | 112        |",
    ]
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.spec"]  # no temporary file left
    assert cli("fmt", "--write", path).err == ""  # formatted: nothing to write


def test_fmt_write_is_atomic(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import os

    path = tmp_path / "a.spec"
    path.write_text(ALIGNED, encoding="utf-8")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    result = cli("fmt", "--write", path)
    assert result.code == 2 and "No space left on device" in result.err
    assert path.read_text(encoding="utf-8") == ALIGNED  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["a.spec"]


@pytest.mark.parametrize("emit", [[], ["--emit", "python"]])
def test_compile_never_writes_over_its_spec(tmp_path: Path, cli, emit: list[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.spec"
    text = (SPECS / "stn.spec").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    result = cli("compile", path, *emit, "-o", tmp_path / "." / "s.spec")
    assert result.code == 2
    assert "is one of the inputs" in result.err
    assert path.read_text(encoding="utf-8") == text


def test_markdown_and_latex_escape_spec_text() -> None:
    from lstndsl.render import Grid, latex_escape, markdown

    grid = Grid(header=["spec", "n"], rows=[["a|b", "1"]], align="lr")
    assert markdown(grid).splitlines()[2] == "| a\\|b | 1 |"
    assert latex_escape("$x$×3×θ a_b") == r"\$x\$$\times$3$\times\theta$ a\_b"
    assert latex_escape("3×3×8") == r"3$\times$3$\times$8"


# --- whole-model guards, before anything is allocated or run -----------------------------

HEADS = (
    "input: 8x8x1\nhead: flatten -> fc 46000 -> fc 46000 -> fc 46000 -> fc 46000 -> fc 6\n"
    "| Type | Filter Shape |\n|---|---|\n| Conv | 3x3x1x4 |\n"
)
KERNEL = (
    "input: 1024x1024x3\nhead: flatten -> fc 6\n| Type | Filter Shape |\n|---|---|\n"
    "| Conv, stride 2 | 513x513x3x16 |\n| avg pool 256 | |\n"
)


def test_three_head_layers_that_each_fit_do_not_fit_together(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    path = tmp_path / "heads.spec"
    path.write_text(HEADS, encoding="utf-8")
    result = cli("compile", path)
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        f"{path}:2:7: error: the transformer needs 23.7 GiB in float32 (6,355,084,046 parameters"
        " and a largest feature map of 46,000 values at batch 1), over the budget of 8.0 GiB;"
        " the largest part is 'Linear(46000, 46000)'; check the Filter Shape and the input size,"
        " or set LSTNDSL_MAX_GIB to build it"
    )


@pytest.mark.parametrize("command", ["compile", "profile"])
def test_a_513_kernel_at_1024_px_is_refused_before_it_runs(
    tmp_path: Path,
    cli,  # type: ignore[no-untyped-def]
    command: str,
) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "k.spec"
    path.write_text(KERNEL, encoding="utf-8")
    result = cli(command, path)
    assert result.code == 1
    assert result.err.splitlines()[0].startswith(
        f"{path}:5:3: error: the transformer takes 828 GMACs per image, over the budget of"
        " 250 GMACs"
    )


def test_the_budgets_can_be_raised_deliberately(monkeypatch: pytest.MonkeyPatch) -> None:
    compiler = pytest.importorskip("compiler")
    compiler.build(lstndsl.load(SPECS / "stn.spec"))  # 0.08 GMACs, 3.3 MB: within the budgets
    monkeypatch.setenv("LSTNDSL_MAX_GMACS", "0.001")
    with pytest.raises(lstndsl.LstnError, match="over the budget of 0 GMACs"):
        compiler.build(lstndsl.load(SPECS / "stn.spec"))
    monkeypatch.setenv("LSTNDSL_MAX_GMACS", "-1")
    with pytest.raises(UsageError, match="LSTNDSL_MAX_GMACS must be a positive number"):
        compiler.build(lstndsl.load(SPECS / "stn.spec"))


def test_a_huge_num_classes_is_refused_before_it_is_allocated(cli) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    spec = SPECS / "stn.spec"
    result = cli("compile", spec, "--backbone", "resnet18", "--num-classes", "100000000")
    assert result.code == 2
    assert result.err == (
        "lstndsl: error: the backbone resnet18 with --num-classes 100,000,000 has 51,311,176,512"
        " parameters (191.1 GiB in float32), over the budget of 8.0 GiB; check --num-classes,"
        " or set LSTNDSL_MAX_GIB to build it\n"
    )
