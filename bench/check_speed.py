"""`lstndsl check` on a hostile spec: specs/lstn.spec with 20,000 rows after its Total row.

Times, interleaved in one process (so the machine's load hits both alike), CPU seconds of
`parse_document` with the fast row reader (lstndsl/syntax.py) and with Lark reading every row,
then the whole `lstndsl check` in a subprocess (wall and CPU, Python's start included).

    .venv/bin/python bench/check_speed.py [--rows 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstndsl import parser, syntax

ROOT = Path(__file__).resolve().parent.parent
ROW = "| Conv, BN | 1×1×4×10 | 52×52×10 | 50+20 |\n"


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    text = (ROOT / "specs/lstn.spec").read_text(encoding="utf-8") + ROW * args.rows
    fast, slow = [], []
    for _ in range(args.rounds):
        fast.append(cpu(lambda: parser.parse_document(text)))
        slow.append(cpu(lambda: syntax.lines(text, fast=False)))
    print(
        f"parse, fast rows: {min(fast):.2f} s CPU   Lark rows: {min(slow):.2f} s CPU"
        f"   ratio {min(slow) / min(fast):.1f}×"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.spec"
        path.write_text(text, encoding="utf-8")
        cmd = [str(ROOT / ".venv/bin/lstndsl"), "check", str(path)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    lines = done.stderr.count("\n")
    print(
        f"lstndsl check: exit {done.returncode}, {lines} lines on stderr,"
        f" {wall:.2f} s wall, {used:.2f} s CPU; load average {os.getloadavg()[0]:.1f}"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
