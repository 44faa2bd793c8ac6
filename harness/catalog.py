"""The registries every part of the harness looks names up in, and the import that fills them.

Methods and protocols live outside `harness/` (in `methods/` and `protocols/`) and register
themselves on import; `load()` imports them once so that `bench list` and the config see them.
"""
from __future__ import annotations

from harness.registry import Registry

METHODS: Registry = Registry("method")
PROTOCOLS: Registry = Registry("protocol")
BACKBONES: Registry = Registry("backbone")
DATASETS: Registry = Registry("dataset")
TASKS: Registry = Registry("task")


def _load() -> None:
    import harness.backbones  # noqa: F401
    import harness.data  # noqa: F401
    import methods  # noqa: F401
    import protocols  # noqa: F401


_load()
