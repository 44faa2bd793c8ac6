"""`bench run --launcher slurm|local`: the same run submitted as a job through submitit.

Each task of the job is one process of the run: `BenchJob` exports the rendezvous that Slurm describes
(MASTER_ADDR, RANK, WORLD_SIZE, LOCAL_RANK; submitit's TorchDistributedEnvironment) and calls `bench run`
with `--resume`, so the first attempt starts at step 0 and a requeued one continues from the last
checkpoint. On pre-emption or time-out, submitit calls `checkpoint()`, which requeues the same job
(submitit's Checkpointable): training state lives in the run's checkpoint folder, not in the job.
The `local` launcher runs the job on this machine with submitit's local executor (tests, a workstation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import ConfigError

try:
    import submitit
    from submitit.helpers import Checkpointable
except ImportError:  # pragma: no cover - submitit is a dependency; this keeps `bench --help` alive without it
    submitit = None
    Checkpointable = object


class BenchJob(Checkpointable):
    """`bench run`s (their arguments, without the launcher's) as one requeueable submitit job, run in
    order: a suite gives one job the runs of one encoder, so no two jobs train the same checkpoint."""

    def __init__(self, entry: Callable[[list[str]], int], *argvs: list[str]):
        self.entry, self.argvs = entry, argvs  # entry: the command line's `main` (pickled by reference)

    def __call__(self) -> int:
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        for argv in self.argvs:  # a requeued job repeats the finished runs' scoring: their encoder is reused
            rc = self.entry(["run", *argv, "--resume"])
            if rc:
                raise RuntimeError(f"bench run {' '.join(argv)} exited with code {rc}; see this job's log")
        return 0


@dataclass
class SlurmOptions:
    launcher: str  # "slurm" | "local"
    nodes: int
    gpus_per_node: int
    partition: str
    time: str  # H:MM
    folder: Path

    def minutes(self) -> int:
        try:
            h, m = self.time.split(":")
            total = int(h) * 60 + int(m)
        except ValueError:
            raise ConfigError(f"--time {self.time!r}: write hours:minutes, e.g. 12:00") from None
        if total <= 0:
            raise ConfigError(f"--time {self.time!r}: must be longer than zero")
        return total


def submit(argv: list[str], opts: SlurmOptions, entry: Callable[[list[str]], int]):
    """Submit the run; `entry` is the command line's `main`, which the job calls. Returns the submitit job."""
    return submit_array([[argv]], opts, entry)[0]


def submit_array(groups: list[list[list[str]]], opts: SlurmOptions, entry: Callable[[list[str]], int]) -> list:
    """Submit one job per group of runs (a Slurm job array when there are several); returns the jobs."""
    if submitit is None:
        raise ConfigError("--launcher needs the submitit package (pip install submitit)")
    if opts.launcher not in ("slurm", "local"):
        raise ConfigError(f"--launcher {opts.launcher!r}: slurm or local")
    if opts.nodes < 1 or opts.gpus_per_node < 0:
        raise ConfigError("--nodes must be >= 1 and --gpus-per-node >= 0")
    tasks = max(opts.gpus_per_node, 1)  # one task (process) per GPU; one task on a CPU node
    if opts.launcher == "local":
        if opts.nodes != 1:
            raise ConfigError("--launcher local runs on this machine: --nodes 1")
        executor = submitit.LocalExecutor(folder=str(opts.folder / "%j"))
        executor.update_parameters(timeout_min=opts.minutes(), tasks_per_node=tasks, gpus_per_node=opts.gpus_per_node)
    else:
        executor = submitit.AutoExecutor(folder=str(opts.folder / "%j"), cluster="slurm")
        executor.update_parameters(timeout_min=opts.minutes(), nodes=opts.nodes, tasks_per_node=tasks,
                                   gpus_per_node=opts.gpus_per_node, cpus_per_task=8 if opts.gpus_per_node else 2,
                                   name="bench", **({"slurm_partition": opts.partition} if opts.partition else {}))
    with executor.batch():
        jobs = [executor.submit(BenchJob(entry, *argvs)) for argvs in groups]
    return jobs
