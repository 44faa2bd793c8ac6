"""The `bench` command line.

Every failure a user can cause ends as one line on stderr and a documented exit code
(`harness.errors`): 2 for usage and configuration mistakes (found before any work starts),
3 for data, 4 for training, 5 for the file system, 130 for Ctrl-C. Only a bug prints a traceback
(exit 1). Commands that need no torch (`--help`, `--version`, `list`, `config show`) never import it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from harness import __version__, catalog, code_version
from harness.config import load_config, load_raw, resolved_precision
from harness.errors import BenchError, ConfigError
from harness.results import check_writable, describe_os_error, format_table, load_perf, load_records, perf_table
from harness.results import leaderboard as make_leaderboard

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Benchmark self-supervised video representation learning methods under shared protocols. "
                       "Exit codes: 0 ok, 1 bug, 2 usage/config, 3 data, 4 training, 5 file system, 130 interrupted.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the resolved configuration.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare and check datasets.")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")

ProfileOpt = typer.Option(None, "--profile", "-p", metavar="NAME",
                          help="ci | embedded (default) | paper, or one of your own")
SetOpt = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="override a key: --set pretrain.lr=0.1 (repeatable)")
SeedOpt = typer.Option(None, "--seed", metavar="N", help="run seed (overrides run.seed)")
ConfigOpt = typer.Option(None, "--config", "-c", metavar="FILE",
                         help="your bench.toml (default: ./bench.toml if there is one)")
ResultsOpt = typer.Option(None, "--results-dir", metavar="DIR",
                          help="results folder (default: ./results); records go to its runs/")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bench (video-ssl-bench) {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Benchmark self-supervised video representation learning methods under shared protocols."""


def _err(msg: str, code: int) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _friendly():
    """Known failures -> one line and their exit code; a file system error anywhere -> exit 5."""
    try:
        yield
    except BenchError as e:
        _err(str(e).strip().replace("\n", " "), e.exit_code)
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        _err(f"file system:{where}: {describe_os_error(e)}", 5)
    except KeyboardInterrupt:
        _err("interrupted; checkpoints and records written so far are complete (continue with --resume)", 130)


def _load(profile=None, sets=None, method=None, protocol=None, seed=None, config=None, results_dir=None):
    return load_config(profile, sets or [], method=method, protocol=protocol, seed=seed, path=config,
                       results_dir=results_dir)


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
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted pre-training from its last checkpoint"),
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
            from harness.launch import SlurmOptions, submit

            opts = SlurmOptions(launcher, nodes, gpus_per_node, partition, time_, cfg.results_root() / "jobs")
            job = submit(_args_without(LAUNCH_OPTIONS, {"--resume", "--retrain"}), opts)
            typer.echo(f"submitted job {job.job_id} ({launcher}); log: {job.paths.stdout} and {job.paths.stderr}; "
                       f"the record will be written to {cfg.runs_dir()}")
            return
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            _torchrun(nproc)
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
    """Replace this process by `torchrun --standalone --nproc-per-node N -m harness.cli <the same arguments>`."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "harness.cli", "run", *_args_without({"--nproc"})]
    sys.stderr.flush()
    os.execv(sys.executable, argv)


@app.command("list")
def list_(what: str = typer.Argument(..., help="methods | protocols | datasets | backbones | tasks | profiles"),
          config: Optional[str] = ConfigOpt):
    """List what is registered (or the profiles of the configuration)."""
    with _friendly():
        if what == "profiles":
            raw, _ = load_raw(config)
            for name in sorted(raw.get("profiles", {})):
                typer.echo(name)
            return
        if what not in catalog.REGISTRIES:
            raise ConfigError(f"cannot list {what!r}; choose one of: {', '.join([*catalog.REGISTRIES, 'profiles'])}")
        if config is not None:
            _load(config=config)  # plugins named in the user's file add entries
        reg = catalog.REGISTRIES[what]
        width = max(len(n) for n in reg.names())
        for name in reg.names():
            typer.echo(f"{name:<{width}}  {reg.description(name)}")


@config_app.command("show")
def config_show(
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    method: Optional[str] = typer.Option(None, "--method", "-m", metavar="NAME"),
    protocol: Optional[str] = typer.Option(None, "--protocol", metavar="NAME"),
    seed: Optional[int] = SeedOpt,
    config: Optional[str] = ConfigOpt,
    all_: bool = typer.Option(False, "--all", help="every section, not only those this run uses"),
):
    """Print the resolved configuration (TOML) of a run and its pre-training key."""
    with _friendly():
        import tomli_w

        cfg = _load(profile, set_, method, protocol, seed, config)
        d = cfg.to_dict()
        d.pop("sources")
        if not all_:
            d = _used_sections(cfg, d)
        typer.echo(f"# files: {', '.join(cfg.sources)}")
        typer.echo(tomli_w.dumps(d))
        if not cfg.pretrains:
            typer.echo(f"# {cfg.method} does not pre-train")
            return
        version = code_version.pretrain_version(cfg.method)
        devices = ["cpu", "cuda"] if cfg.run.device == "auto" else [cfg.run.device]
        keys = []
        for dev in devices:
            try:
                prec = resolved_precision(cfg.pretrain.precision, dev)
            except BenchError:
                continue
            keys.append(f"{cfg.pretrain_key(dev, prec, version)} ({dev}, {prec})")
        typer.echo(f"# pre-training key: {' / '.join(keys)}; training code version {version}")


def _used_sections(cfg, d: dict) -> dict:
    """Only what the selected method, protocol, backbone and datasets read."""
    datasets = [*([cfg.pretrain.dataset] if cfg.pretrains else []), *cfg.task_datasets()]
    out = {k: d[k] for k in ("profile", "method", "protocol", "run", "data", "backbone")}
    if cfg.pretrains:
        out["augment"], out["pretrain"] = d["augment"], d["pretrain"]
    out["datasets"] = {n: d["datasets"][n] for n in dict.fromkeys(datasets)}
    out["backbones"] = {cfg.backbone.name: d["backbones"][cfg.backbone.name]}
    out["methods"] = {cfg.method: d["methods"][cfg.method]}
    out["protocols"] = {cfg.protocol: d["protocols"][cfg.protocol]}
    if d.get("plugins"):
        out["plugins"] = d["plugins"]
    return out


@data_app.command("prepare")
def data_prepare(
    name: str = typer.Argument(..., help="dataset name, e.g. moving-digits"),
    size: Optional[str] = typer.Option(None, "--size", metavar="NAME", help="ci | embedded (moving-digits)"),
    rebuild: bool = typer.Option(False, "--rebuild", help="regenerate every file and the manifest"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    config: Optional[str] = ConfigOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Generate a dataset in the cache, or check every file of it against its manifest and repair it."""
    with _friendly():
        cfg = _load(profile, set_, config=config)
        ds = catalog.DATASETS.get(name)
        if name not in cfg.datasets:
            raise ConfigError(f"dataset {name!r} has no [datasets.{name}] section in the configuration")
        if not hasattr(ds, "prepare"):
            raise ConfigError(f"{name} is read from your copy (datasets.{name}.root), not generated; "
                              f"`bench data verify {name}` checks it")
        dcfg = cfg.datasets[name]
        sizes = getattr(dcfg, "sizes", None)
        if size is not None and sizes is not None and size not in sizes:
            raise ConfigError(f"unknown size {size!r} for {name}; known: {', '.join(sizes)}")
        check_writable(cfg.cache_root(), "cache folder")
        if rebuild:
            manifest = ds.rebuild(dcfg, cfg.cache_root(), size=size, progress=not quiet)
            typer.echo(f"{name}: rebuilt, manifest {manifest}")
            return
        manifest = ds.prepare(dcfg, cfg.cache_root(), size=size, progress=not quiet)
        check = ds.repair(dcfg, cfg.cache_root(), size=size, progress=not quiet)
        done = f"regenerated {len(check.bad)}: " + check.summary() if check.bad else check.summary()
        typer.echo(f"{name}: {done}; manifest {manifest}")


@data_app.command("verify")
def data_verify(
    name: str = typer.Argument(..., help="a real dataset: k400 | ucf101 | hmdb51 | ssv2 | diving48"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    config: Optional[str] = ConfigOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Check a copy of a real dataset: every annotated video exists and decodes from its first to its last
    frame and holds a clip; annotation lines left out; files no annotation lists. Exit 0 when usable."""
    with _friendly():
        from harness.data.sampling import clip_span
        from harness.data.verify import verify

        cfg = _load(profile, set_, config=config)
        ds = catalog.DATASETS.get(name)
        if hasattr(ds, "prepare"):
            raise ConfigError(f"{name} is generated: `bench data prepare {name}` checks and repairs it")
        dcfg = cfg.datasets[name]
        dcfg.validate()
        dcfg.check_copy()
        check_writable(cfg.cache_root(), "cache folder")
        clip = cfg.backbone.clip
        usable = True
        for k in ("1", "2", "3") if getattr(dcfg, "split", None) == "all" else (None,):
            listing = ds.listing(dcfg if k is None else replace(dcfg, split=k))
            report = verify(name if k is None else f"{name}-split{k}", listing, cfg.cache_root(),
                            clip_span(clip.frames, clip.stride), cfg.data.max_bad_fraction, progress=not quiet)
            typer.echo(report.text())
            usable &= report.usable
        if not usable:
            raise typer.Exit(3)


@data_app.command("resize")
def data_resize(
    name: str = typer.Argument(..., help="a real dataset: k400 | ucf101 | hmdb51 | ssv2 | diving48"),
    out: str = typer.Option(..., "--out", metavar="DIR", help="where the copy goes (run again to continue)"),
    short_side: int = typer.Option(256, "--short-side", help="pixels of the short side"),
    gop: int = typer.Option(16, "--gop", help="frames between keyframes"),
    workers: int = typer.Option(0, "--workers", help="parallel processes (0: up to 8)"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    config: Optional[str] = ConfigOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Re-encode a copy of a real dataset to a short side and a short keyframe interval, keeping its layout
    and annotation files; resumable."""
    with _friendly():
        from harness.data.resize import resize_copy

        cfg = _load(profile, set_, config=config)
        if hasattr(catalog.DATASETS.get(name), "prepare"):
            raise ConfigError(f"{name} is generated; resize applies to a copy of a real dataset")
        dcfg = cfg.datasets[name]
        dcfg.validate()
        dcfg.check_copy()
        if short_side < 2 or gop < 1:
            raise ConfigError(f"--short-side must be >= 2 and --gop >= 1, got {short_side} and {gop}")
        src, target = Path(dcfg.root).expanduser().resolve(), Path(out).expanduser().resolve()
        if target == src or target.is_relative_to(src):
            raise ConfigError(f"--out {target} must lie outside the dataset folder {src}")
        check_writable(target, "output folder")
        done, skipped, failures = resize_copy(src, target, short_side, gop, workers, progress=not quiet)
        for line in failures:
            typer.echo(f"not copied: {line}", err=True)
        typer.echo(f"{name}: {done} videos re-encoded, {skipped} already there, {len(failures)} failed; use it "
                   f"with --set datasets.{name}.root={str(target)!r}")


@data_app.command("synth")
def data_synth(
    fmt: str = typer.Option(..., "--format", metavar="NAME", help="k400 | ucf101 | hmdb51 | ssv2 | diving48"),
    out: str = typer.Option(..., "--out", metavar="DIR", help="a new or empty folder"),
    seed: int = typer.Option(0, "--seed", help="the miniature's content depends on it alone"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Write a miniature of a dataset's official layout: real files in its container and codec, its
    annotation files in the official formats and naming traps; try the loaders on it."""
    with _friendly():
        from harness.data.synth import FORMATS, synth

        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
        target = Path(out).expanduser()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise ConfigError(f"--out {target}: not an empty folder")
        synth(fmt, target, seed=seed, progress=not quiet)
        typer.echo(f"{fmt}: miniature in {target}; use it with --set datasets.{fmt}.root={str(target)!r}")


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
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    config: Optional[str] = ConfigOpt,
    results_dir: Optional[str] = ResultsOpt,
):
    """Time a pre-training step: compute only (fp32, bf16, channels-last, compile), the loader alone with N
    workers, and the full step with real data; prints them side by side and writes <results>/perf/*.json."""
    with _friendly():
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
def tables(
    paper_: Optional[str] = typer.Option(None, "--paper", metavar="NAME",
                                         help="feichtenhofer2021 | tan2021vimpac | akbari2021vatt (default: all)"),
    table: Optional[str] = typer.Option(None, "--table", metavar="NAME", help="one table, e.g. rho"),
    profile: Optional[str] = ProfileOpt,
    fmt: str = typer.Option("md", "--format", "-f", metavar="FMT", help="md | csv | tex | html"),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="KEY=V1,V2",
                                             help="only the rows and columns with these selector values"),
    out: Optional[str] = typer.Option(None, "--out", metavar="DIR",
                                      help="also write every format and the plots there (e.g. results/tables)"),
    config: Optional[str] = ConfigOpt,
    results_dir: Optional[str] = ResultsOpt,
):
    """The papers' tables in their layout: per cell the paper's number, ours (mean ± std over seeds, 95%
    interval, seed count) and, under the paper profile, the difference; cells without runs are marked."""
    with _friendly():
        from harness import paper
        from harness import tables as t
        from harness.suite import parse_only

        if fmt not in ("md", "markdown", "csv", "tex", "html"):
            raise ConfigError(f"--format {fmt!r}: one of md, csv, tex, html")
        cfg = _load(profile, config=config, results_dir=results_dir)
        records, skipped = load_records(cfg.runs_dir())
        for line in skipped:
            typer.echo(f"warning: skipped {line}", err=True)
        keep = parse_only(only or [])
        chosen = [paper.restrict(tab, keep) for tab in paper.load_definitions().select(paper_, table)]
        done = [t.fill(tab, records, cfg.profile, config) for tab in chosen]
        if fmt == "html":
            typer.echo(t.html_page(f"Paper tables, profile {cfg.profile}", "\n".join(t.html_table(r) for r in done)))
        elif fmt == "csv":
            typer.echo("\n".join([t.CSV_HEAD] + [line for r in done for line in t.csv_text(r).splitlines()[1:]]))
        else:
            typer.echo("\n\n".join(t.render(r, fmt) for r in done))
        if out:
            for path in t.write_all(done, Path(out) / cfg.profile, cfg.runs_dir()):
                typer.echo(f"wrote {path}", err=True)


@app.command()
def suite(
    name: str = typer.Argument(..., help="rho | epochs | rho-study (see results/paper/tables.toml)"),
    profile: Optional[str] = ProfileOpt,
    seeds: int = typer.Option(1, "--seeds", metavar="N", help="seeds 0..N-1 of every experiment"),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="KEY=V1,V2",
                                             help="only the cells with these selector values: --only rho=1,2"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would run and its estimated cost"),
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
            from harness.launch import SlurmOptions, submit_array

            todo = [j for j in jobs if not s.done(j, load_records(cfg.runs_dir())[0], cfg.profile, config)]
            groups = s.by_encoder(todo)
            opts = SlurmOptions(launcher, 1, gpus_per_node, partition, time_, cfg.results_root() / "jobs")
            submitted = submit_array([[s.run_argv(j, cfg.profile, config, results_dir) for j in g] for g in groups],
                                     opts) if groups else []
            for job, g in zip(submitted, groups):
                typer.echo(f"job {job.job_id}: {'; '.join(j.name for j in g)} (log {job.paths.stdout})")
            typer.echo(f"submitted {len(submitted)} jobs for {len(todo)} runs ({len(jobs) - len(todo)} already "
                       f"recorded); records go to {cfg.runs_dir()}; run `bench suite {name}` again to see what is left")
            return
        outcomes = s.run_suite(jobs, cfg.profile, lambda: load_records(cfg.runs_dir())[0], dry_run=dry_run,
                               path=config, results_dir=results_dir, progress=not quiet,
                               log=lambda m: typer.echo(m, err=True))
        if not dry_run:
            typer.echo(s.report(outcomes))
            failed = [o for o in outcomes if o.status == "failed"]
            if failed:
                raise typer.Exit(4)


@app.command()
def leaderboard(
    fmt: str = typer.Option("markdown", "--format", "-f", metavar="FMT",
                            help="markdown | csv | html (writes <results>/leaderboard.html)"),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", metavar="NAME", help="only this profile"),
    metric: str = typer.Option("top1", "--metric", metavar="NAME",
                               help="top1 | top5 (all views) | top1_1view | top5_1view (centre view) | "
                                    "R@1 ... (retrieval)"),
    results_dir: Optional[str] = ResultsOpt,
    config: Optional[str] = ConfigOpt,
):
    """Recorded runs as a method-variant x protocol:task table, temporally-heavy tasks first: mean over seeds
    ± 95% CI (one seed: its bootstrap interval over test videos, in brackets) and each row's cost."""
    with _friendly():
        if fmt not in ("markdown", "csv", "html"):
            raise ConfigError(f"--format {fmt!r}: choose markdown, csv or html")
        cfg = _load(config=config, results_dir=results_dir)
        records, skipped = load_records(cfg.runs_dir())
        if not records:
            why = f" ({len(skipped)} other files skipped, e.g. {skipped[0]})" if skipped else ""
            raise ConfigError(f"no run records in {cfg.runs_dir()}{why}: try `bench run --method rho_byol` "
                              "or name another folder with --results-dir")
        for line in skipped:
            typer.echo(f"warning: skipped {line}", err=True)
        board = make_leaderboard(records, metric=metric, profile=profile)
        if fmt == "html":
            from harness.atomic import atomic_write
            from harness.board_html import page

            path = cfg.results_root() / "leaderboard.html"
            text = page(board, "runs/", f"Leaderboard ({profile or 'all profiles'}, {metric})")
            atomic_write(path, lambda f: f.write(text))
            typer.echo(f"wrote {path} (open it in a browser; its links lead to the records in {cfg.runs_dir()})")
            return
        typer.echo(format_table(board, fmt))
        steps = perf_table(load_perf(cfg.results_root())) if fmt == "markdown" else ""
        if steps:
            typer.echo(f"\nStep throughput, the newest `bench perf` of each method and backbone:\n\n{steps}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: the parser's usage errors become one line and exit code 2, like the harness's own.

    typer >= 0.29 vendors its own copy of click, so its exceptions are matched by what they carry
    (`format_message` and `exit_code`) rather than by class."""
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"  # one line, no source
    try:
        rv = app(args=argv, prog_name="bench", standalone_mode=False)
    except Exception as e:
        name = type(e).__name__
        if name == "Exit":
            return int(getattr(e, "exit_code", 0))
        if name == "Abort":
            typer.echo("error: interrupted", err=True)
            return 130
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if name == "NoArgsIsHelpError":  # `bench` or `bench data` alone: the help is the answer
            typer.echo(e.format_message())
            return 0
        ctx = getattr(e, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "bench"
        typer.echo(f"error: {e.format_message()} (see `{cmd} --help`)", err=True)
        return 2
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
