"""A sweep's arms as Ray tasks: `lstndsl sweep … --ray [ADDRESS]`.

    lstndsl sweep specs/lstn.spec --backbones resnet18 --seeds 0,1 --ray --cpus-per-arm 1
    lstndsl sweep specs/*.spec --backbones resnet18,resnet50 --ray auto --gpus-per-arm 1

What it is: `RayPlan` (where: a local Ray started for the sweep, or an existing cluster; each
arm's CPUs and GPUs), `ray_runner` (a sweep.Runner: every arm still to train becomes one Ray task
with those resources, submitted as soon as the driver has written its seed's split; outcomes come
back as arms finish), `train_arm` (the task: the arm's thread count, then `loop.main` as `lstndsl
train` would run it) and `require_ray` (exit 2 with the install line when ray is missing).

The driver keeps everything else: it holds the sweep directory's lock, decides which arms are
finished (skipped) or interrupted (resumed), writes each seed's split, and writes the table. A
task writes only its arm's directory, exactly as the in-process sweep does, so on a cluster the
sweep directory (and the specs and data) must be on shared storage that every node sees at the
same path: a task works in the driver's directory, where the arm's relative paths point. Each
arm logs to its own log.txt; the driver prints one line per arm.

A local Ray (`--ray` alone) binds to 127.0.0.1, has no dashboard and no usage reporting, keeps
its temporary files in a fresh directory under the system's temp directory (removed after), and
is shut down when the sweep ends, however it ends. What it is not: which arms there are, or the
table (sweep.py); training itself (loop.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lstndsl.errors import UsageError
from lstndsl.train.armjobs import ArmJob, Outcome, Runner
from lstndsl.train.config import TrainConfig
from lstndsl.train.progress import Console

#: the version the `ray` extra pins (the wheel this project is tested with)
RAY_VERSION = "2.58.0"
INSTALL = "pip install 'lstndsl[ray]'"
#: the local Ray's object store: arms exchange only configs and summaries
_OBJECT_STORE = 100 * 1024 * 1024


def require_ray() -> None:
    """UsageError (exit 2) with the install line when ray cannot be imported."""
    if importlib.util.find_spec("ray") is None:
        raise UsageError(f"--ray needs Ray, which is not installed: {INSTALL} (ray {RAY_VERSION})")


@dataclass(frozen=True)
class RayPlan:
    """Where the arms run and what each takes."""

    #: None (or "local"): a local Ray started for the sweep; else a cluster address (`auto`:
    #: $RAY_ADDRESS)
    address: str | None
    cpus_per_arm: int = 1
    #: None: 1 where the cluster has GPUs (and the device is not `cpu`), else 0
    gpus_per_arm: float | None = None
    #: the sweep's --device: `cpu` needs no GPU, `cuda` needs one per arm
    device: str = "auto"
    #: the local Ray's CPUs (None: this machine's cores)
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.address == "local":
            object.__setattr__(self, "address", None)
        if self.cpus_per_arm < 1:
            raise UsageError(f"--cpus-per-arm takes a whole number ≥ 1, not {self.cpus_per_arm}")
        if self.gpus_per_arm is not None and self.gpus_per_arm < 0:
            raise UsageError(f"--gpus-per-arm takes a number ≥ 0, not {self.gpus_per_arm:g}")
        if self.local_cpus is not None:
            if self.address is not None:
                raise UsageError("--ray-cpus sizes a local Ray: it has no place with --ray ADDRESS")
            if self.local_cpus < 1:
                raise UsageError(f"--ray-cpus takes a whole number ≥ 1, not {self.local_cpus}")
        if self.address is not None and self.address.endswith(".spec"):
            raise UsageError(
                f"--ray took {self.address!r} as a cluster address: put --ray after the SPECs, "
                "or write --ray=ADDRESS"
            )
        if self.device == "cuda" and self.gpus_per_arm == 0:
            raise UsageError("--device cuda needs a GPU per arm: --gpus-per-arm 0 gives none")
        self.resolved_address()  # `auto` without RAY_ADDRESS: said now, before anything runs

    def resolved_address(self) -> str | None:
        """The address to connect to (`auto` read from $RAY_ADDRESS), None for a local Ray."""
        if self.address != "auto":
            return self.address
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if not address:
            raise UsageError(
                "--ray auto reads the cluster's address from RAY_ADDRESS, which is not set: "
                "set it, or write --ray ADDRESS (or --ray alone for a local Ray)"
            )
        return address


@contextlib.contextmanager
def ray_session(plan: RayPlan, say: Console) -> Iterator[Any]:
    """Ray, started locally or connected to a cluster; shut down (and its temp files removed)
    on the way out."""
    import ray

    address = plan.resolved_address()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = None
    try:
        if address is None:
            temp = tempfile.mkdtemp(prefix="lstndsl-ray-")
            cpus = plan.local_cpus or os.cpu_count() or 1
            say(f"local Ray: {cpus} CPUs, temporary files in {temp}")
            try:
                ray.init(
                    num_cpus=cpus,
                    include_dashboard=False,
                    object_store_memory=_OBJECT_STORE,
                    _node_ip_address="127.0.0.1",
                    _temp_dir=temp,
                )
            except Exception as exc:  # Ray's start-up has no one error type
                raise UsageError(
                    f"--ray: the local Ray did not start ({type(exc).__name__}: {exc})"
                ) from None
        else:
            say(f"Ray cluster at {address}")
            try:
                ray.init(address=address)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(
                    f"--ray {plan.address}: cannot reach the cluster ({exc})"
                ) from None
        yield ray
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _resources(ray: Any, plan: RayPlan, say: Console) -> tuple[int, float]:
    """(CPUs, GPUs) per arm, checked against what the cluster has."""
    have = ray.cluster_resources()
    cpus, gpus = float(have.get("CPU", 0)), float(have.get("GPU", 0))
    wanted = 1.0 if gpus and plan.device != "cpu" else 0.0
    per_gpu = plan.gpus_per_arm if plan.gpus_per_arm is not None else wanted
    where = "the local Ray" if plan.address is None else "the cluster (now)"
    if plan.cpus_per_arm > cpus or per_gpu > gpus:
        message = (
            f"an arm asks for {plan.cpus_per_arm} CPUs and {per_gpu:g} GPUs; {where} has "
            f"{cpus:g} CPUs and {gpus:g} GPUs"
        )
        if plan.address is None:
            raise UsageError(f"{message}: lower --cpus-per-arm / --gpus-per-arm")
        say(f"note: {message}; arms wait until the cluster grows")
    at_once = int(cpus // plan.cpus_per_arm)
    if per_gpu:
        at_once = min(at_once, int(gpus // per_gpu))
    say(
        f"each arm: {_plural(plan.cpus_per_arm, 'CPU')} "
        f"({_plural(plan.cpus_per_arm, 'torch thread')}), {per_gpu:g} GPUs; "
        f"up to {max(at_once, 1)} at once"
    )
    return plan.cpus_per_arm, per_gpu


def train_arm(config: TrainConfig, cwd: str, threads: int, gpus: float = 0) -> Outcome:
    """The Ray task: one arm trained as `lstndsl train` would, with `threads` torch threads,
    logging to its own log.txt only. A task given no GPU sees none (Ray hides only the GPUs of
    other tasks; `--device auto` must not pick one that Ray did not hand out)."""
    import torch

    from lstndsl.train import loop
    from lstndsl.train.data import DatasetError

    if not os.path.isdir(cwd):
        return Outcome(
            error=f"the driver's working directory {cwd} is not on this Ray node: run the sweep"
            " from shared storage that every node sees at the same path"
        )
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.set_num_threads(threads)
    here = os.getcwd()
    os.chdir(cwd)  # the config's paths are the driver's, relative to its directory
    where = f"{socket.gethostname()} pid {os.getpid()}"
    try:
        got = loop.main(config, console=Console(echo=False))
    except UsageError as err:
        return Outcome(error=err.diagnostics[0].message, where=where)
    except DatasetError as err:
        return Outcome(error=err.message, where=where)
    finally:
        os.chdir(here)
    return Outcome(summary=got.summary, exit_code=got.exit_code, where=where)


def _done_line(job: ArmJob, outcome: Outcome, started: float) -> str:
    took = f"{time.perf_counter() - started:.0f} s"
    if outcome.error is not None:
        return f"    {job.which}: cannot be used ({outcome.error})"
    if outcome.summary is None:
        return f"    {job.which}: died, {took} after its submission ({outcome.crash})"
    top1 = outcome.summary.get("test_top1")
    score = f"test top-1 {top1:.2f}" if isinstance(top1, float) else "no test score"
    how = "finished" if outcome.exit_code == 0 else "failed"
    return (
        f"    {job.which}: {how}, {took} after its submission, on {outcome.where}, {score} -> "
        f"{job.config.out}/log.txt"
    )


def ray_runner(plan: RayPlan, say: Console) -> Runner:
    """A sweep.Runner that trains every arm as its own Ray task."""

    def run(jobs: Iterable[ArmJob]) -> Iterator[tuple[ArmJob, Outcome]]:
        todo = iter(jobs)
        first = next(todo, None)
        if first is None:  # every arm finished earlier: no Ray to start
            return
        with ray_session(plan, say) as ray:
            cpus, gpus = _resources(ray, plan, say)
            task = ray.remote(train_arm).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
            cwd = os.getcwd()
            pending: dict[Any, tuple[ArmJob, float]] = {}
            for job in itertools.chain([first], todo):
                job = ArmJob(job.seed, job.arm, job.config)  # the opened dataset stays here
                pending[task.remote(job.config, cwd, cpus, gpus)] = (job, time.perf_counter())
                say(f"    submitted to Ray ({_plural(cpus, 'CPU')}, {gpus:g} GPUs)")
            say(f"\n{len(pending)} arms on Ray; each writes its own log.txt")
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job, started = pending.pop(ready[0])
                try:
                    outcome = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    outcome = Outcome(crash=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                say(_done_line(job, outcome, started))
                yield job, outcome

    return run
