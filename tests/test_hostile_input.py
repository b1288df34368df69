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
    with pytest.raises(UsageError, match="input_size must be|is not positive"):
        compiler.build(spec, input_size=size)  # type: ignore[arg-type]
