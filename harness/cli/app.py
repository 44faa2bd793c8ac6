"""The `bench` app: the typer application, the options every command shares, the one-line error handling and
`main`. The commands live beside it, one module per group (`run`, `inspect`, `data`, `experiments`,
`report`); `harness.cli` imports them all.

Every failure a user can cause ends as one line on stderr and a documented exit code
(`harness.errors`): 2 for usage and configuration mistakes (found before any work starts),
3 for data, 4 for training, 5 for the file system, 130 for Ctrl-C. Only a bug prints a traceback
(exit 1). Commands that need no torch (`--help`, `--version`, `list`, `config show`) never import it.
"""
from __future__ import annotations

import contextlib
import warnings

import typer

from harness import __version__
from harness.config import load_config
from harness.errors import BenchError
from harness.storage import describe_os_error

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
        _err("interrupted; checkpoints and records written so far are complete (run the same command again to continue)", 130)


def _load(profile=None, sets=None, method=None, protocol=None, seed=None, config=None, results_dir=None):
    return load_config(profile, sets or [], method=method, protocol=protocol, seed=seed, path=config,
                       results_dir=results_dir)



# pytorchvideo's builders decorate helpers with torch.jit.script, deprecated in torch 2.14; setuptools'
# pkg_resources notice comes from imports of other packages
LIBRARY_NOISE = (r"`torch\.jit\.script` is deprecated", r"pkg_resources is deprecated")


def main(argv: list[str] | None = None) -> int:
    """Entry point: the parser's usage errors become one line and exit code 2, like the harness's own.

    typer >= 0.29 vendors its own copy of click, so its exceptions are matched by what they carry
    (`format_message` and `exit_code`) rather than by class."""
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"  # one line, no source
    for text in LIBRARY_NOISE:  # warnings libraries give about their own code, which a user cannot act on
        warnings.filterwarnings("ignore", message=text)
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

