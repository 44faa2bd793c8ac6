"""`bench run`: check, pre-train (or reuse a matching encoder), score with a protocol, write one record.

Everything the configuration can tell is checked before any work starts (`preflight`): the device,
the precision, and that the results and cache folders can be written. A finished pre-training is
reused only when its key matches — the settings that shape it, the seed, the code version of the
training path, the device kind and the precision — and when the videos it could not read are still
unreadable (once the data is repaired, it trains again on the whole set).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from harness import catalog, code_version
from harness import distributed as dist
from harness.backbones import build_encoder
from harness.config import Config, resolved_precision
from harness.data.datasets import BadVideos, EpochBatches, PretrainClips, ShareOf, VideoSet
from harness.data.manifest import atomic_json, verify
from harness.data.sampling import clip_span
from harness.engine import atomic_save, resolve_device, seed_everything, to_device, train
from harness.errors import ConfigError
from harness.results import check_writable, git_commit, versions, write_record
from protocols.base import EvalContext, TaskResult


def log(msg: str) -> None:
    if dist.is_main():  # one voice for a multi-process run
        print(msg, file=sys.stderr, flush=True)


@dataclass
class Plan:
    """What preflight resolved: where the run executes and where its pre-training lives."""

    device: torch.device
    precision: str
    code_version: str | None  # of the training path; None for a method without pre-training
    key: str | None
    checkpoint_dir: Path | None


def preflight(cfg: Config) -> Plan:
    """Every check the configuration allows before work starts; raises ConfigError / StorageError."""
    device = dist.setup(resolve_device(cfg.run))
    if dist.world_size() > 1 and cfg.pretrains and cfg.pretrain.batch_size % dist.world_size():
        raise ConfigError(f"pretrain.batch_size {cfg.pretrain.batch_size} does not split over {dist.world_size()} "
                          "processes; choose a multiple of the process count")
    precision = resolved_precision(cfg.pretrain.precision, device.type)
    check_writable(cfg.runs_dir(), "results folder")
    check_writable(cfg.cache_root(), "cache folder")
    for name in dict.fromkeys([*([cfg.pretrain.dataset] if cfg.pretrains else []), *cfg.task_datasets()]):
        check = getattr(cfg.datasets[name], "check_copy", None)  # a real dataset: is the copy there?
        if check is not None:
            check()
    if not cfg.pretrains:
        return Plan(device, precision, None, None, None)
    version = code_version.pretrain_version(cfg.method)
    key, out = encoder_dir(cfg, device.type, precision, version)
    return Plan(device, precision, version, key, out)


def encoder_dir(cfg: Config, device: str, precision: str, version: str) -> tuple[str, Path]:
    """The pre-training key of `cfg` on this kind of device, and the cache folder its encoder lives in."""
    key = cfg.pretrain_key(device, precision, version)
    return key, cfg.cache_root() / "checkpoints" / f"{cfg.method}-{cfg.backbone.name}-{key}"


def dataset_identity(cfg: Config, name: str) -> dict:
    """Which copy of a dataset a run read, as its class reports it (a name only if it cannot say)."""
    ident = getattr(catalog.DATASETS.get(name), "identity", None)
    return ident(cfg.datasets[name], cfg.cache_root()) if ident is not None else {"name": name}


def _still_unreadable(bad: dict[str, str], root: Path, entries: list[dict]) -> bool:
    """Whether the videos a pre-training could not read are still missing or damaged."""
    wanted = [e for e in entries if str(root / e["path"]) in bad]
    return len(wanted) < len(bad) or bool(verify(root, wanted, full=True).bad)


def pretrain_labels(ds, cfg: Config, entries: list[dict], name: str) -> tuple[tuple[str, ...], list[int]]:
    """The classes and per-video labels `name` of the pre-training split, from the dataset class."""
    get = getattr(ds, "labels", None)
    if get is None:
        raise ConfigError(f"{cfg.method} needs labels ({name!r}) of the pre-training data, and dataset "
                          f"{cfg.pretrain.dataset!r} provides none")
    return get(cfg.dataset_cfg, entries, name)


def pretrain(cfg: Config, plan: Plan, method, resume: bool, retrain: bool, progress: bool) -> dict:
    """Train `method` unless a finished encoder with the same key exists; return what happened."""
    if plan.checkpoint_dir is None:
        return {"skipped": True, "reason": f"{cfg.method} has no pre-training"}
    out = plan.checkpoint_dir
    enc_path, info_path, ckpt = out / "encoder.pt", out / "pretrain.json", out / "last.pt"
    towers_path = out / "method.pt" if set(method.exports()) != {"video"} else None  # audio/text towers, heads
    ds = catalog.DATASETS.get(cfg.pretrain.dataset)
    root, entries = ds.split(cfg.dataset_cfg, cfg.cache_root(), "pretrain", progress=progress)
    if enc_path.exists() and info_path.exists() and not retrain and (towers_path is None or towers_path.exists()):
        info = json.loads(info_path.read_text())
        bad = info.get("bad_videos", {})
        if not bad or _still_unreadable(bad, root, entries):
            if towers_path is not None:
                method.load_state_dict(torch.load(towers_path, map_location="cpu", weights_only=True))
            method.encoder.load_state_dict(torch.load(enc_path, map_location="cpu", weights_only=True))
            note = f"; it could not read {len(bad)} videos" if bad else ""
            log(f"reusing pre-trained encoder {enc_path} (key {plan.key}{note}; --retrain trains it again)")
            return {**info, "reused": True, "checkpoint": str(enc_path)}
        log(f"the encoder at {enc_path} was trained without {len(bad)} videos that are readable now; training again")
    elif retrain:
        log(f"--retrain: training a fresh encoder into {out}")
    if ckpt.exists() and not resume:
        log(f"note: {ckpt} holds an unfinished run of this configuration; starting afresh "
            "(pass --resume to continue it)")
    spec = method.sample_spec()
    videos = VideoSet(root, entries, cfg.data.cache_frames, fps=cfg.backbone.clip.fps)
    videos.preload("decoding pre-training videos", progress)
    labels = None
    if spec.label is not None:
        classes, labels = pretrain_labels(ds, cfg, entries, spec.label)
        method.setup_labels(classes)
        log(f"{cfg.method} trains on the label {spec.label!r} of the {cfg.pretrain.dataset} pre-training videos "
            f"({len(classes)} classes)")
    data = PretrainClips.for_spec(videos, cfg, spec, cfg.run.seed, labels)
    steps = EpochBatches(len(videos), cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.run.seed)
    bad = BadVideos(len(videos), cfg.data.max_bad_fraction)

    def make_loader(start: int):
        sampler = EpochBatches(len(videos), cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.run.seed, start)
        if dist.world_size() > 1:
            sampler = ShareOf(sampler, dist.rank(), dist.world_size())
        # one loader spans the whole run (the sampler covers every epoch), so workers persist by construction
        workers = cfg.data.num_workers
        loader = DataLoader(data, batch_sampler=sampler, collate_fn=data.collate, num_workers=workers,
                            pin_memory=plan.device.type == "cuda", prefetch_factor=4 if workers else None)
        return (data.finish(to_device(b, plan.device)) for b in loader) if data.on_device else loader

    def on_bad(items):
        for path, err in items:
            bad.add(path, err)

    log(f"pre-training {cfg.method} on {cfg.pretrain.dataset} ({len(videos)} videos, {steps.total_steps} steps "
        f"of {cfg.pretrain.batch_size}x{data.views} clips) on {plan.device.type} ({plan.precision}) -> {out}")
    stats = train(method, make_loader, steps.total_steps, data.views, cfg.pretrain, plan.device, ckpt, resume,
                  on_bad=on_bad, fingerprint=plan.key, progress=progress, log=log, distributed=True)
    span = clip_span(cfg.backbone.clip.frames, cfg.backbone.clip.stride)
    info = {"short_videos": sum(0 < videos.num_frames(i) < span for i in range(len(videos))),
            "key": plan.key, "code_version": plan.code_version, "git_commit": git_commit(),
            "device": plan.device.type, "data": dataset_identity(cfg, cfg.pretrain.dataset),
            "videos": len(videos), "config": cfg.encoder_identity(True), "seed": cfg.run.seed, **asdict(stats)}
    if dist.world_size() > 1:
        info["processes"] = dist.world_size()
    if dist.is_main():
        if towers_path is not None:
            atomic_save(method.state_dict(), towers_path)
        atomic_save(method.encoder.state_dict(), enc_path)
        atomic_json(info_path, info)
    log(f"pre-training done in {stats.seconds:.0f} s ({stats.clips_per_s:.0f} clips/s)"
        + (f"; {len(stats.bad_videos)} unreadable videos skipped" if stats.bad_videos else ""))
    return {**info, "reused": False, "checkpoint": str(enc_path)}


OFFICIAL_SPLITS = ("1", "2", "3")


def each_split(cfg: Config) -> Iterator[str | None]:
    """Set each official split in turn on the task datasets configured with `split = "all"` (UCF101, HMDB51),
    yielding it; once, with None, when there are none. The configuration is restored afterwards."""
    multi = [d for d in cfg.task_datasets() if getattr(cfg.datasets[d], "split", None) == "all"]
    if not multi:
        yield None
        return
    saved = {d: cfg.datasets[d] for d in multi}
    try:
        for k in OFFICIAL_SPLITS:
            for d in multi:
                cfg.datasets[d] = replace(saved[d], split=k)
            yield k
    finally:
        cfg.datasets.update(saved)


def evaluate_splits(protocol, exports: dict, ctx: EvalContext) -> list:
    """`protocol.evaluate`, once per official split when a task's dataset has `split = "all"`: each split's
    result is kept as `<task>@split<k>`, and `<task>` reports the mean over the splits with their spread
    (`extra.split_std`, `extra.splits`), as the papers report UCF101 and HMDB51."""
    cfg = ctx.cfg
    multi = {d for d in cfg.task_datasets() if getattr(cfg.datasets[d], "split", None) == "all"}
    runs = [(k, protocol.evaluate(exports, ctx)) for k in each_split(cfg)]
    if runs[0][0] is None:
        return runs[0][1]
    out, per_task = [], {}
    for k, results in runs:
        for r in results:
            if catalog.TASKS.get(r.task).dataset not in multi:
                if k == OFFICIAL_SPLITS[0]:
                    out.append(r)  # a task of another dataset: scored once
                continue
            per_task.setdefault(r.task, []).append(r)
            out.append(replace(r, task=f"{r.task}@split{k}"))
    for task, rs in per_task.items():
        metrics = {m: statistics.mean(r.metrics[m] for r in rs) for m in rs[0].metrics}
        out.append(TaskResult(task=task, metrics=metrics,
                              costs={c: sum(r.costs.get(c, 0.0) for r in rs) for c in rs[0].costs},
                              counts={c: sum(r.counts.get(c, 0) for r in rs) for c in ("train_videos", "test_videos")},
                              bad_videos={p: e for r in rs for p, e in r.bad_videos.items()},
                              extra={"splits": list(OFFICIAL_SPLITS),
                                     "split_std": {m: statistics.stdev(r.metrics[m] for r in rs) for m in metrics}}))
    return out


def short_videos(cfg: Config, tasks: list[str]) -> dict[str, dict[str, int]]:
    """Per task and split, how many videos are shorter than one clip (sampled with repeats of their last
    frame, as the papers' loaders do): the protocol card reports them."""
    import warnings

    span = clip_span(cfg.backbone.clip.frames, cfg.backbone.clip.stride)
    out = {}
    for name in tasks:
        if name not in catalog.TASKS:
            continue  # one official split's result (`ucf101@split1`): counted under the task itself
        t = catalog.TASKS.get(name)
        if getattr(cfg.datasets[t.dataset], "split", None) == "all":
            continue
        counts = {}
        for split in (t.train_split, t.test_split):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the split's own warnings were shown when it was scored
                root, entries = catalog.DATASETS.get(t.dataset).split(cfg.datasets[t.dataset], cfg.cache_root(),
                                                                      split, progress=False)
            videos = VideoSet(root, entries, False, fps=cfg.backbone.clip.fps)
            counts[split] = sum(0 < videos.num_frames(i) < span for i in range(len(videos)))
        out[name] = counts
    return out


def scored_untrained(cfg: Config) -> str:
    """What a method without pre-training hands the protocol: a checkpoint file, or the initialised encoder."""
    path = getattr(cfg.method_cfg, "path", "")
    if path:
        return f"{path} (sha256 {cfg.method_cfg.identity()['sha256']})"
    return f"untrained {cfg.backbone.name}, seed {cfg.run.seed}"


def encoder_key(cfg: Config, plan: Plan) -> str:
    """Names the encoder a protocol scores: its pre-training key, or for an untrained encoder a hash of
    its settings and seed (the protocols that train cache their fits under it)."""
    if plan.key:
        return plan.key
    payload = {"method": cfg.method, "settings": cfg.encoder_identity(False), "seed": cfg.run.seed}
    state = getattr(catalog.BACKBONES.get(cfg.backbone.name), "state_version", None)
    if state is not None:  # a frozen stage the encoder learns itself (VIMPAC's tokenizer) changed how it is made
        payload["state"] = state
    return "init-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def prepare_encoder(encoder, cfg: Config, progress: bool) -> dict | None:
    """An encoder's own stage before training and scoring (VIMPAC's tokenizer: trained once, cached);
    what it reports, or None for an encoder without one. Rank 0 goes first, the others then load its result.
    The stage runs on a forked random state: whether it trains or loads from the cache, the run's own random
    stream (initialisation, sampling) is the same, so a seed's result does not depend on the cache."""
    prepare = getattr(encoder, "prepare", None)
    if prepare is None:
        return None
    if not dist.is_main():
        dist.barrier()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []):
        report = prepare(cfg, progress, log)
    if dist.is_main() and dist.world_size() > 1:
        dist.barrier()
    return report


def prepare_stages(method, cfg: Config, progress: bool) -> dict:
    """The encoder's stage, then the method's (`Method.prepare`): what each reported, by name."""
    out = {}
    for name, owner in (("tokenizer", method.encoder), ("text_tokenizer", method)):
        report = prepare_encoder(owner, cfg, progress)
        if report is not None:
            out[name] = report
    return out


def run(cfg: Config, resume: bool = False, retrain: bool = False, progress: bool = True) -> tuple[dict, Path]:
    """Run one method under one protocol; returns the record and where it was written."""
    if resume and retrain:
        raise ConfigError("--resume and --retrain contradict each other: --retrain starts a fresh pre-training")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    plan = preflight(cfg)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    seed_everything(cfg.run.seed)
    encoder = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(cfg.method)(encoder, cfg.method_cfg)
    protocol = catalog.PROTOCOLS.get(cfg.protocol)(cfg.protocol_cfg)
    ctx = EvalContext(cfg, plan.device, progress, encoder_key(cfg, plan), log)
    missing = [n for n in protocol.needs if n not in method.exports()]
    if missing:
        raise ConfigError(f"protocol {cfg.protocol!r} scores the {' and '.join(missing)} tower(s), which "
                          f"{cfg.method!r} does not learn (it exports: {', '.join(method.exports())})")
    if dist.world_size() > 1 and not dist.is_main():
        dist.barrier()  # rank 0 prepares the data and checks it first
    for _ in each_split(cfg):
        protocol.check(ctx)  # what only the data can tell, before any pre-training
    if dist.world_size() > 1 and dist.is_main():
        dist.barrier()
    stages = prepare_stages(method, cfg, progress)  # after every check: a tokenizer may train for minutes
    pre = pretrain(cfg, plan, method, resume, retrain, progress)
    dist.barrier()  # the encoder is on disk before any process goes on
    shards = dist.world_size() > 1 and getattr(protocol, "shards", False)
    if not dist.is_main() and not shards:
        return None, None  # rank 0 scores the encoder alone (a protocol that trains) and writes the record
    t1 = time.perf_counter()
    log(f"scoring {cfg.method} with protocol {cfg.protocol} on {', '.join(getattr(cfg.protocol_cfg, 'tasks', []))}"
        + (f", the videos split over {dist.world_size()} processes" if shards else ""))
    with dist.sharded() if shards else contextlib.nullcontext():
        results = evaluate_splits(protocol, method.exports(), ctx)
    if not dist.is_main():
        return None, None
    t2 = time.perf_counter()
    datasets = {name: dataset_identity(cfg, name)
                for name in dict.fromkeys([*([cfg.pretrain.dataset] if cfg.pretrains else []), *cfg.task_datasets()])}
    unreadable = sorted({*pre.get("bad_videos", {}), *(p for r in results for p in r.bad_videos)})
    card = protocol.card(cfg, results)
    for name, counts in short_videos(cfg, [r.task for r in results]).items():
        card["tasks"][name]["short_videos"] = counts
    record = {
        "schema": 2,
        "method": cfg.method, "protocol": cfg.protocol, "profile": cfg.profile, "backbone": cfg.backbone.name,
        "seed": cfg.run.seed, "tasks": [r.task for r in results], "results": [asdict(r) for r in results],
        "code_version": {"pretrain": plan.code_version, "protocol": code_version.protocol_version(cfg.protocol)},
        "identity": {"encoder": cfg.encoder_identity(cfg.pretrains), "protocol": cfg.protocol_identity()},
        "protocol_card": {"protocol": cfg.protocol, **card,
                          "scored_encoder": plan.key if cfg.pretrains else scored_untrained(cfg)},
        "datasets": datasets, "unreadable_videos": unreadable,
        "pretrain": pre, **stages,
        "costs": {"total_seconds": t2 - t0, "pretrain_seconds": t1 - t0, "protocol_seconds": t2 - t1,
                  "device": str(plan.device), "precision": plan.precision, "threads": torch.get_num_threads(),
                  "processes": dist.world_size()},
        "config": cfg.to_dict(), "config_files": cfg.sources, "pretrain_key": plan.key,
        "versions": versions(), "git_commit": git_commit(), "host": platform.node(),
        "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        "command": " ".join(sys.argv), "cwd": os.getcwd(),
    }
    path = write_record(record, cfg.runs_dir())
    return record, path


METRIC_LABELS = {"top1": "top-1 (all views)", "top5": "top-5 (all views)", "top1_1view": "top-1 (centre view)",
                 "top5_1view": "top-5 (centre view)"}


def summary(record: dict) -> str:
    """A short markdown table of one run's results, and what the reader must know about it."""
    results = record["results"]
    seen = list(dict.fromkeys(k for r in results for k in r["metrics"]))  # the order the protocol reports them
    metrics = [k for k in METRIC_LABELS if k in seen] + [k for k in seen if k not in METRIC_LABELS]
    views = any("temporal_views" in r["counts"] for r in results)
    head = ["task", *(METRIC_LABELS.get(k, k) for k in metrics), *(["views (clips x crops)"] if views else [])]
    lines = [f"{record['method']} / {record['protocol']} / profile {record['profile']} "
             f"(seed {record['seed']}, {record['costs']['total_seconds']:.0f} s)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        m, c = r["metrics"], r["counts"]
        cells = [r["task"], *(f"{m[k]:.1f}" if k in m else "" for k in metrics)]
        if views:
            cells.append(f"{c.get('temporal_views', '?')}x{c.get('spatial_views', '?')}")
        lines.append("| " + " | ".join(cells) + " |")
    bad = record.get("unreadable_videos", [])
    if bad:
        lines += ["", f"warning: {len(bad)} videos could not be read and were left out: "
                      + ", ".join(Path(p).name for p in bad[:5]) + (" ..." if len(bad) > 5 else "")]
    return "\n".join(lines)
