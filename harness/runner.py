"""`bench run`: pre-train (or reuse a matching checkpoint), score with a protocol, write one record."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from harness import catalog
from harness.backbones import build_encoder
from harness.config import Config
from harness.data.datasets import BadVideos, EpochBatches, PretrainClips, VideoSet
from harness.engine import atomic_save, resolve_device, seed_everything, train
from harness.results import git_commit, versions, write_record
from protocols.base import EvalContext


def checkpoint_dir(cfg: Config) -> Path:
    """Keyed by the hash of everything that shapes the encoder, so any protocol can reuse it."""
    return cfg.cache_root() / "checkpoints" / f"{cfg.method}-{cfg.backbone.name}-{cfg.pretrain_hash()}"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pretrain(cfg: Config, method, device: torch.device, resume: bool, progress: bool) -> dict:
    """Train `method` unless a finished checkpoint with the same hash exists; return what happened."""
    if not method.needs_pretraining:
        return {"skipped": True, "reason": f"{cfg.method} has no pre-training"}
    out = checkpoint_dir(cfg)
    enc_path, info_path, ckpt = out / "encoder.pt", out / "pretrain.json", out / "last.pt"
    if enc_path.exists() and info_path.exists():
        method.encoder.load_state_dict(torch.load(enc_path, map_location="cpu", weights_only=True))
        info = json.loads(info_path.read_text())
        log(f"reusing pre-trained encoder {enc_path} (config hash {cfg.pretrain_hash()})")
        return {**info, "reused": True, "checkpoint": str(enc_path)}
    if ckpt.exists() and not resume:
        log(f"note: {ckpt} holds an unfinished run of this configuration; starting afresh "
            "(pass --resume to continue it)")
    spec = method.sample_spec()
    ds_cls = catalog.DATASETS.get(cfg.pretrain.dataset)
    root, entries = ds_cls.split(cfg.dataset_cfg, cfg.cache_root(), "pretrain", progress=progress)
    videos = VideoSet(root, entries, cfg.data.cache_frames)
    data = PretrainClips(videos, cfg.backbone.clip, cfg.augment, spec.clips, cfg.run.seed)
    steps = EpochBatches(len(videos), cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.run.seed)
    bad = BadVideos(len(videos), cfg.data.max_bad_fraction)

    def make_loader(start: int):
        sampler = EpochBatches(len(videos), cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.run.seed, start)
        return DataLoader(data, batch_sampler=sampler, collate_fn=data.collate, num_workers=cfg.data.num_workers,
                          pin_memory=device.type == "cuda", persistent_workers=False)

    def on_bad(items):
        for path, err in items:
            bad.add(path, err)

    log(f"pre-training {cfg.method} on {cfg.pretrain.dataset} ({len(videos)} videos, {steps.total_steps} steps "
        f"of {cfg.pretrain.batch_size}x{data.views} clips) on {device.type} -> {out}")
    stats = train(method, make_loader, steps.total_steps, data.views, cfg.pretrain, device, ckpt, resume,
                  on_bad=on_bad, fingerprint=cfg.pretrain_hash(), progress=progress)
    stats.bad_videos.update(bad.failed)
    info = {"hash": cfg.pretrain_hash(), "videos": len(videos), **asdict(stats)}
    atomic_save(method.encoder.state_dict(), enc_path)
    tmp = info_path.with_name(f".{info_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, info_path)
    return {**info, "reused": False, "checkpoint": str(enc_path)}


def run(cfg: Config, resume: bool = False, progress: bool = True) -> tuple[dict, Path]:
    """Run one method under one protocol; returns the record and where it was written."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    device = resolve_device(cfg.run)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    seed_everything(cfg.run.seed)
    encoder = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(cfg.method)(encoder, cfg.method_cfg)
    pre = pretrain(cfg, method, device, resume, progress)
    t1 = time.perf_counter()
    protocol = catalog.PROTOCOLS.get(cfg.protocol)(cfg.protocol_cfg)
    log(f"scoring {cfg.method} with protocol {cfg.protocol} on {', '.join(getattr(cfg.protocol_cfg, 'tasks', []))}")
    results = protocol.evaluate(method.encoder, EvalContext(cfg, device, progress))
    t2 = time.perf_counter()
    record = {
        "method": cfg.method, "protocol": cfg.protocol, "profile": cfg.profile, "backbone": cfg.backbone.name,
        "seed": cfg.run.seed, "tasks": [r.task for r in results], "results": [asdict(r) for r in results],
        "pretrain": pre,
        "costs": {"total_seconds": t2 - t0, "pretrain_seconds": t1 - t0, "protocol_seconds": t2 - t1,
                  "device": str(device), "threads": torch.get_num_threads()},
        "config": cfg.to_dict(), "config_hash": cfg.pretrain_hash(),
        "versions": versions(), "git_commit": git_commit(), "host": platform.node(),
        "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        "command": " ".join(sys.argv),
    }
    path = write_record(record, cfg.results_root())
    return record, path


def summary(record: dict) -> str:
    """A short markdown table of one run's results."""
    lines = [f"{record['method']} / {record['protocol']} / profile {record['profile']} "
             f"(seed {record['seed']}, {record['costs']['total_seconds']:.0f} s)", "",
             "| task | top-1 | top-5 | top-1 (1 view) | views |", "|---|---|---|---|---|"]
    for r in record["results"]:
        m, c = r["metrics"], r["counts"]
        lines.append(f"| {r['task']} | {m['top1']:.1f} | {m['top5']:.1f} | {m['top1_1view']:.1f} | "
                     f"{c['temporal_views']}x{c['spatial_views']} |")
    return "\n".join(lines)
