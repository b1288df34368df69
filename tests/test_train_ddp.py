"""DDP on the CPU: `torchrun --nproc_per_node 2` with the gloo backend trains, evaluates the whole
validation and test splits exactly once between the two processes, and rank 0 alone writes one
set of results (one config, one metrics.jsonl, one last.pt and best.pt, one summary).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_two_gloo_processes_train_and_write_one_checkpoint_set(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lstndsl",
        "train",
        str(REPO / "specs" / "lstn.spec"),
        "--backbone",
        "test_resnet",
        "--image-size",
        "32",
        "--max-epochs",
        "2",
        "--limit-batches",
        "3",
        "--checkpoint-every",
        "2",
        "--pictures",
        "2",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # rank 0 alone speaks: the plan and each epoch line appear once
    assert done.stdout.count("lstndsl train: ") == 1
    assert "cpu (1 thread), 2 processes, fp32" in done.stdout
    assert done.stdout.count("epoch   2/2 ") == 1
    names = sorted(p.name for p in out.iterdir())
    events = [n for n in names if n.startswith("events.out.tfevents.")]
    assert len(events) == 1  # TensorBoard: rank 0 alone writes
    assert [n for n in names if n not in events] == [
        "best.pt",
        "config.json",
        "last.pt",
        "log.txt",
        "lstn.spec",
        "lstndsl.lock",
        "metrics.jsonl",
        "pictures",
        "split.json",
        "summary.json",
    ]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["train_images"] for r in records] == [2 * 3 * 16] * 2  # both shards counted
    assert [r["step"] for r in records] == [3, 6]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    # validation and test are whole: accuracies are multiples of 1/750
    for key in ("val_top1", "test_top1", "test_top5"):
        assert abs(summary[key] * 7.5 - round(summary[key] * 7.5)) < 1e-9
    assert summary["split"] == {"train": 3500, "val": 750, "test": 750}
