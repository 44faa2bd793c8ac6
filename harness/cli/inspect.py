"""`bench list` and `bench config show`: what is registered, and the configuration a run would use. Neither
imports torch."""
from __future__ import annotations

from typing import List, Optional

import typer

from harness import catalog
from harness.cli.app import ConfigOpt, ProfileOpt, SeedOpt, SetOpt, _friendly, _load, app
from harness.config import load_raw
from harness.errors import ConfigError

config_app = typer.Typer(no_args_is_help=True, help="Inspect the resolved configuration.")
app.add_typer(config_app, name="config")

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
        _load(config=config)  # plugins (./bench.toml's or the given file's, and pip-installed ones) add entries
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
        from harness.config.show import show

        typer.echo(show(_load(profile, set_, method, protocol, seed, config), every_section=all_))
