"""Bad places and bad files outside training: standard output to a full device, closed early, or
unable to encode the text (PYTHONIOENCODING=ascii); a read-only file system (a real read-only
tmpfs when the tests run as root); `export --weights` on files that hold no state_dict, whose
torch message (advice to use the unsafe unpickler) must never reach the user; `export -o` over
its own input. Each is exit 2 with a message naming the place, never exit 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from train_helpers import STN

REPO = Path(__file__).resolve().parents[1]


def lstndsl(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    return subprocess.run(
        [sys.executable, "-m", "lstndsl", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=kwargs.pop("capture_output", True),
        text=True,
        **kwargs,
    )


def test_stdout_to_a_full_device_is_exit_2() -> None:
    with open("/dev/full", "w") as full:
        done = lstndsl("check", STN, stdout=full, stderr=subprocess.PIPE, capture_output=False)
    assert done.returncode == 2
    assert done.stderr == (
        "lstndsl: error: cannot write to standard output: No space left on device\n"
    )


def test_an_ascii_stdout_is_exit_2_saying_what_to_set() -> None:
    done = lstndsl("table", STN, env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 2
    assert done.stderr == (
        "lstndsl: error: cannot write to standard output: its encoding, ascii, has no U+00D7 "
        "(set PYTHONIOENCODING=utf-8, or a UTF-8 locale)\n"
    )


def test_a_pipe_closed_early_is_exit_2_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstndsl", "table", str(STN)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte
    err = proc.stderr.read()
    assert proc.wait() == 2
    assert err == (
        "lstndsl: error: cannot write to standard output: the pipe was closed before the "
        "output ended\n"
    )


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system: a tmpfs mounted ro (root only; skipped elsewhere)."""
    place = tmp_path / "ro"
    place.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(place)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield place
    finally:
        subprocess.run(["umount", str(place)], check=True)


def test_a_run_on_a_read_only_file_system_is_exit_2(read_only: Path) -> None:
    out = read_only / "run"
    done = lstndsl("train", STN, "--backbone", "test_resnet", "--out", out)
    assert done.returncode == 2
    assert done.stderr == f"lstndsl: error: cannot create {out}: Read-only file system\n"


def test_export_to_a_read_only_file_system_is_exit_2(read_only: Path) -> None:
    target = read_only / "stn.onnx"
    done = lstndsl("export", STN, "-o", target)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"lstndsl: error: cannot write -o {target}: its directory {read_only} is a read-only "
        "file system\n"
    )


def test_a_run_directory_on_a_file_system_made_read_only_is_exit_2(tmp_path: Path) -> None:
    place = tmp_path / "fs"
    place.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(place)]).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        out = place / "run"
        out.mkdir()
        config = {"spec": str(STN), "backbone": "test_resnet", "out": str(out)}
        (out / "config.json").write_text(json.dumps(config))
        subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
        done = lstndsl("train", "--resume", "--out", out)
    finally:
        subprocess.run(["umount", str(place)], check=True)
    assert done.returncode == 2
    assert done.stderr == (
        f"lstndsl: error: cannot write {out / 'lstndsl.lock'}: Read-only file system\n"
    )


def test_training_with_stdout_to_a_full_device_is_exit_2(tmp_path: Path) -> None:
    from train_helpers import write_folder

    data = f"folder:{write_folder(tmp_path / 'data')}"
    args = ["train", STN, "--backbone", "test_resnet", "--image-size", "32", "--dataset", data]
    with open("/dev/full", "w") as full:
        done = lstndsl(
            *args, "--out", tmp_path / "run", stdout=full, stderr=subprocess.PIPE,
            capture_output=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "lstndsl: error: cannot write to standard output: No space left on device\n"
    )
    assert not (tmp_path / "run" / "last.pt").exists()  # it stopped before training


# --- export --weights -----------------------------------------------------------------------------


def _compiled_module(tmp_path: Path) -> Path:
    path = tmp_path / "module.pt"
    done = lstndsl("compile", STN, "-o", path)
    assert done.returncode == 0, done.stderr
    return path


BAD_WEIGHTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "garbage": (
        lambda d: _write(d / "g.pt", b"\x00\x13garbage\xff" * 100),
        "cannot be read as a checkpoint: it is not a torch.save file of tensors",
    ),
    "empty": (lambda d: _write(d / "e.pt", b""), "is empty (0 bytes): not a checkpoint"),
    "JSON": (
        lambda d: _write(d / "w.json", json.dumps({"model": {"w": [1, 2]}}).encode()),
        "cannot be read as a checkpoint",
    ),
    "the module compile -o saves": (
        _compiled_module,
        "cannot be read as a checkpoint: it holds pickled Python objects (",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(BAD_WEIGHTS), ids=list(BAD_WEIGHTS))
def test_export_weights_that_hold_no_state_dict_are_exit_2(
    cli: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    make, message = BAD_WEIGHTS[kind]
    weights = make(tmp_path)
    result = cli("export", STN, "-o", tmp_path / "stn.onnx", "--weights", weights)
    assert result.code == 2
    assert f"lstndsl: error: --weights: {weights} {message}" in result.err
    # torch's advice to load with the unsafe unpickler would run a hostile file's payload
    assert "weights_only" not in result.err and "Traceback" not in result.err
    assert not (tmp_path / "stn.onnx").exists()


def test_export_never_writes_over_its_own_input(cli: Callable[..., Any], tmp_path: Path) -> None:
    spec = tmp_path / "stn.onnx"  # a spec under a name -o could take
    spec.write_text(STN.read_text())
    result = cli("export", spec, "-o", spec, "--format", "onnx")
    assert result.code == 2
    assert f"lstndsl: error: -o {spec} is one of the inputs ({spec}): it would be overwritten" in (
        result.err
    )
    assert spec.read_text() == STN.read_text()
