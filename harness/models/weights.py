"""Loading weights exactly: every weight a network has must come from the file, under a name mapped
explicitly from the source's, with its shape; anything else refuses the file with the names that differ.
`load_state_dict(strict=False)` would load nothing from a file with foreign key names and say nothing —
the way a run ends up scoring random weights it believes pretrained."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

from harness.errors import ConfigError


def read_state(path: str | Path, keys: Iterable[str] = ("model_state", "state_dict", "model", "encoder")
               ) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint file (under one of `keys`, or the file itself), tensors only."""
    try:
        obj = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except Exception as e:  # pickled objects other than tensors and plain types, or not a torch file at all
        raise ConfigError(f"{path}: not a checkpoint torch can read safely ({type(e).__name__}: {e})") from None
    for key in keys:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path}: holds no state dict (looked for {', '.join(keys)}, or tensors at the top)")
    return obj


def load_exactly(module: nn.Module, state: dict[str, torch.Tensor], source: str, what: str,
                 optional: tuple[str, ...] = ("num_batches_tracked",)) -> None:
    """Load `state` (already in `module`'s key names) into `module`, refusing a partial or foreign file: names
    missing from the file, names the module lacks and shapes that differ are listed in one ConfigError.
    Buffers whose name ends with one of `optional` (BN's step counters) may be absent from the file."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ConfigError(f"{source}: does not fit {what}: {len(missing)} weights missing (e.g. {missing[:3]}), "
                          f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(shapes)} of another shape "
                          f"(e.g. {shapes[:2]}); refusing a partial load")
    module.load_state_dict({**{k: v for k, v in own.items() if k not in state}, **state})
