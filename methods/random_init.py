"""`random_init`: the encoder as initialised, no pre-training — the floor every SSL table reports."""
from __future__ import annotations

from methods.base import Method
from methods.configs import RandomInitConfig


class RandomInit(Method):
    """The untrained encoder under the run's seed (its config schema says it does not pre-train)."""

    def __init__(self, encoder, cfg: RandomInitConfig):
        super().__init__(encoder, cfg)
