"""Frozen-encoder features for every view of every video, and BN re-estimation.

Each video is decoded once for all its views (docs/data-path.md); views are pushed through the encoder
in chunks. Feature tensors are (videos, views, D) with views ordered temporal-major, so view
t*S + s is temporal clip t, spatial crop s.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from harness.data.datasets import BadVideos, LabelledViews, collate
from harness.errors import DataError
from harness.progress import progress_bar


@dataclass
class Features:
    feats: torch.Tensor  # (N, V, D) float32 on CPU
    labels: dict[str, torch.Tensor]  # key -> (N,)
    clips_per_s: float
    seconds: float


def _loader(ds: LabelledViews, batch: int, workers: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=collate,
                      persistent_workers=False)


@torch.no_grad()
def recalibrate_bn(encoder: nn.Module, ds: LabelledViews, device: torch.device, batch: int, workers: int,
                   bad: BadVideos, bf16: bool = False) -> int:
    """Re-estimate BatchNorm running statistics on `ds` with frozen weights (what the ρ study's
    linear protocol does by training with BN in train mode); returns how many clips were seen."""
    bns = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [(m.momentum, m.training) for m in bns]
    encoder.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    seen = 0
    try:
        for b in _loader(ds, batch, workers):
            for path, err in b["bad"]:
                bad.add(path, err)
            if "views" not in b:
                continue
            x = b["views"].flatten(0, 1).to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                encoder(x)
            seen += x.shape[0]
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        encoder.eval()
    return seen


@torch.no_grad()
def extract(encoder: nn.Module, ds: LabelledViews, device: torch.device, batch: int, workers: int,
            bad: BadVideos, bf16: bool = False, desc: str = "features", progress: bool = True) -> Features:
    """Features of all views of all readable videos in `ds` (unreadable ones are counted and skipped)."""
    encoder.eval()
    feats, labels, n_clips = [], {}, 0
    t0 = time.perf_counter()
    loader = _loader(ds, batch, workers)
    bar = progress_bar(len(loader), 0, desc, "batch", progress)
    for b in loader:
        for path, err in b["bad"]:
            bad.add(path, err)
        if "views" in b:
            v = b["views"]
            x = v.flatten(0, 1).to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                f = encoder(x)
            feats.append(f.float().cpu().view(v.shape[0], v.shape[1], -1))
            for k, t in b["labels"].items():
                labels.setdefault(k, []).append(t)
            n_clips += x.shape[0]
        bar.update()
        if bar.n == 1:
            bar.restart_clock()  # the first batch paid for start-up
    bar.close()
    seconds = time.perf_counter() - t0
    if not feats:
        raise DataError(f"no readable videos to extract {desc} from")
    return Features(torch.cat(feats), {k: torch.cat(t) for k, t in labels.items()},
                    n_clips / max(seconds, 1e-9), seconds)
