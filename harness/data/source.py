"""The dataset contract: a dataset class lists a split's videos, names the copy a run read and, when it has
them, gives labels of its pre-training videos; its config section's schema says whether a copy is there
and which official splits a run scores. The runner calls these hooks directly; the defaults below are
what a dataset without the capability gets."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import ConfigError


class DatasetConfig:
    """Base of a dataset section's schema (a dataclass subclasses it)."""

    def validate(self) -> None:
        """Range and name checks of the section; a ConfigError names the key."""

    def check_copy(self) -> None:
        """That the copy a user points at is there (real datasets); run before any work. Generated data has
        nothing to check."""

    def official_splits(self) -> tuple[str, ...]:
        """The official splits a run scores one after another and averages (UCF101 and HMDB51 with
        `split = "all"`); empty when the section selects one split."""
        return ()

    def with_split(self, split: str) -> DatasetConfig:
        """This section with one official split selected."""
        return replace(self, split=split)


class Dataset:
    """Base of a dataset class. `split` is the one hook every dataset has; `generated` datasets also give
    `prepare`, `repair` and `rebuild` for `bench data prepare`."""

    name: ClassVar[str] = ""
    generated: ClassVar[bool] = False

    @classmethod
    def split(cls, cfg: Any, cache_root: Path, split: str, progress: bool = True) -> tuple[Path, list[dict]]:
        """(videos folder, entries) of `split`: each entry has an `id`, a `path` under the folder, its
        `frames` and its `labels`."""
        raise NotImplementedError

    @classmethod
    def identity(cls, cfg: Any, cache_root: Path) -> dict[str, Any]:
        """Which copy a run read; it goes into the record (and into the keys of what was learned from it)."""
        return {"name": cls.name}

    @classmethod
    def labels(cls, cfg: Any, entries: list[dict], name: str) -> tuple[tuple[str, ...], list[int]]:
        """Classes and per-video labels `name` of pre-training `entries`, for a method that trains with labels."""
        raise ConfigError(f"dataset {cls.name!r} provides no labels ({name!r}) of its pre-training videos")
