"""Resume is exact: a run killed with SIGKILL mid-run and resumed with --resume ends with the same
metrics, number for number, as the same run never interrupted (on the CPU).

Both runs are real `lstndsl train` subprocesses (tiny: test_resnet behind L-STN, 32×32 digits,
6 batches per epoch, 2 epochs, a mid-epoch checkpoint every 2 steps). The interrupted one is
killed as soon as its first checkpoint exists, so the resume starts mid-epoch (data order from
start_batch, partial sums, optimizer and RNG state all restored from last.pt).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
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


#: the trainer's options beyond the paper, all at once: SGD, a per-step cosine schedule after a
#: linear warm-up (the kill lands inside it), label smoothing, clipping, and the STN's lr group
BEYOND = (
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--schedule",
    "cosine",
    "--warmup-epochs",
    "1",
    "--label-smoothing",
    "0.1",
    "--clip-grad",
    "1",
    "--stn-lr-mult",
    "0.5",
)


@pytest.mark.parametrize("options", [(), BEYOND], ids=["paper", "sgd-cosine-warmup-smooth-clip"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path: Path, options: tuple[str, ...]) -> None:
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    args = [*ARGS, *options]
    reference = lstndsl(*args, "--out", str(straight))
    victim = lstndsl(*args, "--out", str(broken))
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

        log = finish(lstndsl(*args, "--out", str(broken), "--resume"))
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
    # TensorBoard: the killed session's events and the resumed one's read as one run, each
    # epoch once, the numbers of metrics.jsonl
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(broken))
    events.Reload()
    val = [(e.step, e.value) for e in events.Scalars("top1/val")]
    assert [step for step, _ in val] == [1, 2]
    assert [v for _, v in val] == pytest.approx([m["val_top1"] for m in metrics_b], rel=1e-6)
    if options:  # the schedule moved the lr, and the STN group kept its ratio throughout
        assert [m["lr"] for m in metrics_a] == pytest.approx([0.05, 0.0])
        assert [m["lr_stn"] for m in metrics_a] == pytest.approx([0.025, 0.0])
        saved = ckpt.load(broken / "last.pt")["scheduler"]
        assert saved["last_epoch"] == 12 and saved["_milestones"] == [6]


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


# --- a resume verifies before it trusts ---------------------------------------------------------

#: a finished two-epoch run on the tiny folder dataset (2 batches of 4 per epoch)
SMALL = [
    "train",
    str(REPO / "specs" / "stn.spec"),
    "--backbone",
    "test_resnet",
    "--image-size",
    "32",
    "--max-epochs",
    "2",
    "--limit-batches",
    "2",
    "--batch-size",
    "4",
    "--pictures",
    "0",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("finished")
    data = write_folder(base / "data")
    out = base / "run"
    assert cli_main([*SMALL, "--dataset", f"folder:{data}", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(root.rglob("*"))
    }


def _bytes(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "data.pkl").write_text("")


def _swap_train_and_test(out: Path) -> None:
    """Swap one training and one test example, keeping counts and order: consistent in itself."""
    path = out / "split.json"
    data = json.loads(path.read_text())
    train, test = data["indices"]["train"], data["indices"]["test"]
    train[0], test[0] = test[0], train[0]
    train.sort()
    test.sort()
    path.write_text(json.dumps(data, indent=2))


def _best_epoch(epoch: int) -> Callable[[Path], None]:
    def damage(out: Path) -> None:
        best = torch.load(out / "best.pt", weights_only=True)
        best["epoch"] = epoch
        torch.save(best, out / "best.pt")

    return damage


def _other_architecture(out: Path) -> None:
    """best.pt holding the weights of the backbone alone (no spatial transformer)."""
    from lstndsl.train.config import TrainConfig
    from lstndsl.train.model import build_model

    best = torch.load(out / "best.pt", weights_only=True)
    config = TrainConfig.from_json(best["config"]).replace(no_stn=True, spec=None)
    best["model"] = build_model(config, None, best["num_classes"], best["image_size"]).state_dict()
    torch.save(best, out / "best.pt")


def _edit_json(name: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(out: Path) -> None:
        data = json.loads((out / name).read_text())
        change(data)
        (out / name).write_text(json.dumps(data, indent=2))

    return damage


def _edit_metrics(out: Path) -> None:
    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["val_top1"] = 99.0
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n")


RANDOM = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()

DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "best.pt deleted": (
        lambda out: (out / "best.pt").unlink(),
        "best.pt is missing, but last.pt says epoch",
    ),
    "split.json edited consistently": (
        _swap_train_and_test,
        "split.json is not the split last.pt trained on: its fingerprint sha256:",
    ),
    "last.pt truncated": (
        lambda out: _bytes(out / "last.pt", (out / "last.pt").read_bytes()[:50_000]),
        "last.pt cannot be read as a checkpoint: truncated or not a torch.save file",
    ),
    "last.pt empty": (lambda out: _bytes(out / "last.pt", b""), "last.pt is empty (0 bytes)"),
    "last.pt random": (
        lambda out: _bytes(out / "last.pt", RANDOM),
        "last.pt cannot be read as a checkpoint",
    ),
    "last.pt a directory": (
        lambda out: _directory(out / "last.pt"),
        "last.pt is a directory, not a checkpoint file",
    ),
    "best.pt truncated": (
        lambda out: _bytes(out / "best.pt", (out / "best.pt").read_bytes()[:50_000]),
        "best.pt cannot be read as a checkpoint: truncated or not a torch.save file",
    ),
    "best.pt empty": (lambda out: _bytes(out / "best.pt", b""), "best.pt is empty (0 bytes)"),
    "best.pt random": (
        lambda out: _bytes(out / "best.pt", RANDOM),
        "best.pt cannot be read as a checkpoint",
    ),
    "best.pt a directory": (
        lambda out: _directory(out / "best.pt"),
        "best.pt is a directory, not a checkpoint file",
    ),
    "best.pt epoch 0": (_best_epoch(0), "best.pt is from epoch 0, but last.pt's history of 2"),
    "best.pt epoch 99": (_best_epoch(99), "best.pt is from epoch 99, but last.pt's history of 2"),
    "best.pt of another architecture": (
        _other_architecture,
        "best.pt holds the weights of another architecture than last.pt (missing ",
    ),
    "config.json mistyped field": (
        _edit_json("config.json", lambda c: c.update(batch_sise=c.pop("batch_size"))),
        "config.json: unknown config keys: batch_sise (did you mean 'batch_size'?)",
    ),
    "config.json wrong type": (
        _edit_json("config.json", lambda c: c.update(lr="fast")),
        "config.json: config field lr should be float, not 'fast'",
    ),
    "config.json edited": (
        _edit_json("config.json", lambda c: c.update(lr=0.5)),
        "config.json disagrees with last.pt: lr 0.5 (last.pt: 0.001)",
    ),
    "metrics.jsonl edited": (
        _edit_metrics,
        "metrics.jsonl:1: this line disagrees with epoch 1 in last.pt's history",
    ),
    "spec copy edited": (
        lambda out: (out / "stn.spec").write_text((out / "stn.spec").read_text() + "# edited\n"),
        "stn.spec is not the spec text last.pt was trained with",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_resume_that_finds_disagreement_exits_2_and_changes_nothing(
    run_dir: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = DAMAGES[damage]
    make(run_dir)
    before = hashes(run_dir)
    capsys.readouterr()
    assert cli_main(["train", "--resume", "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and "weights_only" not in err
    assert hashes(run_dir) == before


def test_a_finished_run_resumed_again_changes_nothing(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = hashes(run_dir)
    assert cli_main(["train", "--resume", "--out", str(run_dir)]) == 0
    said = capsys.readouterr().out
    assert "the run is finished (max_epochs (2) reached); nothing changed" in said
    assert hashes(run_dir) == before


def test_the_traces_of_a_kill_between_two_writes_resume(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed after last.pt was written but mid-way through its metrics.jsonl line, before the
    summary: the resume accepts it and rewrites the line from last.pt's history."""
    metrics = run_dir / "metrics.jsonl"
    whole = metrics.read_text()
    metrics.write_text(whole[: whole.index("\n") + 40])
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").unlink()
    assert cli_main(["train", "--resume", "--out", str(run_dir)]) == 0
    assert metrics.read_text() == whole
    again = json.loads((run_dir / "summary.json").read_text())
    assert strip(again) == strip(summary)


def test_summary_json_is_never_rewritten_with_less(tmp_path: Path) -> None:
    from lstndsl.train.resume import write_summary

    path = tmp_path / "summary.json"
    said: list[str] = []
    assert write_summary(path, {"selected_epoch": 2, "epochs": 3}, said.append)
    assert not write_summary(path, {"selected_epoch": None, "epochs": 3}, said.append)
    assert not write_summary(path, {"selected_epoch": 1, "epochs": 1}, said.append)
    assert json.loads(path.read_text()) == {"selected_epoch": 2, "epochs": 3}
    assert said == [f"kept {path}: it holds more (epoch 2 selected) than this"] * 2
    assert write_summary(path, {"selected_epoch": 4, "epochs": 5}, said.append)
    assert json.loads(path.read_text())["epochs"] == 5


def test_resume_of_a_run_without_a_checkpoint_starts_it_from_scratch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstndsl.commands.train import make_config
    from lstndsl.train.config import TrainConfig

    out = tmp_path / "run"
    out.mkdir()
    saved = TrainConfig(spec="specs/stn.spec", backbone="test_resnet", out=str(out), lr=0.01)
    (out / "config.json").write_text(saved.dumps())
    config = make_config({"resume": True, "out": str(out)})
    assert config == saved.replace(resume=False)
    assert capsys.readouterr().out == (
        f"--resume: {out} holds no last.pt (its run never reached a checkpoint): starting it "
        "from scratch with its config.json\n"
    )


# --- resume restores the random generators --------------------------------------------------------

#: a localization net whose forward draws from the torch generator: dropout in a table row and
#: in the head (a resume that loses the generator's state replays other masks)
DROPOUT_SPEC = """\
name: Dropout STN
input: 32x32x3
head: flatten -> fc 32 -> relu -> dropout 0.5 -> fc 6
transform: affine

| Type                     | Filter Shape | Output Shape | Parameters |
|--------------------------|--------------|--------------|------------|
| Conv + ReLU, Dropout 0.3 | 5x5x3x8      | 28x28x8      | 608        |
| Max pool, stride 2       | 2x2x8x8      | 14x14x8      | 0          |
| Total                    |              |              | 608        |
"""


class Killed(BaseException):
    """Stands in for SIGKILL right after the first mid-epoch last.pt reached the disk."""


def test_rng_state_round_trips_every_generator_through_a_checkpoint(tmp_path: Path) -> None:
    import random

    ckpt.seed_everything(5)
    _ = (torch.rand(7), np.random.rand(7), random.random())  # somewhere past the seed
    ckpt.save_atomic({"rng": ckpt.rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(5), np.random.rand(5), np.random.randn(3), random.random())
    ckpt.seed_everything(6)  # every generator elsewhere
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(5), np.random.rand(5), np.random.randn(3), random.random())
    assert torch.equal(again[0], expected[0])
    assert np.array_equal(again[1], expected[1]) and np.array_equal(again[2], expected[2])
    assert again[3] == expected[3]


def test_seed_everything_seeds_every_generator() -> None:
    import random

    draws = []
    for _ in range(2):
        ckpt.seed_everything(11)
        draws.append((torch.rand(3), np.random.rand(3), random.random()))
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][0], _torch_draw(11))
    assert np.array_equal(draws[0][1], draws[1][1])
    assert np.array_equal(draws[0][1], np.random.RandomState(11).rand(3))
    assert draws[0][2] == draws[1][2] == random.Random(11).random()


def _torch_draw(seed: int) -> torch.Tensor:
    return torch.rand(3, generator=torch.Generator().manual_seed(seed))


def test_a_resume_with_dropout_in_the_localization_net_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed right after its first mid-epoch checkpoint and resumed, a run whose localization
    net draws dropout masks ends with the weights and metrics of the run never interrupted."""
    from lstndsl.train.config import TrainConfig
    from lstndsl.train.loop import main
    from lstndsl.train.progress import Console

    spec = tmp_path / "dropout.spec"
    spec.write_text(DROPOUT_SPEC)
    config = TrainConfig(
        spec=str(spec),
        backbone="test_resnet",
        dataset=f"folder:{write_folder(tmp_path / 'data')}",  # 26 training images
        image_size=32,
        batch_size=4,
        max_epochs=2,
        limit_batches=4,
        checkpoint_every=2,
        pictures=0,
    )
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    main(config.replace(out=str(straight)), console=Console(echo=False))

    save = ckpt.save_atomic

    def save_then_die(obj: dict[str, Any], path: Path) -> None:
        save(obj, path)
        if path.name == ckpt.LAST:
            raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(ckpt, "save_atomic", save_then_die)
        with pytest.raises(Killed):
            main(config.replace(out=str(broken)), console=Console(echo=False))
    progress = ckpt.load(broken / ckpt.LAST)["progress"]
    assert (progress["epoch"], progress["step"]) == (0, 2)  # mid-epoch: 2 of 4 batches done
    torch.rand(100)  # the generator moves on (the process that resumes is another one)
    resumed = main(config.replace(out=str(broken), resume=True), console=Console(echo=False))
    assert resumed.exit_code == 0

    weights = [ckpt.load(out / ckpt.LAST)["model"] for out in (straight, broken)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert results(broken) == results(straight)
    model = ckpt.rebuild_model(straight / ckpt.LAST)
    dropouts = [type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 2  # the row's and the head's
