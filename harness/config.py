"""Typed configuration: `bench.toml` + profile + `--set` overrides -> one validated `Config`.

Every section of `bench.toml` maps onto a dataclass. Method, protocol and backbone sections are
typed by the config class their registry entry declares, so a new method brings its own schema.
Unknown keys, wrong types and unknown names raise `ConfigError`, whose message names the key
and lists what is allowed; the CLI turns it into exit code 2 before anything is written.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "bench.toml"


class ConfigError(ValueError):
    """A configuration mistake: the message says which key, what is wrong and what is allowed."""


# ----------------------------------------------------------------------------- sections


@dataclass
class RunConfig:
    """Where and how a run executes; none of this changes what is learned except `seed`."""

    seed: int
    device: Literal["auto", "cpu", "cuda"]
    threads: int  # torch intra-op threads; 0 keeps torch's default
    results_dir: str  # relative paths are relative to the repository root
    cache_dir: str  # datasets and checkpoints; "" means the user's cache dir


@dataclass
class DataConfig:
    """How videos are read: worker count, in-memory frame cache, tolerance for broken files."""

    num_workers: int
    cache_frames: bool  # keep decoded videos in memory across epochs (small datasets only)
    max_bad_fraction: float  # abort when more than this fraction of videos cannot be decoded


@dataclass
class ClipConfig:
    """The clip an encoder reads: frames x stride, training crop and evaluation short side."""

    frames: int
    stride: int
    crop_size: int
    test_short_side: int
    mean: list[float]
    std: list[float]


@dataclass
class BackboneConfig:
    """Which encoder to build; its own options live in `[backbones.<name>]`."""

    name: str
    clip: ClipConfig


@dataclass
class AugmentConfig:
    """Per-clip pre-training augmentation (one random draw per clip, applied to all its frames)."""

    crop_scale: list[float]
    crop_ratio: list[float]
    flip_p: float
    jitter: list[float]  # brightness, contrast, saturation, hue
    jitter_p: float
    grayscale_p: float
    blur_p: float
    blur_sigma: list[float]


@dataclass
class PretrainConfig:
    """The pre-training schedule and optimiser, shared by every method."""

    dataset: str
    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "adamw", "lars"]
    lr: float
    weight_decay: float
    momentum: float
    warmup_epochs: float
    grad_clip: float  # 0 disables clipping
    precision: Literal["auto", "fp32", "bf16"]  # auto: bf16 on CUDA, fp32 on CPU
    channels_last: bool
    compile: bool
    checkpoint_every: int  # optimizer steps between checkpoints
    log_every: int


@dataclass
class Config:
    """The whole resolved configuration of one invocation."""

    profile: str
    method: str
    protocol: str
    run: RunConfig
    data: DataConfig
    backbone: BackboneConfig
    augment: AugmentConfig
    pretrain: PretrainConfig
    datasets: dict[str, Any]
    backbones: dict[str, Any]
    methods: dict[str, Any]
    protocols: dict[str, Any]

    # convenience accessors -------------------------------------------------
    @property
    def method_cfg(self) -> Any:
        return self.methods[self.method]

    @property
    def protocol_cfg(self) -> Any:
        return self.protocols[self.protocol]

    @property
    def backbone_cfg(self) -> Any:
        return self.backbones[self.backbone.name]

    @property
    def dataset_cfg(self) -> Any:
        return self.datasets[self.pretrain.dataset]

    def cache_root(self) -> Path:
        return Path(self.run.cache_dir) if self.run.cache_dir else default_cache_dir()

    def results_root(self) -> Path:
        p = Path(self.run.results_dir)
        return p if p.is_absolute() else REPO_ROOT / p

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def pretrain_hash(self) -> str:
        """Hash of everything that shapes a pre-trained encoder (not paths, logging or workers)."""
        d = self.to_dict()
        payload = {
            "method": self.method,
            "method_cfg": d["methods"][self.method],
            "backbone": d["backbone"],
            "backbone_cfg": d["backbones"][self.backbone.name],
            "augment": d["augment"],
            "pretrain": {k: v for k, v in d["pretrain"].items() if k not in ("checkpoint_every", "log_every")},
            "dataset": d["datasets"].get(self.pretrain.dataset),
            "seed": self.run.seed,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """`$BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/video-ssl-bench`, else `~/.cache/video-ssl-bench`."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "video-ssl-bench"


# ----------------------------------------------------------------------------- typed building


def to_plain(obj: Any) -> Any:
    """Dataclasses/dicts/lists -> JSON-able plain data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; allowed: {', '.join(allowed) if allowed else '(none)'}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def build(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against the annotation `tp` and build dataclasses; raise ConfigError on a mismatch."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        for k in value:
            if k not in names:
                raise ConfigError(f"unknown key '{path + '.' if path else ''}{k}'" + _suggest(k, names))
        kwargs = {}
        for f in dataclasses.fields(tp):
            sub = f"{path}.{f.name}" if path else f.name
            if f.name in value:
                kwargs[f.name] = build(hints[f.name], value[f.name], sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise ConfigError(f"missing key {sub!r} ({_type_name(hints[f.name])})")
        return tp(**kwargs)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed: {', '.join(map(repr, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return build(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{path}: {value!r} matches none of the allowed types")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        return [build(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        _, vt = typing.get_args(tp)
        return {k: build(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config annotation {tp!r} at {path} is not supported")


# ----------------------------------------------------------------------------- loading


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_value(text: str) -> Any:
    """A `--set` value: a TOML literal (`4`, `0.1`, `true`, `[1, 2]`, `"x"`), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `key.path=value` to the raw tree. `method.x`/`protocol.x` mean the selected one's section."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. --set pretrain.lr=0.1")
    key, text = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    if parts[0] in ("method", "protocol") and len(parts) > 1:
        parts = [parts[0] + "s", raw.get(parts[0], ""), *parts[1:]]
    node = raw
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            allowed = sorted(k for k, v in node.items() if isinstance(v, dict))
            raise ConfigError(f"--set {key}: no section {where!r}" + _suggest(p, allowed))
        node = nxt
    node[parts[-1]] = parse_value(text.strip())


def load_raw(path: Path | None = None) -> dict:
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def load_config(
    profile: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    method: str | None = None,
    protocol: str | None = None,
    seed: int | None = None,
    path: Path | None = None,
) -> Config:
    """Resolve `bench.toml` + profile + overrides into a validated Config."""
    raw = load_raw(path)
    profiles = raw.pop("profiles", {})
    profile = profile or raw.pop("default_profile", "embedded")
    raw.pop("default_profile", None)
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(sorted(profiles))}")
    raw = _deep_merge(raw, profiles[profile])
    raw["profile"] = profile
    if method:
        raw["method"] = method
    if protocol:
        raw["protocol"] = protocol
    for o in overrides:
        apply_override(raw, o)
    if seed is not None:
        raw.setdefault("run", {})["seed"] = seed
    return resolve(raw)


def resolve(raw: dict) -> Config:
    """Validate a raw tree (after merging) into a Config, typing registry sections by their classes."""
    from harness import catalog  # registries; imported late to avoid import cycles

    raw = copy.deepcopy(raw)
    sections: dict[str, dict] = {}
    for kind, registry in (
        ("datasets", catalog.DATASETS),
        ("backbones", catalog.BACKBONES),
        ("methods", catalog.METHODS),
        ("protocols", catalog.PROTOCOLS),
    ):
        table = raw.pop(kind, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{kind}: expected a table")
        typed = {}
        for name, body in table.items():
            if name not in registry:
                raise ConfigError(f"[{kind}.{name}]: unknown name {name!r}" + _suggest(name, registry.names()))
            typed[name] = build(registry.get(name).config_class, body, f"{kind}.{name}")
        sections[kind] = typed
    for key in ("method", "protocol"):
        if key not in raw:
            raise ConfigError(f"missing key {key!r}")
    cfg = build(Config, {**raw, **{k: {} for k in sections}}, "")
    for k, v in sections.items():
        setattr(cfg, k, v)
    _check_names(cfg, catalog)
    _check_values(cfg)
    return cfg


def _check_names(cfg: Config, catalog: Any) -> None:
    for label, name, registry, table in (
        ("method", cfg.method, catalog.METHODS, cfg.methods),
        ("protocol", cfg.protocol, catalog.PROTOCOLS, cfg.protocols),
        ("backbone.name", cfg.backbone.name, catalog.BACKBONES, cfg.backbones),
        ("pretrain.dataset", cfg.pretrain.dataset, catalog.DATASETS, cfg.datasets),
    ):
        if name not in registry:
            raise ConfigError(f"{label}: unknown name {name!r}" + _suggest(name, registry.names()))
        if name not in table:  # a registered entry with no section: use its defaults if it has them
            try:
                table[name] = build(registry.get(name).config_class, {}, f"{label}:{name}")
            except ConfigError as e:
                raise ConfigError(f"{label} {name!r} needs a section in bench.toml: {e}") from None
    tasks = catalog.TASKS.names()
    proto = cfg.protocol_cfg
    for t in getattr(proto, "tasks", []):
        if t not in catalog.TASKS:
            raise ConfigError(f"protocols.{cfg.protocol}.tasks: unknown task {t!r}" + _suggest(t, tasks))


def _positive(path: str, v: float, allow_zero: bool = False) -> None:
    if v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{path}: must be {'>= 0' if allow_zero else '> 0'}, got {v}")


def _check_values(cfg: Config) -> None:
    """Range checks that types cannot express."""
    p = cfg.pretrain
    _positive("pretrain.batch_size", p.batch_size)
    _positive("pretrain.epochs", p.epochs, allow_zero=True)
    _positive("pretrain.lr", p.lr)
    _positive("pretrain.checkpoint_every", p.checkpoint_every)
    _positive("pretrain.warmup_epochs", p.warmup_epochs, allow_zero=True)
    _positive("pretrain.grad_clip", p.grad_clip, allow_zero=True)
    c = cfg.backbone.clip
    _positive("backbone.clip.frames", c.frames)
    _positive("backbone.clip.stride", c.stride)
    _positive("backbone.clip.crop_size", c.crop_size)
    if c.test_short_side < c.crop_size:
        raise ConfigError(f"backbone.clip.test_short_side ({c.test_short_side}) must be >= crop_size ({c.crop_size})")
    if len(c.mean) != 3 or len(c.std) != 3:
        raise ConfigError("backbone.clip.mean and .std need 3 values (RGB)")
    a = cfg.augment
    for name in ("crop_scale", "crop_ratio", "blur_sigma"):
        v = getattr(a, name)
        if len(v) != 2 or v[0] > v[1] or v[0] <= 0:
            raise ConfigError(f"augment.{name}: expected [low, high] with 0 < low <= high, got {v}")
    if len(a.jitter) != 4:
        raise ConfigError(f"augment.jitter: expected [brightness, contrast, saturation, hue], got {a.jitter}")
    for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
        v = getattr(a, name)
        if not 0 <= v <= 1:
            raise ConfigError(f"augment.{name}: a probability in [0, 1], got {v}")
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ConfigError(f"data.max_bad_fraction: in [0, 1], got {cfg.data.max_bad_fraction}")
    for section in (cfg.method_cfg, cfg.protocol_cfg, cfg.backbone_cfg, cfg.dataset_cfg):
        check = getattr(section, "validate", None)
        if check is not None:
            check()
