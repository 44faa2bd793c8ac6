"""Name -> implementation registries behind `bench list` and the config's name keys.

An entry names its implementation and its config schema as "module:attribute" strings that are
imported on first use, so listing names, reading descriptions and validating a config never
import torch or the other entries. This module imports nothing that registers in it; the
catalog of what exists is `harness.catalog`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from harness.errors import ConfigError


class UnknownNameError(ConfigError, KeyError):
    """An unknown registry name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def import_target(target: Any) -> Any:
    """`"package.module:attribute"` -> the attribute (imported now); any other object is returned as is."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry:
    """One registered name: where its implementation and its config schema live, and a one-line description."""

    name: str
    target: Any  # "module:attribute" or the object itself
    description: str = ""
    config: Any = None  # "module:Class" of its config dataclass, or the class itself


class Registry:
    """A small explicit registry of lazily imported entries, with helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: Any, description: str = "", config: Any = None) -> None:
        """Register `name`; `target` and `config` may be "module:attribute" strings (imported on use)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, description, config)

    def register(self, name: str, description: str = "", config: Any = None) -> Callable[[Any], Any]:
        """Decorator form of `add` for an object defined in the registering module (plugins, tests)."""

        def deco(obj: Any) -> Any:
            self.add(name, obj, description or getattr(obj, "description", ""),
                     config if config is not None else getattr(obj, "config_class", None))
            return obj

        return deco

    def remove(self, name: str) -> None:
        """Forget `name` (tests that register temporary entries clean up with this)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def get(self, name: str) -> Any:
        """The implementation registered as `name` (its module is imported now if it was not)."""
        e = self.entry(name)
        e.target = import_target(e.target)
        return e.target

    def config_class(self, name: str) -> type | None:
        e = self.entry(name)
        e.config = import_target(e.config)
        return e.config

    def description(self, name: str) -> str:
        return self.entry(name).description

    def module(self, name: str) -> str:
        """The module that implements `name` (for code versions), without importing it."""
        t = self.entry(name).target
        return t.partition(":")[0] if isinstance(t, str) else t.__module__

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
