"""Datasets and tasks. A dataset knows how to find (or generate) its files and list a split's
videos; a task names a dataset, the splits it trains and tests on, and the label it predicts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.catalog import DATASETS, TASKS
from harness.data import moving_digits


@dataclass(frozen=True)
class Task:
    """A labelled evaluation task: `label` is the manifest label key, `classes` its class names."""

    name: str
    dataset: str
    label: str
    classes: tuple[str, ...]
    train_split: str = "train"
    test_split: str = "test"
    description: str = ""


@DATASETS.register("moving-digits")
class MovingDigits:
    """The embedded dataset, generated on first use into the cache directory."""

    config_class = moving_digits.MovingDigitsConfig
    description = "embedded: handwritten digits moving over textures (H.264 + AAC + captions)"
    splits = ("pretrain", "train", "test")

    @staticmethod
    def prepare(cfg: moving_digits.MovingDigitsConfig, cache_root: Path, size: str | None = None,
                progress: bool = True) -> Path:
        return moving_digits.prepare(cfg, cache_root, size=size, progress=progress)

    @classmethod
    def split(cls, cfg: Any, cache_root: Path, split: str, progress: bool = True) -> tuple[Path, list[dict]]:
        """(directory, entries) of one split, generating the dataset first if needed."""
        manifest = cls.prepare(cfg, cache_root, progress=progress)
        body = moving_digits.load_manifest(manifest)
        return manifest.parent, [v for v in body["videos"] if v["split"] == split]


TASKS.register("digits-appearance")(Task(
    "digits-appearance", "moving-digits", "digit", tuple(str(d) for d in range(10)),
    description="which digit (one frame suffices; like UCF101/K400)"))
TASKS.register("digits-motion")(Task(
    "digits-motion", "moving-digits", "motion", tuple(moving_digits.MOTIONS),
    description="how it moves; five time-reversed pairs (like SSv2/Diving48)"))
