"""Resume is exact: a run killed with SIGKILL mid-run and resumed with --resume ends with the same
metrics, number for number, as the same run never interrupted (on the CPU).

Both runs are real `lstndsl train` subprocesses (tiny: test_resnet behind L-STN, 32×32 digits,
6 batches per epoch, 2 epochs, a mid-epoch checkpoint every 2 steps). The interrupted one is
killed as soon as its first checkpoint exists, so the resume starts mid-epoch (data order from
start_batch, partial sums, optimizer and RNG state all restored from last.pt).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from train_helpers import write_folder

from lstndsl.cli import main as cli_main
from lstndsl.train import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]
ARGS = [
    "train",
    str(REPO / "specs" / "lstn.spec"),
    "--backbone",
    "test_resnet",
    "--image-size",
    "32",
    "--max-epochs",
    "2",
    "--limit-batches",
    "6",
    "--checkpoint-every",
    "2",
    "--pictures",
    "0",
]
#: what legitimately differs between two runs: clocks, and the directory's own name
TIMING = {"time", "images_per_s", "wall_time", "run"}


def lstndsl(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads in every run, and no contention
    return subprocess.Popen(
        [sys.executable, "-m", "lstndsl", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in TIMING}


def results(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    return [strip(json.loads(line)) for line in lines], strip(summary)


def test_killed_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    reference = lstndsl(*ARGS, "--out", str(straight))
    victim = lstndsl(*ARGS, "--out", str(broken))
    try:
        deadline = time.monotonic() + 240
        while not (broken / "last.pt").exists():
            assert victim.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
        assert victim.returncode == -signal.SIGKILL
        assert not (broken / "summary.json").exists()
        progress = ckpt.load(broken / "last.pt")["progress"]
        assert progress["step"] < 12  # killed before the end: there is something to resume

        log = finish(lstndsl(*ARGS, "--out", str(broken), "--resume"))
        assert f"resumed   after epoch {progress['epoch']}" in log
        finish(reference)
    finally:
        for proc in (reference, victim):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    metrics_a, summary_a = results(straight)
    metrics_b, summary_b = results(broken)
    assert [m["epoch"] for m in metrics_a] == [1, 2]
    assert metrics_b == metrics_a
    assert summary_b == summary_a
    assert summary_a["test_top1"] is not None


def test_resume_refuses_to_change_the_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    data = ["--dataset", f"folder:{write_folder(tmp_path / 'data')}"]
    assert (
        cli_main([*ARGS, *data, "--max-epochs", "1", "--limit-batches", "1", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    code = cli_main([*ARGS, *data, "--lr", "0.5", "--out", str(out), "--resume"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--resume cannot change the run's lr 0.001 -> 0.5, limit_batches 1 -> 6" in err
    # a finished run cannot be started again in the same place
    code = cli_main([*ARGS, *data, "--out", str(out)])
    assert code == 2
    assert "already holds a run: add --resume" in capsys.readouterr().err


def test_resume_without_a_checkpoint_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "nothing/config.json cannot be read" in err
