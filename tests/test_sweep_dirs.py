"""A sweep directory's care: an arm whose directory cannot be used (a corrupt summary.json, a
corrupt last.pt) is named, and the sweep stops there or, with --skip-bad-arms, goes on with the
other arms. Training is a stand-in that writes a summary (the real loop is tested elsewhere),
except where an arm resumes: that goes through the real `loop.main`, which refuses the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_sweep import fake
from train_helpers import STN, write_folder

from lstndsl.errors import UsageError
from lstndsl.train import loop
from lstndsl.train.config import TrainConfig
from lstndsl.train.progress import Console
from lstndsl.train.state import RunResult
from lstndsl.train.sweep import UNSUPERVISED, plan, run_sweep

ARMS = plan([str(STN)], ["test_resnet"], [UNSUPERVISED])


def stand_in(config: TrainConfig, **kwargs: Any) -> RunResult:
    """A fresh arm: its summary written as a real run would. A resumed one: the real loop."""
    if config.resume:
        return loop.main(config, **kwargs)
    out = Path(str(config.out))
    out.mkdir(parents=True)
    summary = fake(config.seed, 50.0, None)
    (out / "summary.json").write_text(json.dumps(summary))
    return RunResult(out, summary, 0)


def sweep(out: Path, data: Path, **kwargs: Any) -> Any:
    base = TrainConfig(
        spec=str(STN), backbone="test_resnet", dataset=f"folder:{data}", image_size=32
    )
    return run_sweep(base, ARMS, [0], out, console=Console(echo=False), train=stand_in, **kwargs)


@pytest.fixture
def swept(tmp_path: Path) -> tuple[Path, Path]:
    data = write_folder(tmp_path / "data")
    out = tmp_path / "sweep"
    assert not sweep(out, data).skipped
    return out, data


def test_a_corrupt_summary_stops_the_sweep_naming_the_arm(swept: tuple[Path, Path]) -> None:
    out, data = swept
    bad = out / "s0" / "test_resnet" / "summary.json"
    bad.write_text('{"seed": 0, "par')
    with pytest.raises(UsageError) as caught:
        sweep(out, data)
    message = caught.value.diagnostics[0].message
    assert message.startswith(f"seed 0, test_resnet: {bad} cannot be read as JSON (")
    assert message.endswith(
        "the sweep stops here (add --skip-bad-arms to go on with the other arms)"
    )


def test_skip_bad_arms_names_the_corrupt_arm_and_goes_on(swept: tuple[Path, Path]) -> None:
    out, data = swept
    (out / "s0" / "test_resnet" / "summary.json").write_text("[]")
    arm = out / "s0" / "stn-test_resnet"
    (arm / "summary.json").unlink()  # an interrupted arm: it resumes ...
    (arm / "last.pt").write_bytes(b"\x00" * 100)  # ... from a corrupt checkpoint
    (arm / "config.json").write_text("{}")
    result = sweep(out, data, skip_bad_arms=True)
    assert result.skipped == [
        f"seed 0, test_resnet: {out / 's0' / 'test_resnet' / 'summary.json'} is not a run's "
        "summary (not a JSON object)",
        f"seed 0, stn-test_resnet: {arm / 'last.pt'} cannot be read as a checkpoint: it is not "
        "a torch.save file of tensors (truncated, or another format)",
    ]
    assert result.rows == []  # both arms left out of the table, none trained over
    assert (arm / "last.pt").read_bytes() == b"\x00" * 100
