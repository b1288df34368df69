"""Training several transformers in one model (issue 8): one at the input, one on a feature map
inside the backbone. Tiny: timm's `test_resnet` (its `layer1` is 32 channels, 8×8 at 32 px),
32×32 digits, 3 batches per epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import LSTN

from lstndsl.errors import UsageError
from lstndsl.train import checkpoint as ckpt
from lstndsl.train.config import TrainConfig
from lstndsl.train.loop import main
from lstndsl.train.progress import Console

#: a transformer on test_resnet's layer1 output (8×8×32 at 32 px)
LAYER1 = """\
name: Layer-1 STN
at: layer1
input: 8x8x32
head: flatten -> fc 16 -> relu -> fc 6
transform: affine

| Type                      | Filter Shape | Output Shape | Parameters |
|---------------------------|--------------|--------------|------------|
| Conv, no bias + BN + ReLU | 1×1×32×8     | 8×8×8        | 256+16     |
| Adaptive avg pool 2       |              | 2×2×8        | 0          |
"""


def config(tmp_path: Path, **changes: Any) -> TrainConfig:
    spec = tmp_path / "layer1.spec"
    spec.write_text(LAYER1)
    return TrainConfig(
        **{
            "spec": str(LSTN),
            "more_specs": (str(spec),),
            "backbone": "test_resnet",
            "image_size": 32,
            "limit_batches": 3,
            "max_epochs": 2,
            "pictures": 2,
            "out": str(tmp_path / "run"),
            **changes,
        }
    )


@pytest.fixture
def run(tmp_path: Path) -> Path:
    main(config(tmp_path), console=Console(echo=False))
    return tmp_path / "run"


def test_both_transformers_train_and_are_tracked_and_drawn(run: Path) -> None:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(r["thetas"]) == {"input", "layer1"}
        for stats in r["thetas"].values():
            assert set(stats) == {"scale", "rotation", "translation", "outside"}
        # the run's headline θ statistics are the input transformer's
        assert r["theta"] == r["thetas"]["input"]
    pictures = sorted(p.name for p in (run / "pictures").iterdir())
    assert "transform-e002.png" in pictures and "transform-selected.png" in pictures
    # every spec is copied into the run and carried by the checkpoint, in order
    assert (run / "lstn.spec").read_text() == LSTN.read_text()
    assert (run / "layer1.spec").read_text() == LAYER1
    saved = ckpt.load(run / "last.pt")
    assert saved["spec_text"] == LSTN.read_text() and saved["more_spec_texts"] == [LAYER1]
    # both transformers learned: their heads moved away from the identity
    first = ckpt.rebuild_model(run / "last.pt")
    names = list(first.transformers)
    assert names == ["input", "layer1"]
    for stn in first.transformers.values():
        last = [m for m in stn.head if isinstance(m, torch.nn.Linear)][-1]
        assert last.weight.abs().max() > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["params_stn"] == sum(
        p.numel() for s in first.transformers.values() for p in s.parameters()
    )


def test_a_resume_checks_every_spec_copy(run: Path, tmp_path: Path) -> None:
    (run / "layer1.spec").write_text(LAYER1.replace("fc 16", "fc 17"))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UsageError, match=r"layer1\.spec is not the spec text"):
        main(config(tmp_path, resume=True, max_epochs=3), console=Console(echo=False))
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before


def test_a_tps_transformer_trains_on_the_digits_with_theta_supervision(tmp_path: Path) -> None:
    """RARE's thin-plate spline on the digits: θ-recovery through the grid distance, and the
    pictures draw the data's affine ideal θ through the tps transformer's sampler."""
    rare = Path(LSTN).parent / "rare-tps.spec"
    cfg = config(tmp_path, spec=str(rare), more_specs=(), theta_loss=10.0, max_epochs=1)
    main(cfg, console=Console(echo=False))
    out = tmp_path / "run"
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert record["train_theta_loss"] > 0 and record["val_theta_error"] > 0
    assert (out / "pictures" / "transform-e001.png").is_file()
