"""`random_init`: the encoder as initialised, no pre-training — the floor every SSL table reports."""
from __future__ import annotations

from dataclasses import dataclass

from harness.catalog import METHODS
from methods.base import Method


@dataclass
class RandomInitConfig:
    """No options: the encoder's own initialisation under the run's seed."""


@METHODS.register("random_init")
class RandomInit(Method):
    config_class = RandomInitConfig
    description = "reference row: untrained encoder (same seed and init as the others)"
    needs_pretraining = False
