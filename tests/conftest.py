"""Shared fixtures: the `ci` profile pointed at temporary cache and results directories, and the ci
size of moving-digits generated once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.config import load_config


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    # CI exports BENCH_CACHE_DIR to a throwaway directory; locally a fresh one per session
    env = os.environ.get("BENCH_CACHE_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("cache")


@pytest.fixture()
def ci_cfg(cache_dir, tmp_path):
    return load_config("ci", [f"run.cache_dir={str(cache_dir)!r}", f"run.results_dir={str(tmp_path / 'runs')!r}"])


@pytest.fixture(scope="session")
def ci_manifest(cache_dir) -> Path:
    from harness.data import moving_digits

    cfg = load_config("ci").datasets["moving-digits"]
    return moving_digits.prepare(cfg, cache_dir, progress=False)
