"""Config schemas of the protocols: one dataclass per protocol, typed and validated, with no torch import.

`bookkeeping` names the fields that do not change what a protocol measures (which tasks it runs,
how many videos go through the encoder at once); everything else identifies the protocol's
variant in the leaderboard. The sources of the defaults are in docs/protocols.md.
"""
from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import ClassVar, Literal

from harness.config import fields_at_least
from harness.errors import ConfigError


@dataclass
class FrozenConfig:
    """What every frozen-encoder protocol reads: tasks, views and BN handling (`protocols.frozen`)."""

    bookkeeping: ClassVar[tuple[str, ...]] = ("tasks", "feature_batch")
    section: ClassVar[str] = ""

    tasks: list[str]
    train_views: int  # temporal clips per training video (centre crop)
    temporal_views: int
    spatial_views: int
    recompute_bn: bool  # re-estimate BN statistics on the training videos (the ρ study's reference code)
    feature_batch: int  # videos per encoder call during extraction
    _: KW_ONLY
    # low-shot: train on a fixed, class-stratified subset of the training videos (ids go in the record)
    train_fraction: float = 1.0  # the share of each class's training videos kept
    train_per_class: int = 0  # or exactly this many per class (0: use train_fraction)
    subset_seed: int = 0  # the subset depends on this alone, so every method is scored on the same videos

    def _at_least(self, names: tuple[str, ...], low: float, strict: bool = False) -> None:
        fields_at_least(f"protocols.{self.section}", self, names, low, strict)

    def validate(self) -> None:
        if self.spatial_views not in (1, 3):
            raise ConfigError(f"protocols.{self.section}.spatial_views: 1 or 3, got {self.spatial_views}")
        self._at_least(("train_views", "temporal_views", "feature_batch"), 1)
        self._at_least(("train_per_class", "subset_seed"), 0)
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"protocols.{self.section}.train_fraction: in (0, 1], got {self.train_fraction}")
        if self.train_per_class and self.train_fraction < 1:
            raise ConfigError(f"protocols.{self.section}: set train_fraction or train_per_class, not both")
        if not self.tasks:
            raise ConfigError(f"protocols.{self.section}.tasks: name at least one task")


@dataclass
class LinearConfig(FrozenConfig):
    """Paper: 60 epochs, cosine, warm-up 8 epochs, wd 0, 10 temporal x 3 spatial test views."""

    section: ClassVar[str] = "linear"

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    standardize: bool
    # how view scores combine: the mean of the softmax (the ρ study, SlowFast's "sum"), the mean of the
    # logits, or the per-class maximum of the softmax (Charades-style max-pooling)
    aggregate: Literal["softmax-mean", "logit-mean", "max"] = "softmax-mean"

    def validate(self) -> None:
        super().validate()
        self._at_least(("epochs", "batch_size"), 1)
        self._at_least(("lr",), 0, strict=True)
        self._at_least(("weight_decay", "warmup_epochs"), 0)
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"protocols.linear.warmup_epochs ({self.warmup_epochs}) must be <= epochs ({self.epochs})")


@dataclass
class KnnConfig(FrozenConfig):
    """Weighted kNN on L2-normalised features (Wu et al. 2018, as in the ρ code's online monitor):
    votes exp(cos/τ) from the k nearest training videos; k = 200 and k = 20 are the usual presets."""

    section: ClassVar[str] = "knn"

    k: int
    temperature: float

    def validate(self) -> None:
        super().validate()
        self._at_least(("k",), 1)
        self._at_least(("temperature",), 0, strict=True)


@dataclass
class RetrievalConfig(FrozenConfig):
    """Video retrieval: each test video queries the training videos by cosine similarity; recall@k is
    the share of queries with a same-class video among the k nearest (the video SSL literature's R@k)."""

    section: ClassVar[str] = "retrieval"

    recall_at: list[int]

    def validate(self) -> None:
        super().validate()
        if not self.recall_at or min(self.recall_at) < 1:
            raise ConfigError(f"protocols.retrieval.recall_at: positive ranks, e.g. [1, 5, 10, 20], got {self.recall_at}")
