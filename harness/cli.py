"""The `bench` command line. Configuration errors exit with code 2 before anything is written."""
from __future__ import annotations

import contextlib
from typing import List, Optional

import typer

from harness.config import ConfigError
from harness.registry import UnknownNameError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Benchmark self-supervised video representation learning methods under shared protocols.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the resolved configuration.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare datasets.")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")

ProfileOpt = typer.Option(None, "--profile", "-p", help="ci | embedded (default) | paper")
SetOpt = typer.Option(None, "--set", "-s", help="override a key: --set pretrain.lr=0.1 (repeatable)")
SeedOpt = typer.Option(None, "--seed", help="run seed (overrides run.seed)")


def _err(msg: str, code: int) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _friendly():
    """Turn known failures into one clear line and an exit code: 2 config, 3 data/training."""
    from harness.data.datasets import DataError
    from harness.data.video import VideoDecodeError
    from harness.engine import NonFiniteLossError

    try:
        yield
    except (ConfigError, UnknownNameError) as e:
        _err(str(e), 2)
    except (DataError, VideoDecodeError, NonFiniteLossError) as e:
        _err(str(e), 3)
    except KeyboardInterrupt:
        _err("interrupted; checkpoints written so far are complete (continue with --resume)", 130)


def _load(profile, sets, method=None, protocol=None, seed=None):
    from harness.config import load_config

    return load_config(profile, sets or [], method=method, protocol=protocol, seed=seed)


@app.command()
def run(
    method: str = typer.Option(..., "--method", "-m", help="see `bench list methods`"),
    protocol: str = typer.Option(..., "--protocol", help="see `bench list protocols`"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    seed: Optional[int] = SeedOpt,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted pre-training from its last checkpoint"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Pre-train METHOD (or reuse its checkpoint) and score it with PROTOCOL; writes one run record."""
    with _friendly():
        cfg = _load(profile, set_, method, protocol, seed)
        from harness.runner import run as do_run, summary

        record, path = do_run(cfg, resume=resume, progress=not quiet)
        typer.echo(summary(record))
        typer.echo(f"\nrecord: {path}")


@app.command("list")
def list_(what: str = typer.Argument(..., help="methods | protocols | datasets | backbones | tasks | profiles")):
    """List what is registered (or the profiles in bench.toml)."""
    with _friendly():
        from harness import catalog
        from harness.config import load_raw

        if what == "profiles":
            for name in sorted(load_raw().get("profiles", {})):
                typer.echo(name)
            return
        registries = {"methods": catalog.METHODS, "protocols": catalog.PROTOCOLS, "datasets": catalog.DATASETS,
                      "backbones": catalog.BACKBONES, "tasks": catalog.TASKS}
        if what not in registries:
            raise ConfigError(f"cannot list {what!r}; choose one of: {', '.join([*registries, 'profiles'])}")
        reg = registries[what]
        width = max(len(n) for n in reg.names())
        for name in reg.names():
            desc = getattr(reg.get(name), "description", "")
            typer.echo(f"{name:<{width}}  {desc}")


@config_app.command("show")
def config_show(
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
    method: Optional[str] = typer.Option(None, "--method", "-m"),
    protocol: Optional[str] = typer.Option(None, "--protocol"),
    seed: Optional[int] = SeedOpt,
):
    """Print the resolved configuration (TOML) and its pre-training hash."""
    with _friendly():
        import tomli_w

        cfg = _load(profile, set_, method, protocol, seed)
        typer.echo(tomli_w.dumps(cfg.to_dict()))
        typer.echo(f"# pre-training hash: {cfg.pretrain_hash()}")


@data_app.command("prepare")
def data_prepare(
    name: str = typer.Argument(..., help="dataset name, e.g. moving-digits"),
    size: Optional[str] = typer.Option(None, "--size", help="ci | embedded (moving-digits)"),
    profile: Optional[str] = ProfileOpt,
    set_: Optional[List[str]] = SetOpt,
):
    """Generate or check a dataset in the cache directory (work already done is skipped)."""
    with _friendly():
        from harness import catalog

        cfg = _load(profile, set_)
        ds = catalog.DATASETS.get(name)
        if name not in cfg.datasets:
            raise ConfigError(f"dataset {name!r} has no [datasets.{name}] section in bench.toml")
        dcfg = cfg.datasets[name]
        if size is not None and size not in getattr(dcfg, "sizes", {size: None}):
            raise ConfigError(f"unknown size {size!r} for {name}; known: {', '.join(dcfg.sizes)}")
        manifest = ds.prepare(dcfg, cfg.cache_root(), size=size)
        typer.echo(f"{name}: {manifest}")


@app.command()
def leaderboard(
    fmt: str = typer.Option("markdown", "--format", "-f", help="markdown | csv"),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="only this profile"),
    metric: str = typer.Option("top1", "--metric", help="top1 | top5 | top1_1view | top5_1view"),
):
    """All recorded runs as a method x task table (mean over seeds)."""
    with _friendly():
        from harness.config import load_config
        from harness.results import format_table, leaderboard as board, load_records

        if fmt not in ("markdown", "csv"):
            raise ConfigError(f"--format {fmt!r}: choose markdown or csv")
        cfg = load_config(profile)
        records = load_records(cfg.results_root())
        typer.echo(format_table(board(records, metric=metric, profile=profile), fmt))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
