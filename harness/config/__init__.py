"""Typed configuration: one validated `Config` from the packaged `bench.toml`, the user's file, a profile and
`--set` overrides. Unknown keys, wrong types, out-of-range values and unknown names raise `ConfigError`,
whose message names the key and says what is allowed; the CLI turns it into exit code 2 before anything
is written. Nothing here imports torch.

The rooms: `sections` (the top-level dataclasses), `schema` (`Config` and its identities), `build`
(typed building and `--set`), `checks` (names and ranges), `load` (files, profiles, plugins). This
module is their one public face.
"""
from harness.config.build import apply_override, build, parse_value, to_plain
from harness.config.load import (
                                 DEFAULTS_PATH,
                                 USER_CONFIG_NAME,
                                 load_config,
                                 load_plugins,
                                 load_raw,
                                 read_toml,
                                 resolve,
                                 user_config_path,
)
from harness.config.schema import Config, default_cache_dir, method_pretrains
from harness.config.sections import (
                                 AugmentConfig,
                                 BackboneConfig,
                                 ClipConfig,
                                 DataConfig,
                                 PretrainConfig,
                                 RunConfig,
                                 at_least,
                                 fields_at_least,
                                 resolved_precision,
)
from harness.errors import ConfigError

__all__ = ["AugmentConfig", "BackboneConfig", "ClipConfig", "Config", "ConfigError", "DEFAULTS_PATH", "DataConfig",
           "PretrainConfig", "RunConfig", "USER_CONFIG_NAME", "apply_override", "at_least", "build",
           "default_cache_dir", "fields_at_least", "load_config", "load_plugins", "load_raw", "method_pretrains",
           "parse_value", "read_toml", "resolve", "resolved_precision", "to_plain", "user_config_path"]
