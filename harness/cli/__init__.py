"""The `bench` command line (`harness.cli:main`): the app and its shared options in `app`, the commands in one
module per group, each registering itself on the app when imported here, in the order `bench --help` lists
them."""
# isort: skip_file
from harness.cli import run, inspect, data, experiments, report  # noqa: F401  (each registers its commands)
from harness.cli.app import app, main

__all__ = ["app", "main"]
