"""`bench data prepare|verify|resize|synth`: generate the embedded dataset, check and re-encode a copy of a real
one, write miniatures of the official layouts."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from harness import catalog
from harness.cli.app import ConfigOpt, ProfileOpt, SetOpt, _friendly, _load, app
from harness.errors import ConfigError
from harness.storage import check_writable

data_app = typer.Typer(no_args_is_help=True, help="Prepare and check datasets.")
app.add_typer(data_app, name="data")

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
