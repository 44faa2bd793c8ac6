"""Loading: the packaged `bench.toml` + the user's file + profile + per-method and per-backbone tables +
`--set` -> one validated `Config`.

The defaults ship inside the package (`harness/bench.toml`). A user's own file — `--config FILE`,
else a `bench.toml` in the working directory — is merged over them, so it needs to hold only
what it changes (new profiles, a dataset root, another default method). Every section maps onto a
dataclass; method, protocol, backbone and dataset sections are typed by the schema their catalog
entry names.
"""
from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

from harness import catalog
from harness.config.build import _deep_merge, _suggest, apply_override, build, parse_value, tomllib
from harness.config.checks import check_names, check_values
from harness.config.schema import Config
from harness.errors import ConfigError

DEFAULTS_PATH = Path(__file__).resolve().parent.parent / "bench.toml"
USER_CONFIG_NAME = "bench.toml"


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


ENTRY_POINTS = "video_ssl_bench.plugins"  # the group a pip-installed plugin declares itself under


def load_plugins(modules: list[str], base: Path | None) -> None:
    """Import plugin modules (each adds catalog entries): those installed with pip that declare an entry point
    in the `video_ssl_bench.plugins` group, then those the user's bench.toml names under `plugins` (its
    folder is importable)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        try:
            ep.load()
        except Exception as e:  # a broken installed package: name it, never a traceback
            raise ConfigError(f"plugin {ep.name!r} ({ep.value}, installed with pip) cannot be loaded: "
                              f"{type(e).__name__}: {e}") from None
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
    check_names(cfg)
    check_values(cfg)
    return cfg

