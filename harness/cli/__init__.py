"""The `bench` command line (`harness.cli:main`): the app and its shared options in `app`, the commands in one
module per group, each registering itself on the app when imported here."""
from harness.cli import data, experiments, inspect, report, run  # noqa: F401  (each registers its commands)
from harness.cli.app import app, main

__all__ = ["app", "main"]
