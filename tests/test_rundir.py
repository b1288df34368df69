"""A run directory belongs to one process at a time, and lstndsl writes only into directories it
made: the lock held by a real second process (and dropped by the OS on kill -9), a directory of
someone else's files left byte-identical, `--out FILE`, an --out inside the data, two sweeps in
one directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from train_helpers import STN, write_folder

from lstndsl.errors import UsageError
from lstndsl.train import rundir

REPO = Path(__file__).resolve().parents[1]
FAST = ["--backbone", "test_resnet", "--image-size", "32", "--pictures", "0"]

#: a process that holds DIR's lock until killed (no torch: it starts in a fraction of a second)
HOLDER = """
import sys, time
from pathlib import Path
from lstndsl.train.rundir import DirLock
DirLock(Path(sys.argv[1]), sys.argv[2]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path (directories as entries too)."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        found[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return found


def hold(directory: Path, kind: str = "run") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), kind],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_held_lock_names_its_holder_and_kill_9_leaves_none(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = hold(out)
    try:
        assert json.loads((out / rundir.LOCK).read_text()) == {"kind": "run", "pid": holder.pid}
        with pytest.raises(UsageError) as caught:
            rundir.DirLock(out, "run").acquire()
        message = caught.value.diagnostics[0].message
        assert message.startswith(f"{out} is in use by another lstndsl process (pid {holder.pid})")
        with pytest.raises(UsageError, match=f"pid {holder.pid}"):
            rundir.probe(out)  # the CLI's quick look says the same
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the OS dropped the lock with the process: no stale lock, the next one takes it at once
    lock = rundir.DirLock(out, "run").acquire()
    assert json.loads((out / rundir.LOCK).read_text())["pid"] == os.getpid()
    lock.release()
    assert json.loads((out / rundir.LOCK).read_text())["pid"] is None


def test_two_trainings_into_one_directory_the_second_is_refused_at_once(tmp_path: Path) -> None:
    """Two terminals: the second `lstndsl train` exits 2 naming the directory and the first's
    pid while the first is still training; the first finishes with its own files intact."""
    out = tmp_path / "run"
    data = ["--dataset", f"folder:{write_folder(tmp_path / 'data')}"]
    args = [sys.executable, "-m", "lstndsl", "train", str(STN), *FAST, *data, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [*args, "--max-epochs", "3", "--batch-size", "4"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _pid_in(out) != first.pid:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        t0 = time.monotonic()
        second = subprocess.run(
            [*args, "--max-epochs", "1"], cwd=REPO, env=env, capture_output=True, text=True
        )
        seconds = time.monotonic() - t0
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"{out} is in use by another lstndsl process (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None, "the second run waited for the first"
        print(f"the second process was refused after {seconds:.2f} s")
        log, _ = first.communicate(timeout=300)
        assert first.returncode == 0, log
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]  # the first run's alone, not interleaved
    assert json.loads((out / "config.json").read_text())["max_epochs"] == 3
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def _pid_in(out: Path) -> int | None:
    try:
        pid = json.loads((out / rundir.LOCK).read_text()).get("pid")
    except (OSError, ValueError):
        return None
    return pid if isinstance(pid, int) else None


def test_a_directory_of_other_files_is_refused_and_left_byte_identical(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    (out / "pictures").mkdir(parents=True)
    (out / "summary.json").write_text('{"mine": true}\n')
    (out / "notes.md").write_text("my notes\n")
    (out / "pictures" / "curves.png").write_bytes(b"\x89PNG not really")
    before = hashes(out)
    result = cli("train", STN, *FAST, "--out", out)
    assert result.code == 2
    assert (
        f"lstndsl: error: {out} is not empty and holds no lstndsl run: it holds notes.md, "
        "pictures/, summary.json; lstndsl writes only into a new or empty directory"
    ) in result.err
    assert hashes(out) == before  # nothing written, not even a lock file


def test_out_that_is_a_file_is_refused(cli: Callable[..., Any], tmp_path: Path) -> None:
    file = tmp_path / "results.txt"
    file.write_text("keep me\n")
    result = cli("train", STN, *FAST, "--out", file)
    assert result.code == 2
    assert f"lstndsl: error: --out {file} is a file, not a directory" in result.err
    assert file.read_text() == "keep me\n"


def test_out_inside_the_dataset_is_refused(cli: Callable[..., Any], tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data")
    before = hashes(data)
    result = cli("train", STN, *FAST, "--dataset", f"folder:{data}", "--out", data / "run")
    assert result.code == 2
    assert "overlap: the run would write into its own input" in result.err
    assert hashes(data) == before


def test_a_run_that_fails_before_writing_leaves_no_trace(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = cli("train", STN, *FAST, "--dataset", f"folder:{tmp_path}/nope", "--out", out)
    assert result.code == 2
    assert not out.exists()  # the lock file and the directory it made are taken away again


def test_a_read_only_place_is_exit_2_naming_it(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated: root ignores permissions, so mkdir raises what a read-only mount raises."""
    import errno

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    out = tmp_path / "run"
    result = cli("train", STN, *FAST, "--out", out)
    assert result.code == 2
    assert f"lstndsl: error: cannot create {out}: Read-only file system" in result.err


def test_two_sweeps_into_one_directory_the_second_is_refused(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    holder = hold(out, "sweep")
    try:
        result = cli("sweep", STN, "--backbones", "test_resnet", "--out", out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result.code == 2
    assert f"{out} is in use by another lstndsl process (pid {holder.pid})" in result.err
    assert "one sweep per directory" in result.err
    assert sorted(p.name for p in out.iterdir()) == [rundir.LOCK]


def test_a_sweep_will_not_write_into_a_run_or_a_stranger(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("\\begin{document}\n")
    result = cli("sweep", STN, "--backbones", "test_resnet", "--out", stranger)
    assert result.code == 2
    assert "holds no lstndsl sweep: it holds thesis.tex" in result.err
    assert sorted(p.name for p in stranger.iterdir()) == ["thesis.tex"]
