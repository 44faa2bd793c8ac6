"""The top-level sections of a configuration (run, data, backbone and its clip, augment, pretrain) and the
range checks every schema shares. Models and datasets read these; nothing here knows the catalog."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from harness.config.build import to_plain
from harness.errors import ConfigError


@dataclass
class RunConfig:
    """Where and how a run executes; none of this changes what is learned except `seed`."""

    seed: int
    device: Literal["auto", "cpu", "cuda"]
    threads: int  # torch intra-op threads; 0 keeps torch's default
    results_dir: str  # run records go to <results_dir>/runs; relative to the working directory
    cache_dir: str  # datasets and checkpoints; "" means the user's cache dir


@dataclass
class DataConfig:
    """How videos are read: worker count, in-memory frame cache, tolerance for broken files."""

    num_workers: int
    cache_frames: bool  # keep decoded videos in memory across epochs (small datasets only)
    max_bad_fraction: float  # abort when more than this fraction of videos cannot be decoded
    # where pre-training clips are colour-augmented and normalised: in the loader's workers, or on the
    # training device for the whole batch at once (a GPU does it in a fraction of a worker's time)
    augment_on: Literal["loader", "device"] = "loader"


@dataclass
class ClipConfig:
    """The clip an encoder reads: frames x stride, training crop and evaluation short side.

    `fps` > 0 defines the stride in time: frames are taken at `fps` (the ρ configs: 30) whatever rate a
    video was recorded at, so a clip lasts (frames - 1) x stride / fps seconds in every video; 0 counts
    the stride in each video's own frames (the embedded data, recorded at one rate)."""

    frames: int
    stride: int
    crop_size: int
    test_short_side: int
    mean: list[float]
    std: list[float]
    fps: float = 0.0


@dataclass
class BackboneConfig:
    """Which encoder to build; its own options live in `[backbones.<name>]`."""

    name: str
    clip: ClipConfig


def when_set(obj: Any) -> dict[str, Any]:
    """A section as plain data without the options its class lists in `named_when_set` that sit at their
    defaults: an option added after encoders, fits and records were keyed names what it keys only when it
    is set, so everything keyed before it keeps its key."""
    later = getattr(type(obj), "named_when_set", ())
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(obj) if f.name in later}
    # an option whose default changed later stays unnamed at the value it had when it was added (`unnamed`),
    # so the new default is named and never shares a key with what was keyed before
    defaults.update(getattr(type(obj), "unnamed", {}))
    return {k: v for k, v in to_plain(obj).items() if not (k in defaults and v == to_plain(defaults[k]))}


@dataclass
class AugmentConfig:
    """Per-clip pre-training augmentation (one random draw per clip, applied to all its frames).

    `crop_mode = "area"`: a random resized crop of `crop_scale` of the frame's area and `crop_ratio` aspect
    (the released ρ configs' aug+); `"scale"`: VGG-style scale jitter, the frame's short side resized to a
    size uniform in `jitter_scales` pixels and a `crop_size` square cut at random (the ρ paper's default
    augmentation, B.1; PySlowFast's TRAIN_JITTER_SCALES)."""

    named_when_set: ClassVar[tuple[str, ...]] = ("crop_mode", "jitter_scales")

    crop_scale: list[float]
    crop_ratio: list[float]
    flip_p: float
    jitter: list[float]  # brightness, contrast, saturation, hue
    jitter_p: float
    grayscale_p: float
    blur_p: float
    blur_sigma: list[float]
    crop_mode: Literal["area", "scale"] = "area"
    jitter_scales: list[float] = dataclasses.field(default_factory=lambda: [256.0, 320.0])


@dataclass
class PretrainConfig:
    """The pre-training schedule and optimiser, shared by every method."""

    bookkeeping: typing.ClassVar[tuple[str, ...]] = ("checkpoint_every", "log_every")
    named_when_set: typing.ClassVar[tuple[str, ...]] = ("sync_bn", "adam_betas", "adam_eps", "steps", "warmup_steps",
                                                        "init")

    dataset: str
    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "adamw", "lars"]
    lr: float
    lr_batch: int  # the batch `lr` is given for: the LR used is lr x batch_size / lr_batch (0: lr as given)
    lr_schedule: Literal["cosine", "cosine-after-warmup", "linear"]  # see harness.engine.lr_at
    weight_decay: float
    momentum: float
    warmup_epochs: float
    grad_clip: float  # 0 disables clipping
    precision: Literal["auto", "fp32", "bf16"]  # auto: bf16 on CUDA, fp32 on CPU
    channels_last: bool
    compile: bool
    checkpoint_every: int  # optimizer steps between checkpoints
    log_every: int
    # Over several processes (torchrun): "all" normalises every BatchNorm over the global batch, so N
    # processes learn what one does; "heads" only the projection/prediction MLPs' (the ρ study's SyncBN
    # MLPs; the backbone's BN sees each process's share); "none" none. One process: no difference.
    sync_bn: Literal["all", "heads", "none"] = "all"
    # AdamW's (beta1, beta2) and epsilon: torch's defaults; VIMPAC pre-trains with (0.9, 0.98), 1e-8
    adam_betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    # a schedule counted in updates (VIMPAC: 12K, VATT: 500K), whatever the dataset's size; 0: `epochs` of it.
    # `warmup_steps` likewise replaces `warmup_epochs` when set
    steps: int = 0
    warmup_steps: int = 0
    # Staged initialisation: where the encoder's parts start before this pre-training, as the papers start
    # theirs (ClipBERT's CNN from ImageNet, its text tower from BERT). Each key is a part of the encoder (a
    # module path such as "cnn" or "bert"; "encoder" for all of it), each value a source: a weights file
    # (an encoder.pt, a checkpoint) or "run:METHOD;KEY=VALUE;..." -- the encoder another run of this profile
    # and seed pre-trains, trained first when it is not cached. Loaded exactly; the sources' keys are part
    # of this encoder's key (harness.pretraining.init_sources)
    init: dict[str, str] = dataclasses.field(default_factory=dict)



def at_least(path: str, v: float, low: float, strict: bool = False) -> None:
    """The range check every schema uses: `v` >= `low` (> with `strict`), else a ConfigError naming `path`."""
    if v < low or (strict and v == low):
        raise ConfigError(f"{path}: must be {'>' if strict else '>='} {low:g}, got {v:g}")


def at_most(path: str, v: float, high: float, why: str) -> None:
    """`v` <= `high`, else a ConfigError naming `path` and why the bound exists: sizes that multiply time or
    memory (views, frames, epochs) and rates far outside what trains are refused before any work."""
    if v > high:
        def text(x: float) -> str:
            return str(x) if isinstance(x, int) else f"{x:g}"

        raise ConfigError(f"{path}: at most {text(high)} ({why}), got {text(v)}")


LR_MAX = 100.0  # no schedule in the papers goes near it (LARS: 4.8 for 512 clips); 1e9 trains nothing
LR_WHY = "a learning rate beyond this diverges; the papers' largest is 4.8 (LARS, 512 clips)"


def fields_at_least(section: str, obj: Any, names: tuple[str, ...], low: float, strict: bool = False) -> None:
    """`at_least` for several fields of one config section, named `<section>.<field>` in the message."""
    for name in names:
        at_least(f"{section}.{name}", getattr(obj, name), low, strict)



def resolved_precision(precision: str, device: str) -> str:
    """`auto` is bf16 on CUDA and fp32 on CPU; bf16 on a CPU is a mistake the user hears about."""
    if precision == "bf16" and device != "cuda":
        raise ConfigError("pretrain.precision='bf16' needs a CUDA device; use 'auto' or 'fp32' on a CPU")
    if precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return precision
