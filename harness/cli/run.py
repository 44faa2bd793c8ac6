"""`bench run`: pre-train (or reuse) and score one method under one protocol, here, over torchrun processes
or as a submitit job."""
from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from harness.cli.app import ConfigOpt, ProfileOpt, ResultsOpt, SeedOpt, SetOpt, _friendly, _load, app
from harness.errors import ConfigError


@app.command()
def run(
    method: str = typer.Option(..., "--method", "-m", metavar="NAME", help="see `bench list methods`"),
    protocol: Optional[str] = typer.Option(None, "--protocol", metavar="NAME",
                                           help="see `bench list protocols` (default: the profile's own)"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    seed: Optional[int] = SeedOpt,
    config: Optional[str] = ConfigOpt,
    results_dir: Optional[str] = ResultsOpt,
    resume: Optional[bool] = typer.Option(None, "--resume/--fresh",
                                          help="an interrupted pre-training of the same settings continues from its "
                                               "last checkpoint by default; --fresh starts it over"),
    retrain: bool = typer.Option(False, "--retrain", help="pre-train again even if a matching encoder exists"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars (one line per phase remains)"),
    nproc: int = typer.Option(1, "--nproc", metavar="N",
                              help="pre-train over N processes on this machine (torchrun; one per GPU)"),
    launcher: Optional[str] = typer.Option(None, "--launcher", metavar="NAME",
                                           help="slurm | local: submit the run as a job (submitit)"),
    nodes: int = typer.Option(1, "--nodes", metavar="N", help="with --launcher slurm"),
    gpus_per_node: int = typer.Option(0, "--gpus-per-node", metavar="N", help="with --launcher: one process per GPU"),
    partition: str = typer.Option("", "--partition", metavar="NAME", help="with --launcher slurm"),
    time_: str = typer.Option("4:00", "--time", metavar="H:MM", help="with --launcher: the job's time limit"),
):
    """Pre-train METHOD (or reuse its encoder) and score it with PROTOCOL; writes one run record."""
    with _friendly():
        cfg = _load(profile, set_, method, protocol, seed, config, results_dir)
        if nproc < 1:
            raise ConfigError(f"--nproc must be at least 1, got {nproc}")
        if launcher:
            if nproc > 1 or retrain:
                raise ConfigError("--launcher takes its processes from --gpus-per-node and --nodes, and resumes "
                                  "on requeue: leave out --nproc and --retrain")
            from harness.cli.app import main
            from harness.launch import SlurmOptions, submit

            opts = SlurmOptions(launcher, nodes, gpus_per_node, partition, time_, cfg.results_root() / "jobs")
            job = submit(_args_without(LAUNCH_OPTIONS, {"--resume", "--fresh", "--retrain"}), opts, main)
            typer.echo(f"submitted job {job.job_id} ({launcher}); log: {job.paths.stdout} and {job.paths.stderr}; "
                       f"the record will be written to {cfg.runs_dir()}")
            return
        for name in dict.fromkeys([*([cfg.pretrain.dataset] if cfg.pretrains else []), *cfg.task_datasets()]):
            check = getattr(cfg.datasets[name], "check_copy", None)  # a plugin's schema: checked in preflight
            if check is not None:
                check()  # a missing dataset root is known now, before torch loads (seconds)
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            _torchrun(nproc)  # rank 0 of the workers prints the summary
            return
        from harness.runner import run as do_run  # imports torch: only the commands that train or score pay for it
        from harness.runner import summary

        record, path = do_run(cfg, resume=resume, retrain=retrain, progress=not quiet)
        if record is None:
            return  # another process of a multi-process run: rank 0 reports
        typer.echo(summary(record))
        typer.echo(f"\nrecord: {path}")


LAUNCH_OPTIONS = {"--nproc", "--launcher", "--nodes", "--gpus-per-node", "--partition", "--time"}


def _args_without(options: set[str], flags: set[str] = frozenset()) -> list[str]:
    """This `bench run`'s arguments (after `run`) without `options` (and their values) and `flags`."""
    args, skip = [], False
    for a in sys.argv[2:]:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif a.split("=", 1)[0] not in options and a not in flags:
            args.append(a)
    return args


def _torchrun(nproc: int) -> None:
    """Run `torchrun --standalone --nproc-per-node N -m harness.cli <the same arguments>` as a child and end
    with its exit code. Its workers die with it (`die_with_parent`), and it dies with this process, so a
    SIGKILL of `bench` leaves nothing behind. On Ctrl-C or SIGTERM the workers are stopped (torchrun sends
    them SIGTERM) and this process ends with the one-line message and exit 130, never torchrun's traceback:
    its output is relayed line by line until the interrupt, then dropped."""
    import signal
    import subprocess
    import threading

    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "harness.cli", "run", *_args_without({"--nproc"})]
    sys.stderr.flush()
    child = subprocess.Popen(argv, stderr=subprocess.PIPE, preexec_fn=_die_with_parent_preexec)
    stopping = threading.Event()

    def relay() -> None:
        for line in iter(child.stderr.readline, b""):
            if not stopping.is_set():
                sys.stderr.buffer.write(line)
                sys.stderr.flush()

    relayer = threading.Thread(target=relay, daemon=True)
    relayer.start()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = child.wait()
        relayer.join(timeout=5)
    except KeyboardInterrupt:
        stopping.set()
        child.send_signal(signal.SIGINT)  # torchrun stops its workers
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        raise typer.Exit(code)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (a scheduler, `kill`) ends the run as Ctrl-C does


def _die_with_parent_preexec() -> None:
    """In torchrun's process, before it starts: die with `bench`, and leave `bench`'s process group, so that a
    terminal's Ctrl-C (sent to the foreground group) reaches `bench` alone, which silences torchrun's output
    first and then passes the interrupt on; were both to get it at once, torchrun's traceback could be
    relayed and its exit code returned before `bench` saw the signal."""
    import os

    from harness.distributed import die_with_parent

    die_with_parent()
    os.setpgid(0, 0)
