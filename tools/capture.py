"""The batches a method trains on, for the side experiments in tools/ (tower_probe, itm_probe).

`capture(method_cls, method, sets)` runs `bench run --method <method>` with `sets` at the embedded profile
into a scratch results folder and cache, and returns every batch its `losses` received and a copy of the
method before its first step (after any `pretrain.init` has loaded). The scratch cache links the shared
one's datasets, tokenizers and encoders, so the data and any parent encoders are reused and nothing is
added to the shared cache.
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch


def capture(method_cls: type, method: str, sets: list[str]) -> tuple[list[dict], object]:
    from harness.cli.app import main
    from harness.config import load_config

    batches, first, losses = [], {}, method_cls.losses

    def keep(self, batch):
        first.setdefault("method", copy.deepcopy(self))
        batches.append({k: v.clone() for k, v in batch.items() if torch.is_tensor(v)})
        return losses(self, batch)

    cache = load_config("embedded", method=method).cache_root()
    method_cls.losses = keep
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for sub in ("datasets", "text-tokenizers", "tokenizers"):
                if (cache / sub).is_dir():
                    (Path(tmp) / sub).symlink_to(cache / sub, target_is_directory=True)
            (Path(tmp) / "checkpoints").mkdir()
            for parent in (cache / "checkpoints").glob("*") if (cache / "checkpoints").is_dir() else ():
                (Path(tmp) / "checkpoints" / parent.name).symlink_to(parent)
            sets = [*sets, f"run.results_dir={tmp}", f"run.cache_dir={tmp}"]
            rc = main(["run", "--method", method, "-q", "--retrain", *(a for s in sets for a in ("--set", s))])
    finally:
        method_cls.losses = losses
    if rc:
        raise SystemExit(f"collecting the batches of {method} failed (exit {rc})")
    return batches, first["method"]
