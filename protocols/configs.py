"""Config schemas of the protocols: one dataclass per protocol, typed and validated, with no torch import.

`bookkeeping` names the fields that do not change what a protocol measures (which tasks it runs,
how many videos go through the encoder at once); everything else identifies the protocol's
variant in the leaderboard. The sources of the defaults are in docs/protocols.md.
"""
from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import ClassVar, Literal

from harness.config import fields_at_least
from harness.config.sections import LR_MAX, LR_WHY, at_most
from harness.errors import ConfigError


@dataclass
class ViewsConfig:
    """What every protocol over labelled video tasks reads: the tasks, the test views, low-shot subsets."""

    bookkeeping: ClassVar[tuple[str, ...]] = ("tasks", "feature_batch", "clip_batch")
    section: ClassVar[str] = ""
    named_when_set: ClassVar[tuple[str, ...]] = ("sampler", "crop_mode", "jitter_scales")

    tasks: list[str]
    temporal_views: int  # test clips per video, uniform over it
    spatial_views: int  # test crops per clip: 1 (centre) or 3 (along the long side)
    feature_batch: int  # videos per batch during extraction
    _: KW_ONLY
    clip_batch: int = 256  # at most this many clips per encoder call: the views of a batch are chunked
    # low-shot: train on a fixed, class-stratified subset of the training videos (ids go in the record)
    train_fraction: float = 1.0  # the share of each class's training videos kept
    train_per_class: int = 0  # or exactly this many per class (0: use train_fraction)
    subset_seed: int = 0  # the subset depends on this alone, so every method is scored on the same videos
    # which frames a clip reads: "clip" = `frames` at `stride` from one start; "segments" = one frame from
    # each of `frames` equal segments of the whole video (PySlowFast's SSv2 loader, the ρ study's SSv2)
    sampler: Literal["clip", "segments"] = "clip"

    @property
    def low_shot(self) -> bool:
        return self.train_fraction < 1 or self.train_per_class > 0

    def _at_least(self, names: tuple[str, ...], low: float, strict: bool = False) -> None:
        fields_at_least(f"protocols.{self.section}", self, names, low, strict)

    def validate(self) -> None:
        if self.spatial_views not in (1, 3):
            raise ConfigError(f"protocols.{self.section}.spatial_views: 1 or 3, got {self.spatial_views}")
        self._at_least(("temporal_views", "feature_batch", "clip_batch"), 1)
        at_most(f"protocols.{self.section}.temporal_views", self.temporal_views, 100,
                "views per test video multiply extraction time and memory; the papers use 10")
        self._at_least(("train_per_class", "subset_seed"), 0)
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"protocols.{self.section}.train_fraction: in (0, 1], got {self.train_fraction}")
        if self.train_per_class and self.train_fraction < 1:
            raise ConfigError(f"protocols.{self.section}: set train_fraction or train_per_class, not both")
        if not self.tasks:
            raise ConfigError(f"protocols.{self.section}.tasks: name at least one task")


@dataclass
class FrozenConfig(ViewsConfig):
    """What the protocols on extracted features read besides views: training clips and BN handling."""

    bookkeeping: ClassVar[tuple[str, ...]] = (*ViewsConfig.bookkeeping, "cache_features")

    train_views: int  # temporal clips per training video (centre crop)
    recompute_bn: bool  # re-estimate BN statistics on the training videos (the ρ study's reference code)
    _: KW_ONLY
    cache_features: bool = True  # store the extraction; the frozen protocols of one encoder share it
    # which tower is scored: the video encoder, or a method's audio encoder (VATT) on the audio under each
    # temporal clip (every spatial view of a clip hears the same audio)
    input: Literal["video", "audio"] = "video"

    def validate(self) -> None:
        super().validate()
        self._at_least(("train_views",), 1)
        at_most(f"protocols.{self.section}.train_views", self.train_views, 100,
                "clips per training video multiply extraction time and memory")


Aggregate = Literal["softmax-mean", "logit-mean", "max"]


@dataclass
class LinearCachedConfig(FrozenConfig):
    """The fast probe: a linear layer on features extracted once (centre crops, `train_views` clips)."""

    section: ClassVar[str] = "linear-cached"

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    standardize: bool
    # how view scores combine: the mean of the softmax (the ρ study, SlowFast's "sum"), the mean of the
    # logits, or the per-class maximum of the softmax (Charades-style max-pooling)
    aggregate: Aggregate = "softmax-mean"

    def validate(self) -> None:
        super().validate()
        self._at_least(("epochs", "batch_size"), 1)
        self._at_least(("lr",), 0, strict=True)
        self._at_least(("weight_decay", "warmup_epochs"), 0)
        at_most(f"protocols.{self.section}.lr", self.lr, LR_MAX, LR_WHY)
        at_most(f"protocols.{self.section}.epochs", self.epochs, 100_000, "the papers fine-tune for at most 200 epochs")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"protocols.{self.section}.warmup_epochs ({self.warmup_epochs}) must be <= epochs "
                              f"({self.epochs})")


@dataclass
class TrainedConfig(ViewsConfig):
    """What the protocols that train on augmented clips share (`linear`, `finetune`): the optimiser, the
    schedule, the training augmentation and how test views combine."""

    epochs: int
    batch_size: int  # videos per step (one random clip each)
    optimizer: Literal["sgd", "adamw"]  # sgd: Nesterov momentum when momentum > 0
    lr: float
    lr_batch: int  # the batch `lr` is given for (linear scaling, as pretrain.lr_batch); 0: as given
    momentum: float
    weight_decay: float
    warmup_epochs: float
    # steps: x0.1 at each of lr_steps (epochs); linear: warm-up, then straight to 0 (VIMPAC's fine-tuning)
    schedule: Literal["cosine", "cosine-after-warmup", "linear", "steps"]
    lr_steps: list[float]
    crop_scale: list[float]  # training crops: area fraction and aspect ratio of a random resized crop
    crop_ratio: list[float]
    flip_p: float
    colour: bool  # also the [augment] section's colour jitter, grayscale and blur
    aggregate: Aggregate
    _: KW_ONLY
    grad_clip: float = 0.0
    label_smoothing: float = 0.0  # VATT fine-tunes with 0.1
    # training crops as `augment.crop_mode`: "area" (crop_scale, crop_ratio) or "scale" (VGG: the short side
    # to a size in jitter_scales pixels, then a crop: the ρ study's downstream training, B.2)
    crop_mode: Literal["area", "scale"] = "area"
    jitter_scales: list[float] = field(default_factory=lambda: [256.0, 320.0])

    def validate(self) -> None:
        super().validate()
        self._at_least(("epochs", "batch_size"), 1)
        self._at_least(("lr",), 0, strict=True)
        self._at_least(("lr_batch", "weight_decay", "warmup_epochs", "grad_clip", "momentum"), 0)
        at_most(f"protocols.{self.section}.lr", self.lr, LR_MAX, LR_WHY)
        at_most(f"protocols.{self.section}.epochs", self.epochs, 100_000, "the papers fine-tune for at most 200 epochs")
        if self.momentum >= 1:
            raise ConfigError(f"protocols.{self.section}.momentum: must be < 1, got {self.momentum:g}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"protocols.{self.section}.warmup_epochs ({self.warmup_epochs:g}) must be <= epochs "
                              f"({self.epochs})")
        if self.schedule == "steps" and not self.lr_steps:
            raise ConfigError(f"protocols.{self.section}.lr_steps: schedule 'steps' needs the epochs of its x0.1 "
                              "decays, e.g. [60, 120, 180]")
        if sorted(self.lr_steps) != list(self.lr_steps) or any(not 0 < e < self.epochs for e in self.lr_steps):
            raise ConfigError(f"protocols.{self.section}.lr_steps: increasing epochs inside (0, {self.epochs}), "
                              f"got {self.lr_steps}")
        for name in ("crop_scale", "crop_ratio"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1] or v[0] <= 0:
                raise ConfigError(f"protocols.{self.section}.{name}: [low, high] with 0 < low <= high, got {v}")
        if self.crop_scale[1] > 1:
            raise ConfigError(f"protocols.{self.section}.crop_scale: an area fraction in (0, 1], got {self.crop_scale}")
        if not 0 <= self.flip_p <= 1:
            raise ConfigError(f"protocols.{self.section}.flip_p: a probability in [0, 1], got {self.flip_p}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"protocols.{self.section}.label_smoothing: in [0, 1), got {self.label_smoothing}")


@dataclass
class LinearConfig(TrainedConfig):
    """The ρ study's linear protocol: frozen weights, backbone in the loop on augmented clips, a linear
    layer (N(0, 0.01) init) trained with SGD; 60 epochs, cosine, warm-up 8, wd 0, 10x3 test views."""

    section: ClassVar[str] = "linear"

    # BN of the frozen backbone while the layer trains: "train" = batch statistics, running statistics
    # re-estimated on the task's training clips (the reference code: model.train(), FROZEN_BN off);
    # "frozen" = the pre-training statistics, BN in eval mode
    bn: Literal["train", "frozen"]
    feature_norm: bool  # a BatchNorm without affine in front of the layer (MAE's probe): scale-free features


@dataclass
class FinetuneConfig(TrainedConfig):
    """End-to-end fine-tuning: the whole encoder plus dropout and a new linear layer (ρ study B.6)."""

    section: ClassVar[str] = "finetune"

    dropout: float  # before the new layer (ρ study: 0.8 on UCF101/HMDB51, 0.5 on SSv2)
    layer_decay: float  # layer-wise LR decay: layer i of L gets decay^(L+1-i); 1 = off (VIMPAC, VATT use it)
    head_init: Literal["normal", "zero"]  # N(0, 0.01) (PySlowFast) or zeros (VIMPAC)

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"protocols.finetune.dropout: in [0, 1), got {self.dropout}")
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"protocols.finetune.layer_decay: in (0, 1], got {self.layer_decay}")


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


@dataclass
class ZeroshotConfig(ViewsConfig):
    """Zero-shot classification through a method's text tower: each class is the mean embedding of its
    prompts (`Task.prompts`, or "a video of <class>."), each test video the mean of its views' embeddings
    in the shared video-text space; the class of highest cosine similarity wins. No training."""

    section: ClassVar[str] = "zeroshot"


@dataclass
class RetrievalTextConfig(ViewsConfig):
    """Text-video retrieval on a test split's own captions: each caption ranks every test video
    (text-to-video) and each video every caption (video-to-text); R@k and the median rank of the true
    pair, as VATT and ClipBERT report them. `max_videos` > 0 scores the first that many test videos only
    (a cross-encoder runs one forward per caption-video pair)."""

    section: ClassVar[str] = "retrieval-text"

    recall_at: list[int]
    max_videos: int  # 0: every test video

    def validate(self) -> None:
        super().validate()
        if not self.recall_at or min(self.recall_at) < 1:
            raise ConfigError(f"protocols.retrieval-text.recall_at: positive ranks, e.g. [1, 5, 10], got {self.recall_at}")
        self._at_least(("max_videos",), 0)
