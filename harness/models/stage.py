"""`Stage`: what the runner hands an encoder's or a method's `prepare` hook.

Some models learn a frozen part before training and scoring — VIMPAC's VQ tokenizer from the
pre-training frames, VATT's and ClipBERT's text tokenizers from the pre-training captions — and cache
it under a key of its settings and data. They get the data and the cache folder from here, so a model
never opens the catalog, the configuration's datasets or the run's cache layout itself.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.errors import ConfigError


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Stage:
    """The pre-training data a frozen stage learns from, where stages are cached, and how to report.

    `open_split` lists the pre-training split as `(videos folder, entries)` (generating the dataset on
    first use); `open_identity` names the copy (the data part of every stage's cache key). Both are
    called at most once, the split first, and only by a stage that needs them."""

    dataset: str
    open_split: Callable[[], tuple[Path, list[dict]]]
    open_identity: Callable[[], dict[str, Any]]
    cache_root: Path
    fps: float = 0.0  # the rate clips are read at (0: each video's own frames)
    progress: bool = True
    log: Callable[[str], None] = _stderr
    _split: tuple[Path, list[dict]] | None = field(default=None, init=False, repr=False)
    _identity: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def videos(self) -> tuple[Path, list[dict]]:
        """The pre-training split: (videos folder, entries)."""
        if self._split is None:
            self._split = self.open_split()
        return self._split

    def identity(self) -> dict[str, Any]:
        """Which copy of the pre-training data this is (after the split is listed, so it exists)."""
        if self._identity is None:
            self.videos()
            self._identity = self.open_identity()
        return self._identity

    def captions(self, who: str) -> list[str]:
        """Every caption of the pre-training videos, each narration once: what a text tokenizer learns from.
        `who` (the method) names the run in the error a caption-less dataset gets."""
        from harness.data import streams

        _, entries = self.videos()
        texts = [n.text for e in entries for n in streams.narrations(e, float(e.get("fps") or 1.0))]
        if not texts:
            raise ConfigError(f"{who} learns from captions, and the pre-training videos of {self.dataset!r} have "
                              "none (a manifest entry's `caption` or `narrations`)")
        return texts
