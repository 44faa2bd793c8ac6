"""Shared machinery of the benchmark: config, registries, data, backbones, engine, results."""
