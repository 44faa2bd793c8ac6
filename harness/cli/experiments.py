"""`bench perf`, `bench regress` and `bench suite`: timing a step, the regression matrix, and the runs that fill
a paper table."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from harness.cli.app import ConfigOpt, ProfileOpt, ResultsOpt, SetOpt, _friendly, _load, app
from harness.errors import ConfigError
from harness.report.records import load_records


@app.command()
def perf(
    method: str = typer.Option("rho_byol", "--method", "-m", metavar="NAME", help="see `bench list methods`"),
    backbone: Optional[str] = typer.Option(None, "--backbone", metavar="NAME", help="default: the profile's"),
    rho: Optional[int] = typer.Option(None, "--rho", metavar="N", help="clips per video (the method's rho)"),
    batch: Optional[int] = typer.Option(None, "--batch", metavar="N", help="videos per step (default: 8)"),
    modes: str = typer.Option("fp32,bf16,bf16+channels_last,bf16+compile", "--modes", metavar="LIST",
                              help="compute-only modes, comma-separated"),
    workers: str = typer.Option("0,1,2", "--workers", metavar="LIST",
                                help="loader worker counts to time ('' skips the loader and the full step)"),
    steps: int = typer.Option(10, "--steps", metavar="N", help="timed steps per measurement"),
    warmup: int = typer.Option(3, "--warmup", metavar="N", help="untimed steps first"),
    data: Optional[List[str]] = typer.Option(None, "--data", metavar="PATH",
                                             help="time the data path on these video files or folders instead"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    config: Optional[str] = ConfigOpt,
    results_dir: Optional[str] = ResultsOpt,
):
    """Time a pre-training step: compute only (fp32, bf16, channels-last, compile), the loader alone with N
    workers, and the full step with real data; prints them side by side and writes <results>/perf/*.json.
    With --data: the data path on your own files (decode limit, a pre-training sample, a video's test
    views), side by side, one thread."""
    with _friendly():
        if data:
            from harness.data import throughput as dt

            cfg = _load(profile, list(set_ or []), method, config=config, results_dir=results_dir)
            found = dt.files(data)
            if not found:
                raise ConfigError(f"--data {' '.join(data)}: no video files ({', '.join(dt.VIDEO_SUFFIXES)})")
            res = dt.measure(found, cfg.backbone.clip, rho=getattr(cfg.method_cfg, "rho", 2), temporal=10,
                             spatial=3, rounds=max(steps // 2, 3), log=lambda m: typer.echo(m, err=True))
            typer.echo(f"clip {cfg.backbone.clip.frames}x{cfg.backbone.clip.stride} at {cfg.backbone.clip.crop_size} px "
                       f"(short side {cfg.backbone.clip.test_short_side}), profile {cfg.profile}; one thread\n")
            typer.echo(dt.table(res))
            return
        sets = list(set_ or [])
        if backbone:
            sets.append(f"backbone.name={backbone!r}")
        if rho is not None:
            sets.append(f"methods.{method}.rho={rho}")
        cfg = _load(profile, sets, method, config=config, results_dir=results_dir)
        if not cfg.pretrains:
            raise ConfigError(f"{method} does not pre-train; bench perf times pre-training steps")
        try:
            counts = [int(w) for w in workers.split(",") if w.strip()]
        except ValueError:
            raise ConfigError(f"--workers {workers!r}: comma-separated whole numbers, e.g. 0,1,2") from None
        if steps < 1 or warmup < 0 or (batch is not None and batch < 2) or any(w < 0 for w in counts):
            raise ConfigError("--steps must be >= 1, --warmup >= 0, --batch >= 2 and --workers >= 0")
        from harness import perf as p

        mode_list = [m.strip() for m in modes.split(",") if m.strip()]
        res = p.measure(cfg, mode_list, counts, steps, warmup, batch or 8, log=lambda m: typer.echo(m, err=True))
        typer.echo(f"{method} on {cfg.backbone.name}, profile {cfg.profile}, batch {batch or 8} videos\n")
        typer.echo(p.table(res))
        path = p.write(res, cfg, {"batch": batch or 8, "steps": steps, "warmup": warmup, "modes": mode_list,
                                  "workers": counts, "sets": sets})
        typer.echo(f"\nwritten to {path}")



@app.command()
def regress(
    profile: str = typer.Option("ci", "--profile", "-p", metavar="NAME", help="the profile of the matrix"),
    update: bool = typer.Option(False, "--update", help="rewrite the baselines from this run"),
    baseline: Optional[str] = typer.Option(None, "--baseline", metavar="FILE",
                                           help="default: results/baselines/<profile>.json"),
):
    """Run a fixed matrix of small experiments (every method, linear-cached, seed 0) and compare each metric
    with the stored baselines; exit 1 when one is outside its tolerance."""
    with _friendly():
        from harness.regress import regress as do_regress

        rows, report = do_regress(profile, update, Path(baseline) if baseline else None)
        typer.echo(report)
        if not update and any(not r.ok for r in rows):
            raise typer.Exit(1)



@app.command()
def suite(
    name: str = typer.Argument(..., help="rho | epochs | rho-study | vimpac | vatt (see results/paper/tables.toml)"),
    profile: Optional[str] = ProfileOpt,
    seeds: int = typer.Option(1, "--seeds", metavar="N", help="seeds 0..N-1 of every experiment"),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="KEY=V1,V2",
                                             help="only the cells with these selector values: --only rho=1,2"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would run, its estimated cost and the "
                                                          "seeds its comparisons need"),
    detect: float = typer.Option(5.0, "--detect", metavar="POINTS",
                                 help="with --dry-run: the difference between two rows the seeds plan aims to detect"),
    config: Optional[str] = ConfigOpt,
    results_dir: Optional[str] = ResultsOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    launcher: Optional[str] = typer.Option(None, "--launcher", metavar="NAME",
                                           help="slurm | local: submit a job array, one job per encoder"),
    gpus_per_node: int = typer.Option(0, "--gpus-per-node", metavar="N", help="with --launcher"),
    partition: str = typer.Option("", "--partition", metavar="NAME", help="with --launcher slurm"),
    time_: str = typer.Option("4:00", "--time", metavar="H:MM", help="with --launcher: each job's time limit"),
):
    """Run the experiments that fill a paper table, skipping those already recorded and reusing
    pre-trained encoders; a failed run is reported at the end and the others go on."""
    with _friendly():
        from harness import suite as s

        cfg = _load(profile, config=config, results_dir=results_dir)
        jobs, cannot = s.plan(name, cfg.profile, seeds, s.parse_only(only or []), config)
        for line in cannot:
            typer.echo(f"not runnable: {line}", err=True)
        if not jobs:
            raise ConfigError(f"suite {name!r} has no runnable cell under profile {cfg.profile!r}")
        if launcher and not dry_run:
            from harness.cli.app import main
            from harness.launch import SlurmOptions

            opts = SlurmOptions(launcher, 1, gpus_per_node, partition, time_, cfg.results_root() / "jobs")
            todo, groups, submitted = s.submit(jobs, load_records(cfg.runs_dir())[0], cfg.profile, config, results_dir,
                                               opts, main)
            for job, g in zip(submitted, groups):
                typer.echo(f"job {job.job_id}: {'; '.join(j.name for j in g)} (log {job.paths.stdout})")
            typer.echo(f"submitted {len(submitted)} jobs for {len(todo)} runs ({len(jobs) - len(todo)} already "
                       f"recorded); records go to {cfg.runs_dir()}; run `bench suite {name}` again to see what is left")
            return
        outcomes = s.run_suite(jobs, cfg.profile, lambda: load_records(cfg.runs_dir())[0], dry_run=dry_run,
                               path=config, results_dir=results_dir, progress=not quiet,
                               log=lambda m: typer.echo(m, err=True),
                               plan_seeds=lambda recs: s.seeds_plan(jobs, recs, cfg.profile, cfg.runs_dir(), detect,
                                                                    seeds, config))
        if not dry_run:
            typer.echo(s.report(outcomes))
            failed = [o for o in outcomes if o.status == "failed"]
            if failed:
                raise typer.Exit(4)
