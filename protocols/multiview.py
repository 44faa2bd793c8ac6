"""Frozen-encoder features for every view of every video, and BN re-estimation.

Each video is decoded once for all its views (docs/data-path.md); the views of a batch of videos go
through the encoder in chunks of at most `clip_batch` clips, so 30 views of 224-px clips never make
one oversized call. Feature tensors are (videos, views, D) in the order of the dataset's
`ViewLayout`: temporal-major (view t*S + s is clip t, crop s), the extra centre clip last.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from harness import distributed as dist
from harness.data.datasets import BadVideos, LabelledViews, collate
from harness.errors import DataError
from harness.progress import progress_bar


@dataclass
class Features:
    feats: torch.Tensor  # (N, V, D) float32 on CPU
    labels: dict[str, torch.Tensor]  # key -> (N,)
    clips_per_s: float
    seconds: float
    index: torch.Tensor | None = None  # (N,) the dataset rows the features belong to (unreadable ones skipped)


def _loader(ds, batch: int, workers: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=collate,
                      persistent_workers=False)


def _share(ds: LabelledViews):
    """This process's videos of `ds` (every world_size-th from its rank) inside `dist.sharded()`; all of them
    otherwise."""
    if not dist.sharding():
        return ds
    return torch.utils.data.Subset(ds, range(dist.rank(), len(ds), dist.world_size()))


def chunked(model: nn.Module, views: torch.Tensor, device: torch.device, clip_batch: int, bf16: bool,
            normalize=None) -> torch.Tensor:
    """`model` on (B, V, ...) views in calls of at most `clip_batch` clips -> (B, V, ...) float on CPU. uint8
    video views (B, V, T, C, H, W) travel as uint8 and become normalised float clips (C, T, H, W) on the
    device (`normalize`: the dataset's); float views (audio, or already normalised) go as they are."""
    x = views.flatten(0, 1)
    outs = []
    for part in x.split(max(clip_batch, 1)):
        part = part.to(device, non_blocking=True)
        if part.dtype == torch.uint8:
            if normalize is None:
                raise ValueError("uint8 views need the dataset's normalize")
            part = normalize(part)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            outs.append(model(part).float().cpu())
    out = torch.cat(outs)
    return out.view(views.shape[0], views.shape[1], *out.shape[1:])


@torch.no_grad()
def recalibrate_bn(encoder: nn.Module, ds: LabelledViews, device: torch.device, batch: int, workers: int,
                   bad: BadVideos, bf16: bool = False, clip_batch: int = 1 << 30) -> int:
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
    seen, failed = 0, BadVideos(len(ds), 1.0) if dist.sharding() else bad  # sharded: counted once all report
    try:
        for b in _loader(_share(ds), batch, workers):
            for path, err in b["bad"]:
                failed.add(path, err)
            if "views" not in b:
                continue
            chunked(encoder, b["views"], device, clip_batch, bf16, getattr(ds, "normalize", None))
            seen += b["views"].shape[0] * b["views"].shape[1]
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        encoder.eval()
    if dist.sharding():  # each process averaged over its share of the batches: the mean of those averages
        for m in bns:
            for buf in (m.running_mean, m.running_var):
                buf.copy_(dist.all_reduce_mean(buf.detach().float().clone()).to(buf.dtype))
        parts = dist.all_gather_object((seen, failed.failed))
        seen, merged = sum(p[0] for p in parts), {k: v for p in parts for k, v in p[1].items()}
        for path in sorted(merged):  # every process counts the same videos in the same order
            bad.add(path, merged[path])
    return seen


@torch.no_grad()
def extract(encoder: nn.Module, ds: LabelledViews, device: torch.device, batch: int, workers: int,
            bad: BadVideos, bf16: bool = False, desc: str = "features", progress: bool = True,
            clip_batch: int = 1 << 30) -> Features:
    """Outputs of `encoder` (features, or a classifier's logits) for all views of all readable videos in
    `ds`; unreadable ones are counted and skipped."""
    encoder.eval()
    feats, labels, index, n_clips = [], {}, [], 0
    failed = BadVideos(len(ds), 1.0) if dist.sharding() else bad  # sharded: counted into `bad` at the end
    t0 = time.perf_counter()
    loader = _loader(_share(ds), batch, workers)
    bar = progress_bar(len(loader), 0, desc, "batch", progress and dist.is_main())
    for b in loader:
        for path, err in b["bad"]:
            failed.add(path, err)
        if "views" in b:
            v = b["views"]
            feats.append(chunked(encoder, v, device, clip_batch, bf16, getattr(ds, "normalize", None)).flatten(2))
            for k, t in b["labels"].items():
                labels.setdefault(k, []).append(t)
            index.append(b["index"])
            n_clips += v.shape[0] * v.shape[1]
        bar.update()
        if bar.n == 1:
            bar.restart_clock()  # the first batch paid for start-up
    bar.close()
    if dist.sharding():
        feats, labels, n_clips, index = _gather_shares(index, feats, labels, failed, n_clips, bad)
    seconds = time.perf_counter() - t0
    if not feats:
        raise DataError(f"no readable videos to extract {desc} from")
    return Features(torch.cat(feats), {k: torch.cat(t) for k, t in labels.items()}, n_clips / max(seconds, 1e-9),
                    seconds, torch.cat(index))


def _gather_shares(index: list, feats: list, labels: dict, failed: BadVideos, n_clips: int, bad: BadVideos):
    """Every process's extracted share, in the dataset's order (one list entry, as `extract` builds them),
    and the unreadable videos of all shares counted into `bad` in one order on every process."""
    mine = (torch.cat(index) if index else torch.zeros(0, dtype=torch.long), torch.cat(feats) if feats else None,
            {k: torch.cat(t) for k, t in labels.items()}, failed.failed, n_clips)
    parts = dist.all_gather_object(mine)
    merged = {k: v for p in parts for k, v in p[3].items()}
    for path in sorted(merged):
        bad.add(path, merged[path])
    total = sum(p[4] for p in parts)
    parts = [p for p in parts if p[1] is not None]
    if not parts:
        return [], {}, total, []
    rows = torch.cat([p[0] for p in parts])
    order = rows.argsort()  # whichever process read a video
    return ([torch.cat([p[1] for p in parts])[order]],
            {k: [torch.cat([p[2][k] for p in parts])[order]] for k in parts[0][2]}, total, [rows[order]])
