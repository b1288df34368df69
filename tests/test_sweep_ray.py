"""`lstndsl sweep --ray`: one real sweep on a local Ray of 2 CPUs (two arms, one CPU and one torch
thread each, both handed to Ray at once), against the same arms trained one after another here;
then a rerun that skips them without starting Ray, the flags' errors, ray missing, and a failed
or lost arm marked in the table (a made-up runner: no Ray).

Ray starts in several seconds, so one sweep covers the contract: the CLI in a subprocess (as a
user runs it), in a temporary directory (Ray writes nothing into the repository), its processes
gone and its temporary files removed when it exits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import LSTN, REPO

from lstndsl.train import raysweep
from lstndsl.train.armjobs import ArmJob, Outcome
from lstndsl.train.config import TrainConfig
from lstndsl.train.progress import Console
from lstndsl.train.sweep import UNSUPERVISED, Arm, run_sweep

pytest.importorskip("ray")

ARMS = ["--backbones", "test_resnet", "--seeds", "0,1", "--no-baseline"]
TINY = ["--max-steps", "4", "--image-size", "32", "--batch-size", "8", "--pictures", "0"]
#: the summary's numbers that a run determines (not its wall time, speed or directory)
DETERMINED = (
    "val_top1",
    "val_top5",
    "val_loss",
    "val_theta_error",
    "test_top1",
    "test_top5",
    "test_loss",
    "test_theta_error",
    "test_theta",
    "selected_epoch",
    "epochs",
    "steps",
    "params",
    "params_stn",
    "macs",
    "stop_reason",
)


def _ray_processes(marker: str) -> list[str]:
    """Command lines of live processes that name `marker` (the sweep's Ray temp directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and proc.name != str(os.getpid()):
            found.append(cmd)
    return found


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    where = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    argv = [sys.executable, "-m", "lstndsl", "sweep", str(LSTN), *ARMS, *TINY]
    argv += ["--ray", "--ray-cpus", "2", "--cpus-per-arm", "1", "--out", "s"]
    # a session of its own: whatever Ray signals on its way out stays away from pytest
    done = subprocess.run(
        argv,
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return where, done.stdout


def test_two_arms_go_to_ray_at_once_and_match_the_same_arms_run_here(
    swept: tuple[Path, str], cli: Callable[..., Any], tmp_path: Path
) -> None:
    where, out = swept
    temp = re.search(r"local Ray: 2 CPUs, temporary files in (\S+)", out)
    assert temp is not None, out
    assert "each arm: 1 CPU (1 torch thread), 0 GPUs; up to 2 at once" in out
    # Ray is gone: no process names its temp directory, which is removed; nothing else written
    deadline = time.monotonic() + 10
    while _ray_processes(temp.group(1)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ray_processes(temp.group(1)) == []
    assert not Path(temp.group(1)).exists()
    assert sorted(p.name for p in where.iterdir()) == ["s"]
    sweep = where / "s"
    assert (sweep / "results.md").read_text(encoding="utf-8") in out
    arms = [sweep / f"s{seed}" / "lstn-test_resnet" for seed in (0, 1)]
    # both arms are with Ray (room for 2 at once) before either is waited for, each in a worker
    # process of its own or one after the other in the same one, as Ray schedules them (on a
    # loaded machine a second worker can start later than a tiny arm lasts)
    events = re.findall(
        r"submitted to Ray|: finished, \d+ s after its submission, on \S+ pid (\d+)", out
    )
    assert events[:2] == ["", ""] and len(events) == 4, out
    assert all(events[2:]), out  # each arm names the Ray worker (host, pid) it trained on
    for arm in arms:
        assert "device    cpu (1 thread)" in (arm / "log.txt").read_text(encoding="utf-8")

    # the same arms, one after another in this process, one torch thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = cli("sweep", LSTN, *ARMS, *TINY, "--out", tmp_path / "seq")
    finally:
        torch.set_num_threads(threads)
    assert r.code == 0, r.err
    for seed, arm in zip((0, 1), arms, strict=True):
        here = json.loads((tmp_path / "seq" / f"s{seed}" / arm.name / "summary.json").read_text())
        there = json.loads((arm / "summary.json").read_text())
        assert here["test_theta"] is not None
        assert {k: there[k] for k in DETERMINED} == {k: here[k] for k in DETERMINED}
    ray_rows = json.loads((sweep / "results.json").read_text())["rows"]
    seq_rows = json.loads((tmp_path / "seq" / "results.json").read_text())["rows"]
    for row in (*ray_rows, *seq_rows):
        row.pop("wall_time")
    assert ray_rows == seq_rows


def test_a_rerun_skips_finished_arms_without_starting_ray(
    swept: tuple[Path, str], cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, _ = swept
    monkeypatch.chdir(where)
    before = (where / "s" / "results.md").read_text(encoding="utf-8")
    r = cli("sweep", LSTN, *ARMS, *TINY, "--ray", "--out", "s")
    assert r.code == 0, r.err
    assert r.out.count("finished earlier: reusing its summary.json") == 2
    assert "local Ray" not in r.out
    assert (where / "s" / "results.md").read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cpus-per-arm", "2"], "--cpus-per-arm sizes Ray tasks: add --ray"),
        (["--ray", "--cpus-per-arm", "0"], "--cpus-per-arm takes a whole number ≥ 1, not 0"),
        (["--ray", "h:6379", "--ray-cpus", "2"], "--ray-cpus sizes a local Ray"),
        (["--ray", "auto"], "--ray auto reads the cluster's address from RAY_ADDRESS"),
        (["--ray", "more.spec"], "--ray took 'more.spec' as a cluster address"),
        (["--ray", "--device", "cuda", "--gpus-per-arm", "0"], "--device cuda needs a GPU"),
    ],
)
def test_ray_flags_are_checked_before_anything_runs(
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    flags: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    r = cli("sweep", LSTN, *ARMS, *flags, "--out", tmp_path / "s")
    assert r.code == 2 and message in r.err, r.err


def test_without_ray_installed_ray_is_exit_2_with_the_install_line(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = raysweep.importlib.util.find_spec
    monkeypatch.setattr(
        raysweep.importlib.util, "find_spec", lambda name: None if name == "ray" else real(name)
    )
    r = cli("sweep", LSTN, *ARMS, "--ray", "--out", tmp_path / "s")
    assert r.code == 2
    assert "pip install 'lstndsl[ray]'" in r.err
    assert not (tmp_path / "s").exists()


def _summary(seed: int, failed: bool = False) -> dict[str, Any]:
    return {
        "seed": seed,
        "params": 100,
        "params_stn": 10,
        "image_size": 32,
        "val_top1": 50.0,
        "test_top1": 40.0,
        "failed": failed,
        "stop_reason": "non-finite loss" if failed else "budget",
    }


def test_a_failed_arm_is_marked_and_a_lost_one_named(tmp_path: Path) -> None:
    """What a runner reports (here a made-up one) lands in the table as in-process failures do:
    a failed arm's summary counts, marked ⚠; an arm whose worker died has no summary."""

    def runner(jobs: Iterable[ArmJob]) -> Iterator[tuple[ArmJob, Outcome]]:
        for job in reversed(list(jobs)):  # any order
            if job.seed == 0:
                yield job, Outcome(summary=_summary(0, failed=True), exit_code=1)
            else:
                yield job, Outcome(crash="ActorDiedError: the worker died")

    base = TrainConfig(spec=str(LSTN), backbone="test_resnet", image_size=32)
    arm = Arm("test_resnet", str(LSTN), UNSUPERVISED, "L-STN")
    result = run_sweep(
        base, [arm], [0, 1], tmp_path / "s", console=Console(echo=False), runner=runner
    )
    assert result.failures == [
        "seed 1, test_resnet + L-STN: ActorDiedError: the worker died",
        "seed 0, test_resnet + L-STN: non-finite loss",
    ]
    assert "| test_resnet + L-STN ⚠ 1 failed |" in (tmp_path / "s" / "results.md").read_text()
    assert result.summaries == {arm.slug: [_summary(0, failed=True)]}


def test_the_ray_extra_pins_the_wheel_the_makefile_installs() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'ray = ["ray=={raysweep.RAY_VERSION}"]' in text
    assert "-e '.[dev,ray]'" in (REPO / "Makefile").read_text(encoding="utf-8")
