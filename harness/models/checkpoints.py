"""Encoders from released checkpoints: PySlowFast `.pyth` files and pytorchvideo model-zoo state dicts.

The ρ study's released Slow R-50 models are PySlowFast checkpoints (`{"model_state": ..., "epoch": ...}`,
keys such as `s2.pathway0_res0.branch2.a_bn.weight`, an SSL model's trunk under `backbone.`);
pytorchvideo's zoo publishes the same network as `blocks.N...` state dicts. Both map one to one onto
the harness's `slow_r50` (pytorchvideo's builder, under `trunk.`), so a user with those files scores them
under the harness's protocols. Heads (a classifier, an SSL projection) are dropped; anything else that
does not fit, such as a ResNet-101's extra blocks, refuses the file with the keys that differ.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch.nn as nn

from harness.errors import ConfigError
from harness.models.weights import load_exactly, read_state

FORMATS = ("auto", "slowfast", "pytorchvideo", "harness")

# PySlowFast's bottleneck and stem names -> pytorchvideo's
_SLOWFAST_PARTS = {"branch1": "branch1_conv", "branch1_bn": "branch1_norm", "branch2.a": "branch2.conv_a",
                   "branch2.a_bn": "branch2.norm_a", "branch2.b": "branch2.conv_b", "branch2.b_bn": "branch2.norm_b",
                   "branch2.c": "branch2.conv_c", "branch2.c_bn": "branch2.norm_c"}
_SF_STEM = re.compile(r"^s1\.pathway0_stem\.(conv|bn)\.(\w+)$")
_SF_RES = re.compile(r"^s(\d)\.pathway0_res(\d+)\.(branch1|branch1_bn|branch2\.[abc](?:_bn)?)\.(\w+)$")
_HEADS = ("head.", "projection.", "predictor.", "prototypes.", "fc.")


def _strip(state: dict) -> dict:
    """Remove DDP's `module.` and an SSL model's `backbone.` prefixes."""
    out = {}
    for k, v in state.items():
        for p in ("module.", "backbone."):
            k = k[len(p):] if k.startswith(p) else k
        out[k] = v
    return out


def detect(state: dict) -> str:
    keys = list(_strip(state))
    if any(k.startswith("s1.pathway0_stem.") for k in keys):
        return "slowfast"
    if any(k.startswith("blocks.0.") for k in keys):
        return "pytorchvideo"
    if any(k.startswith("trunk.") for k in keys):
        return "harness"
    raise ConfigError(f"unknown checkpoint layout: keys like {keys[:3]}; expected PySlowFast (s1.pathway0_stem...), "
                      "pytorchvideo (blocks.0...) or this harness's (trunk...)")


def slowfast_to_harness(state: dict) -> dict:
    """PySlowFast Slow R-50 keys -> the harness's `slow_r50` keys; heads dropped, unknown keys kept as they
    are (so loading names them)."""
    out = {}
    for k, v in _strip(state).items():
        if k.startswith(_HEADS):
            continue
        m = _SF_STEM.match(k)
        if m:
            out[f"trunk.blocks.0.{'conv' if m[1] == 'conv' else 'norm'}.{m[2]}"] = v
            continue
        m = _SF_RES.match(k)
        if m:
            out[f"trunk.blocks.{int(m[1]) - 1}.res_blocks.{m[2]}.{_SLOWFAST_PARTS[m[3]]}.{m[4]}"] = v
            continue
        out[k] = v
    return out


def pytorchvideo_to_harness(state: dict) -> dict:
    """pytorchvideo `create_resnet` keys -> `trunk.` keys; the head block (`blocks.5`) dropped."""
    state = _strip(state)
    head = max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=0)
    return {f"trunk.{k}": v for k, v in state.items()
            if not (k.startswith(f"blocks.{head}.") and any(p in k for p in ("proj", "pool")))}


def load_released(encoder: nn.Module, path: str | Path, fmt: str = "auto") -> str:
    """Load a released checkpoint into `encoder` (strictly: every key maps, every weight fits); returns the
    format it was read as."""
    state = read_state(path)
    fmt = detect(state) if fmt == "auto" else fmt
    convert = {"slowfast": slowfast_to_harness, "pytorchvideo": pytorchvideo_to_harness,
               "harness": lambda s: s}[fmt]
    try:
        load_exactly(encoder, convert(state), f"{path} (a {fmt} checkpoint)", f"the {type(encoder).__name__} encoder",
                     optional=())
    except ConfigError as e:
        hint = LAYOUT_BACKBONE.get(fmt)
        if hint and type(encoder).__name__ != hint[1]:  # the file fits another backbone than the one chosen
            raise ConfigError(f"{e}. A {fmt} checkpoint is a Slow R-50: add --set backbone.name={hint[0]}") from None
        raise
    return fmt


# the backbone a released layout fits (its name, its encoder class), for the error that names it
LAYOUT_BACKBONE = {"slowfast": ("slow_r50", "SlowR50"), "pytorchvideo": ("slow_r50", "SlowR50")}
