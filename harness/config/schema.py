"""Typed configuration: the packaged `bench.toml` + the user's file + profile + `--set` -> one validated `Config`.

The defaults ship inside the package (`harness/bench.toml`). A user's own file — `--config FILE`,
else a `bench.toml` in the working directory — is merged over them, so it needs to hold only
what it changes (new profiles, a dataset root, another default method). Every section maps onto a
dataclass; method, protocol, backbone and dataset sections are typed by the schema their catalog
entry names. Unknown keys, wrong types, out-of-range values and unknown names raise
`ConfigError`, whose message names the key and says what is allowed; the CLI turns it into exit
code 2 before anything is written. Nothing here imports torch.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import importlib
import json
import math
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness import catalog
from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Config", "ConfigError", "load_config", "DEFAULTS_PATH"]

DEFAULTS_PATH = Path(__file__).resolve().parent / "bench.toml"
USER_CONFIG_NAME = "bench.toml"


# ----------------------------------------------------------------------------- sections


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

    bookkeeping: typing.ClassVar[tuple[str, ...]] = ("checkpoint_every", "log_every")

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
    plugins: list[str] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)  # the files merged, in order
    # task -> protocol -> settings that protocol uses for that task alone (SSv2 fine-tunes without flips)
    task_overrides: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def task_protocol_cfg(self, task: str, protocol: str | None = None) -> Any:
        """The selected (or named) protocol's settings for `task`: its section with the task's overrides."""
        name = protocol or self.protocol
        over = self.task_overrides.get(task, {}).get(name)
        return dataclasses.replace(self.protocols[name], **over) if over else self.protocols[name]

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

    def task_datasets(self) -> list[str]:
        """Datasets the selected protocol's tasks read, in first-use order."""
        names = [catalog.TASKS.get(t).dataset for t in getattr(self.protocol_cfg, "tasks", [])]
        return list(dict.fromkeys(names))

    def cache_root(self) -> Path:
        return Path(self.run.cache_dir).expanduser() if self.run.cache_dir else default_cache_dir()

    def results_root(self) -> Path:
        """The results folder (records live in its `runs/`); relative paths are relative to the working directory."""
        return Path(self.run.results_dir).expanduser().resolve()

    def runs_dir(self) -> Path:
        return self.results_root() / "runs"

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @property
    def pretrains(self) -> bool:
        """Whether the selected method pre-trains (its config schema says; `random_init` does not)."""
        return method_pretrains(self.method_cfg)

    # identity -------------------------------------------------------------
    def encoder_identity(self, pretrains: bool) -> dict[str, Any]:
        """The settings that shape the encoder a protocol receives, flat and keyed by config path.

        For a method that pre-trains: the method's own section, the backbone, the augmentation, the
        schedule and the pre-training data. For one that does not (random_init): the backbone only.
        """
        d = self.to_dict()
        if not d["backbone"]["clip"].get("fps"):  # an option added later names the encoder only when set
            d["backbone"]["clip"].pop("fps", None)
        out = _flat({"backbone": d["backbone"], f"backbones.{self.backbone.name}": d["backbones"][self.backbone.name]})
        ident = getattr(self.method_cfg, "identity", None)
        if not pretrains and callable(ident):  # a method that brings its own weights (a checkpoint file)
            out.update(_flat({f"methods.{self.method}": ident()}))
        if pretrains:
            pre = {k: v for k, v in d["pretrain"].items() if k not in PretrainConfig.bookkeeping}
            for name, default in (("adam_betas", [0.9, 0.999]), ("adam_eps", 1e-8)):
                if pre.get(name) == default:  # options added later name the encoder only when set
                    pre.pop(name)
            if pre.get("sync_bn") == "all":  # named only when set otherwise, so older keys stay valid
                pre.pop("sync_bn")
            elif "WORLD_SIZE" in os.environ:  # BN over each process's share: the process count shapes it
                pre["processes"] = int(os.environ["WORLD_SIZE"])
            out.update(_flat({f"methods.{self.method}": d["methods"][self.method], "augment": d["augment"],
                              "pretrain": pre, f"datasets.{self.pretrain.dataset}": _dataset_identity(self.dataset_cfg)}))
        return out

    def protocol_identity(self) -> dict[str, Any]:
        """The settings that shape what the protocol measures (not which tasks, not batch sizes of extraction)."""
        cfg = self.protocol_cfg
        skip = set(getattr(type(cfg), "bookkeeping", ()))
        # options with a default (low-shot) are named only when set, so adding one leaves earlier records' identity as is
        skip |= {f.name for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING
                 and getattr(cfg, f.name) == f.default}
        body = {k: v for k, v in to_plain(cfg).items() if k not in skip}
        out = _flat({f"protocols.{self.protocol}": body})
        for t in getattr(cfg, "tasks", []):  # a task's own settings name the variant of the runs that score it
            if self.task_overrides.get(t, {}).get(self.protocol):
                out.update(_flat({f"task_overrides.{t}.{self.protocol}": self.task_overrides[t][self.protocol]}))
        for name in self.task_datasets():
            out.update(_flat({f"datasets.{name}": _dataset_identity(self.datasets[name])}))
        return out

    def pretrain_key(self, device: str, precision: str, code_version: str) -> str:
        """Names a pre-trained encoder: a hash of everything that shapes it, the seed, the code version of
        the training path, the device kind and the resolved precision. Same key, same encoder."""
        payload = {"method": self.method, "settings": self.encoder_identity(True), "seed": self.run.seed,
                   "code": code_version, "device": device, "precision": precision}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def method_pretrains(method_cfg: Any) -> bool:
    """A method's config schema declares `pretrains = False` when its encoder is used as initialised."""
    return bool(getattr(type(method_cfg), "pretrains", True))


def _dataset_identity(cfg: Any) -> Any:
    ident = getattr(cfg, "identity", None)
    return ident() if callable(ident) else to_plain(cfg)


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def resolved_precision(precision: str, device: str) -> str:
    """`auto` is bf16 on CUDA and fp32 on CPU; bf16 on a CPU is a mistake the user hears about."""
    if precision == "bf16" and device != "cuda":
        raise ConfigError("pretrain.precision='bf16' needs a CUDA device; use 'auto' or 'fp32' on a CPU")
    if precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return precision


def default_cache_dir() -> Path:
    """`$BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/video-ssl-bench`, else `~/.cache/video-ssl-bench`."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"]).expanduser()
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
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def build(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against the annotation `tp` and build dataclasses; raise ConfigError on a mismatch."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path or 'the config'}: expected a table, got {value!r}")
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
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key {sub!r} ({_type_name(hints[f.name])})")
        return tp(**kwargs)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed: {', '.join(map(repr, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return build(arg, value, path)
            except ConfigError:
                pass
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
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
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
        parts = [parts[0] + "s", str(raw.get(parts[0], "")), *parts[1:]]
    node = raw
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None and i > 0:  # a registered entry with no section yet (e.g. backbones.r3d_18.x)
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            allowed = sorted(k for k, v in node.items() if isinstance(v, dict))
            raise ConfigError(f"--set {key.strip()}: no section {where!r}" + _suggest(p, allowed))
        node = nxt
    node[parts[-1]] = parse_value(text.strip())


def read_toml(path: Path) -> dict:
    """One TOML file as a dict; any way it can be unreadable is a ConfigError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a TOML file") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or e}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def user_config_path(explicit: str | Path | None = None) -> Path | None:
    """`--config FILE` if given, else `./bench.toml` if the working directory has one, else None."""
    if explicit is not None:
        if str(explicit).strip() == "":
            raise ConfigError("--config: empty path")
        return Path(explicit).expanduser()
    local = Path.cwd() / USER_CONFIG_NAME
    if local.exists() and local.resolve() != DEFAULTS_PATH:
        return local
    return None


_TOP_KEYS = {"default_profile": str, "method": str, "protocol": str, "plugins": list, "profiles": dict, "by_method": dict,
             "by_backbone": dict,
             **{k: dict for k in ("run", "data", "backbone", "augment", "pretrain", "datasets", "backbones",
                                  "methods", "protocols")}}
_KIND = {str: "a string", list: "a list", dict: "a table"}


def _check_raw(raw: dict, source: str) -> None:
    """Shape checks on a file's top level, so a stray `profiles = 5` is a message, not a traceback."""
    for key, tp in _TOP_KEYS.items():
        if key in raw and not isinstance(raw[key], tp):
            raise ConfigError(f"{source}: '{key}' must be {_KIND[tp]}, got {raw[key]!r}")
    for name, body in raw.get("profiles", {}).items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [profiles.{name}] must be a table, got {body!r}")
    if not all(isinstance(p, str) for p in raw.get("plugins", [])):
        raise ConfigError(f"{source}: 'plugins' must be a list of module names")


def load_raw(path: str | Path | None = None) -> tuple[dict, list[str]]:
    """The packaged defaults with the user's file merged over them, and the files read (in order)."""
    raw = read_toml(DEFAULTS_PATH)
    sources = [str(DEFAULTS_PATH)]
    user = user_config_path(path)
    if user is not None:
        mine = read_toml(user)
        _check_raw(mine, str(user))
        raw = _deep_merge(raw, mine)
        sources.append(str(user))
    return raw, sources


def load_plugins(modules: list[str], base: Path | None) -> None:
    """Import plugin modules (each adds catalog entries); the user's config folder is importable."""
    if base is not None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"plugins: cannot import {name!r} ({e})") from None


def load_config(
    profile: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    method: str | None = None,
    protocol: str | None = None,
    seed: int | None = None,
    path: str | Path | None = None,
    results_dir: str | None = None,
) -> Config:
    """Resolve defaults + user file + profile + overrides into a validated Config."""
    raw, sources = load_raw(path)
    plugins = raw.pop("plugins", [])
    load_plugins(plugins, Path(sources[-1]).parent if len(sources) > 1 else None)
    profiles = raw.pop("profiles", {})
    default = raw.pop("default_profile", "embedded")
    for label, value in (("--profile", profile), ("--method", method), ("--protocol", protocol)):
        if value is not None and not value.strip():
            raise ConfigError(f"{label}: empty value; see `bench list {label[2:]}s`")
    profile = profile or default
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(sorted(profiles))}")
    body = dict(profiles[profile])
    if not isinstance(body.get("by_method", {}), dict):
        raise ConfigError(f"[profiles.{profile}.by_method] must be a table of method names")
    layers = [raw.pop("by_method", {}), body.pop("by_method", {})]
    chosen = method or _set_value(overrides, "method") or body.get("method") or raw.get("method")
    raw = _deep_merge(_by_method(raw, layers[0], chosen, "by_method"), body)
    raw = _by_method(raw, layers[1], chosen, f"profiles.{profile}.by_method")
    backbone = _set_value(overrides, "backbone.name") or raw.get("backbone", {}).get("name")
    raw = _by_backbone(raw, raw.pop("by_backbone", {}), backbone)
    raw["profile"] = profile
    if method is not None:
        raw["method"] = method
    if protocol is not None:
        raw["protocol"] = protocol
    for o in overrides:
        apply_override(raw, o)
    if seed is not None:
        raw.setdefault("run", {})["seed"] = seed
    if results_dir is not None:
        if not results_dir.strip():
            raise ConfigError("--results-dir: empty path")
        raw.setdefault("run", {})["results_dir"] = results_dir
    cfg = resolve(raw)
    cfg.plugins, cfg.sources = list(plugins), sources
    return cfg


def _set_value(overrides: list[str] | tuple[str, ...], key: str) -> str | None:
    """The value a `--set key=value` gives to a top-level key, if any (the last one wins)."""
    found = None
    for o in overrides:
        k, _, v = o.partition("=")
        if k.strip() == key:
            found = str(parse_value(v.strip()))
    return found


def _by_method(raw: dict, table: dict, method: str | None, where: str) -> dict:
    """Merge the `by_method` overrides of the selected method: settings that differ per method within
    a profile (the ρ study's MoCo uses SGD at 0.4 where the others use LARS at 4.8)."""
    for name, body in table.items():
        if name not in catalog.METHODS:
            raise ConfigError(f"[{where}.{name}]: unknown method {name!r}" + _suggest(name, catalog.METHODS.names()))
        if not isinstance(body, dict):
            raise ConfigError(f"[{where}.{name}] must be a table of overrides, got {body!r}")
    return _deep_merge(raw, table.get(method, {})) if method in table else raw


def _by_backbone(raw: dict, table: dict, backbone: str | None) -> dict:
    """Merge the `by_backbone` settings of the selected backbone over everything but `--set`: what an
    encoder brings with it whichever method trains it (VIMPAC's clip shape; random_init with its
    backbone gets the same). A profile's `by_backbone` entries are merged over the defaults' before."""
    for name, body in table.items():
        if name not in catalog.BACKBONES:
            raise ConfigError(f"[by_backbone.{name}]: unknown backbone {name!r}"
                              + _suggest(name, catalog.BACKBONES.names()))
        if not isinstance(body, dict):
            raise ConfigError(f"[by_backbone.{name}] must be a table of overrides, got {body!r}")
    return _deep_merge(raw, table.get(backbone, {})) if backbone in table else raw


def resolve(raw: dict) -> Config:
    """Validate a raw tree (after merging) into a Config, typing registry sections by their schemas."""
    raw = copy.deepcopy(raw)
    sections: dict[str, dict] = {}
    for kind in ("datasets", "backbones", "methods", "protocols"):
        registry = catalog.REGISTRIES[kind]
        table = raw.pop(kind, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{kind}: expected a table of sections, got {table!r}")
        typed = {}
        for name, body in table.items():
            if name not in registry:
                raise ConfigError(f"[{kind}.{name}]: unknown name {name!r}" + _suggest(name, registry.names()))
            typed[name] = build(registry.config_class(name), body, f"{kind}.{name}")
        sections[kind] = typed
    for key in ("method", "protocol"):
        if key not in raw:
            raise ConfigError(f"missing key {key!r}")
    cfg = build(Config, {**raw, **{k: {} for k in sections}}, "")
    for k, v in sections.items():
        setattr(cfg, k, v)
    _check_names(cfg)
    _check_values(cfg)
    return cfg


def _check_names(cfg: Config) -> None:
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
                table[name] = build(registry.config_class(name), {}, f"{label}:{name}")
            except ConfigError as e:
                raise ConfigError(f"{label} {name!r} needs a section in bench.toml: {e}") from None
    proto = cfg.protocol_cfg
    for t in getattr(proto, "tasks", []):
        if t not in catalog.TASKS:
            raise ConfigError(f"protocols.{cfg.protocol}.tasks: unknown task {t!r}" + _suggest(t, catalog.TASKS.names()))
        ds = catalog.TASKS.get(t).dataset
        if ds not in cfg.datasets:
            raise ConfigError(f"task {t!r} reads dataset {ds!r}, which has no [datasets.{ds}] section")


def at_least(path: str, v: float, low: float, strict: bool = False) -> None:
    """The range check every schema uses: `v` >= `low` (> with `strict`), else a ConfigError naming `path`."""
    if v < low or (strict and v == low):
        raise ConfigError(f"{path}: must be {'>' if strict else '>='} {low:g}, got {v:g}")


def fields_at_least(section: str, obj: Any, names: tuple[str, ...], low: float, strict: bool = False) -> None:
    """`at_least` for several fields of one config section, named `<section>.<field>` in the message."""
    for name in names:
        at_least(f"{section}.{name}", getattr(obj, name), low, strict)


def _check_values(cfg: Config) -> None:
    """Range checks that types cannot express; each names the key and the allowed range."""
    r = cfg.run
    at_least("run.seed", r.seed, 0)
    at_least("run.threads", r.threads, 0)
    if not r.results_dir.strip():
        raise ConfigError("run.results_dir: empty path")
    at_least("data.num_workers", cfg.data.num_workers, 0)
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ConfigError(f"data.max_bad_fraction: in [0, 1], got {cfg.data.max_bad_fraction}")
    p = cfg.pretrain
    for name in ("batch_size", "checkpoint_every", "log_every"):
        at_least(f"pretrain.{name}", getattr(p, name), 1)
    at_least("pretrain.lr_batch", p.lr_batch, 0)
    at_least("pretrain.lr", p.lr, 0, strict=True)
    for name in ("epochs", "weight_decay", "momentum", "warmup_epochs", "grad_clip"):
        at_least(f"pretrain.{name}", getattr(p, name), 0)
    if p.momentum >= 1:
        raise ConfigError(f"pretrain.momentum: must be < 1, got {p.momentum:g}")
    if len(p.adam_betas) != 2 or not all(0 <= b < 1 for b in p.adam_betas):
        raise ConfigError(f"pretrain.adam_betas: two values in [0, 1), got {p.adam_betas}")
    at_least("pretrain.adam_eps", p.adam_eps, 0, strict=True)
    if p.warmup_epochs > p.epochs:
        raise ConfigError(f"pretrain.warmup_epochs ({p.warmup_epochs:g}) must be <= pretrain.epochs ({p.epochs})")
    c = cfg.backbone.clip
    for name in ("frames", "stride", "crop_size"):
        at_least(f"backbone.clip.{name}", getattr(c, name), 1)
    if c.test_short_side < c.crop_size:
        raise ConfigError(f"backbone.clip.test_short_side ({c.test_short_side}) must be >= crop_size ({c.crop_size})")
    if len(c.mean) != 3 or len(c.std) != 3:
        raise ConfigError("backbone.clip.mean and .std need 3 values (RGB)")
    if min(c.std) <= 0:
        raise ConfigError(f"backbone.clip.std: must be > 0, got {c.std}")
    at_least("backbone.clip.fps", c.fps, 0)
    a = cfg.augment
    for name in ("crop_scale", "crop_ratio", "blur_sigma"):
        v = getattr(a, name)
        if len(v) != 2 or v[0] > v[1] or v[0] <= 0:
            raise ConfigError(f"augment.{name}: expected [low, high] with 0 < low <= high, got {v}")
    if a.crop_scale[1] > 1:
        raise ConfigError(f"augment.crop_scale: an area fraction in (0, 1], got {a.crop_scale}")
    if len(a.jitter) != 4 or min(a.jitter) < 0 or a.jitter[3] > 0.5:
        raise ConfigError(f"augment.jitter: expected [brightness, contrast, saturation, hue] >= 0 with hue <= 0.5, "
                          f"got {a.jitter}")
    for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
        v = getattr(a, name)
        if not 0 <= v <= 1:
            raise ConfigError(f"augment.{name}: a probability in [0, 1], got {v}")
    for task, per in cfg.task_overrides.items():  # typed and checked like the sections they override
        if task not in catalog.TASKS:
            raise ConfigError(f"task_overrides.{task}: unknown task {task!r}" + _suggest(task, catalog.TASKS.names()))
        for proto, fields in per.items():
            if proto not in cfg.protocols:
                raise ConfigError(f"task_overrides.{task}.{proto}: unknown protocol {proto!r}"
                                  + _suggest(proto, list(cfg.protocols)))
            if not isinstance(fields, dict):
                raise ConfigError(f"task_overrides.{task}.{proto}: expected a table of settings, got {fields!r}")
            if "tasks" in fields:
                raise ConfigError(f"task_overrides.{task}.{proto}.tasks: a task's overrides cannot name tasks")
            base = to_plain(cfg.protocols[proto])
            built = build(type(cfg.protocols[proto]), {**base, **fields}, f"task_overrides.{task}.{proto}")
            per[proto] = {k: getattr(built, k) for k in fields}
            if proto == cfg.protocol and task in getattr(cfg.protocol_cfg, "tasks", []):
                built.validate()
    checked = [cfg.method_cfg, cfg.protocol_cfg, cfg.backbone_cfg, cfg.dataset_cfg,
               *(cfg.datasets[d] for d in cfg.task_datasets())]
    for section in {id(s): s for s in checked}.values():
        check = getattr(section, "validate", None)
        if check is not None:
            check()
