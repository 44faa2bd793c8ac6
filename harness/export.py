"""`bench export`: a pre-trained encoder taken out of the cache, as a plain state dict in the layout of the
library its backbone comes from, with a JSON that says what it reads and where it came from.

A cached encoder is `<cache>/checkpoints/<method>-<backbone>-<key>/encoder.pt`, its weights under the
harness's `trunk.` prefix. Exported, they load strictly into the source library's own model:

- `r3d_18`, `r2plus1d_18`: torchvision's `torchvision.models.video.<name>()` with `fc = nn.Identity()`
  (the classifier is not part of the encoder);
- `slow_r50`: pytorchvideo's `create_resnet(...)` with the Slow-only arguments the JSON lists and `head=None`
  (the harness pools the last stage's output globally, as the ρ study's linear probe reads it);
- `small3d`, `vimpac`, `vatt`, `clipbert`: the harness's own modules (VATT's blocks are timm's `Block`);
  the state dict loads into the encoder `harness.builders.build_encoder` makes from the JSON's settings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.report.compare import parse_selector, select
from harness.storage import atomic_json, atomic_save, file_sha256

LIBRARY = {"r3d_18": "torchvision", "r2plus1d_18": "torchvision", "slow_r50": "pytorchvideo"}
SLOW_R50_ARGS = {"input_channel": 3, "model_depth": 50, "norm": "torch.nn.BatchNorm3d", "activation": "torch.nn.ReLU",
                 "stem_conv_kernel_size": [1, 7, 7], "stem_pool": "torch.nn.MaxPool3d",
                 "stage_conv_a_kernel_size": [[1, 1, 1], [1, 1, 1], [3, 1, 1], [3, 1, 1]], "head": None}
HOW = {
    "torchvision": "m = torchvision.models.video.{backbone}(); m.fc = torch.nn.Identity(); "
                   "m.load_state_dict(torch.load(PATH)); features = m(clips)",
    "pytorchvideo": "m = pytorchvideo.models.resnet.create_resnet(**create_resnet_args) (classes as named); "
                    "m.load_state_dict(torch.load(PATH)); features = m(clips).mean((2, 3, 4))",
    "harness": "enc = harness.builders.build_encoder(backbone, settings, clip); enc.load_state_dict(torch.load(PATH))",
}


def find(records: list[dict], selector: str) -> dict:
    """The newest record of the one encoder `selector` names: a record id, a pre-training key, or leaderboard
    selectors (`rho_byol`, `method=rho_byol,rho=4,seed=1`)."""
    hits = [r for r in records if selector in (r.get("id"), r.get("pretrain_key"))]
    if not hits:
        sel = parse_selector(selector)
        seed = sel.pop("seed", None)
        hits = [r for r in select(records, sel) if seed is None or str(r.get("seed")) == seed]
    hits = [r for r in hits if r.get("pretrain_key")]
    if not hits:
        raise ConfigError(f"{selector!r} names no run with a pre-trained encoder in the records; give a record id, "
                          "a pre-training key or selectors such as method=rho_byol,rho=4,seed=0")
    keys = sorted({r["pretrain_key"] for r in hits})
    if len(keys) > 1:
        raise ConfigError(f"{selector!r} names {len(keys)} encoders (keys {', '.join(keys[:6])}); add settings or "
                          "seed=N, or give one key")
    return max(hits, key=lambda r: r.get("finished", ""))


def library_state(backbone: str, state: dict) -> dict:
    """The encoder's weights in its source library's names: torchvision's and pytorchvideo's nets sit under
    `trunk.` in the harness, as they are; others keep the harness's names."""
    if backbone in LIBRARY:
        if not all(k.startswith("trunk.") for k in state):
            raise ConfigError(f"the {backbone} encoder file holds keys outside its trunk: {sorted(state)[:3]}")
        return {k[len("trunk."):]: v for k, v in state.items()}
    return dict(state)


def export(record: dict, cache_root: Path, out: Path) -> tuple[Path, Path]:
    """Write the encoder of `record` to `out/<method>-<backbone>-<key>.pt` and its description beside it."""
    import torch

    backbone, key = record["backbone"], record["pretrain_key"]
    source = Path(cache_root) / "checkpoints" / f"{record['method']}-{backbone}-{key}" / "encoder.pt"
    if not source.exists():
        raise ConfigError(f"the encoder of key {key} is not in the cache ({source}); run the record's command again "
                          f"to train it: {record.get('command', 'bench run ...')}")
    state = library_state(backbone, torch.load(source, map_location="cpu", weights_only=True))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{record['method']}-{backbone}-{key}.pt"
    atomic_save(state, target)
    library = LIBRARY.get(backbone, "harness")
    clip = (record.get("config") or {}).get("backbone", {}).get("clip", {})
    info: dict[str, Any] = {
        "file": target.name, "sha256": file_sha256(target), "layout": library, "backbone": backbone,
        "how_to_load": HOW[library].format(backbone=backbone),
        "clip": clip, "input": "float clips (B, 3, T, H, W), RGB, normalised by the clip's mean and std",
        "method": record["method"], "pretrain_key": key, "seed": record.get("seed"), "profile": record.get("profile"),
        "settings": record.get("identity", {}).get("encoder", {}), "code_version": record.get("code_version", {}),
        "record": record.get("id"), "init": (record.get("pretrain") or {}).get("init"),
    }
    if backbone == "slow_r50":
        info["create_resnet_args"] = SLOW_R50_ARGS
    info_path = target.with_suffix(".json")
    atomic_json(info_path, json.loads(json.dumps(info, default=str)))
    return target, info_path
