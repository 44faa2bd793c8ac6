"""`bench config show`: the resolved configuration as TOML, cut to what a run reads, and the pre-training
keys it would train or reuse."""
from __future__ import annotations

from typing import Any

from harness import code_version
from harness.config.schema import Config
from harness.config.sections import resolved_precision
from harness.errors import BenchError


def used_sections(cfg: Config) -> dict[str, Any]:
    """The resolved configuration without the sections the selected method, protocol, backbone and
    datasets do not read."""
    d = cfg.to_dict()
    datasets = [*([cfg.pretrain.dataset] if cfg.pretrains else []), *cfg.task_datasets()]
    out = {k: d[k] for k in ("profile", "method", "protocol", "run", "data", "backbone")}
    if cfg.pretrains:
        out["augment"], out["pretrain"] = d["augment"], d["pretrain"]
    out["datasets"] = {n: d["datasets"][n] for n in dict.fromkeys(datasets)}
    out["backbones"] = {cfg.backbone.name: d["backbones"][cfg.backbone.name]}
    out["methods"] = {cfg.method: d["methods"][cfg.method]}
    out["protocols"] = {cfg.protocol: d["protocols"][cfg.protocol]}
    if d.get("plugins"):
        out["plugins"] = d["plugins"]
    return out


def show(cfg: Config, every_section: bool = False) -> str:
    """The configuration as TOML with the files it came from, then the pre-training key on each device kind
    the run could use (a method without pre-training says so)."""
    import tomli_w

    d = cfg.to_dict() if every_section else used_sections(cfg)
    d.pop("sources", None)
    lines = [f"# files: {', '.join(cfg.sources)}", tomli_w.dumps(d)]
    if not cfg.pretrains:
        return "\n".join([*lines, f"# {cfg.method} does not pre-train"])
    version = code_version.pretrain_version(cfg.method)
    devices = ["cpu", "cuda"] if cfg.run.device == "auto" else [cfg.run.device]
    keys = []
    for dev in devices:
        try:
            prec = resolved_precision(cfg.pretrain.precision, dev)
        except BenchError:
            continue
        keys.append(f"{cfg.pretrain_key(dev, prec, version)} ({dev}, {prec})")
    return "\n".join([*lines, f"# pre-training key: {' / '.join(keys)}; training code version {version}"])
