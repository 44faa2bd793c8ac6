"""`Config`: the whole resolved configuration of one invocation, and the identities cut from it that name
what a run trained (`encoder_identity`, `pretrain_key`) and what it measured (`protocol_identity`)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import catalog
from harness.config.build import to_plain
from harness.config.sections import AugmentConfig, BackboneConfig, DataConfig, PretrainConfig, RunConfig, when_set
from harness.storage import content_key


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
        # a backbone option added later (its schema's `named_when_set`) names the encoder only when set
        out = _flat({"backbone": d["backbone"], f"backbones.{self.backbone.name}": when_set(self.backbone_cfg)})
        ident = getattr(self.method_cfg, "identity", None)
        if not pretrains and callable(ident):  # a method that brings its own weights (a checkpoint file)
            out.update(_flat({f"methods.{self.method}": ident()}))
        if pretrains:
            pre = {k: v for k, v in when_set(self.pretrain).items() if k not in PretrainConfig.bookkeeping}
            if "sync_bn" in pre and "WORLD_SIZE" in os.environ:  # BN over each process's share: the count shapes it
                pre["processes"] = int(os.environ["WORLD_SIZE"])
            out.update(_flat({f"methods.{self.method}": when_set(self.method_cfg), "augment": when_set(self.augment),
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

    def pretrain_key(self, device: str, precision: str, code_version: str, init: dict | None = None) -> str:
        """Names a pre-trained encoder: a hash of everything that shapes it, the seed, the code version of
        the training path, the device kind and the resolved precision, and with `pretrain.init` what each
        part starts from (`init`: the parent runs' keys, the files' hashes). Same key, same encoder."""
        payload = {"method": self.method, "settings": self.encoder_identity(True), "seed": self.run.seed,
                   "code": code_version, "device": device, "precision": precision}
        if init:
            payload["init"] = init
        return content_key(payload)



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


def default_cache_dir() -> Path:
    """`$BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/video-ssl-bench`, else `~/.cache/video-ssl-bench`."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "video-ssl-bench"

