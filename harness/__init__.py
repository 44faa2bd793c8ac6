"""Shared machinery of the benchmark: config, catalog, data, backbones, engine, results, command line."""

__version__ = "0.2.0"
