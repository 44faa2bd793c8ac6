"""`bench run`: check, pre-train (or reuse a matching encoder), score with a protocol, write one record.

The steps, in order: every check the configuration allows (`pretraining.preflight`); the parts built by
name; what only the data can tell (`Protocol.check`, once per official split); the encoder's and the
method's own stages; pre-training or its reuse; the protocol on each official split; the record
(`report.records.build_record`), written atomically.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from harness import catalog, code_version
from harness import distributed as dist
from harness.builders import build_parts
from harness.config import Config
from harness.engine import seed_everything
from harness.errors import ConfigError
from harness.pretraining import Plan, dataset_identity, log, preflight, prepare_stages, pretrain, stage_for
from harness.report.records import build_record, write_record
from harness.storage import content_key
from protocols.base import EvalContext, TaskResult


@dataclass
class SplitRun:
    """One pass of the protocol: the configuration with one official split selected (None: as configured),
    and the context the protocol reads it through."""

    split: str | None
    ctx: EvalContext


def split_runs(cfg: Config, ctx: EvalContext) -> list[SplitRun]:
    """The passes a protocol makes: one per official split when a task dataset is configured with
    `split = "all"` (UCF101, HMDB51), each on a copy of the configuration; else one. Built once per run."""
    multi = {d: cfg.datasets[d].official_splits() for d in cfg.task_datasets() if cfg.datasets[d].official_splits()}
    if not multi:
        return [SplitRun(None, ctx)]
    splits = next(iter(multi.values()))
    return [SplitRun(k, replace(ctx, cfg=replace(cfg, datasets={**cfg.datasets, **{d: cfg.datasets[d].with_split(k)
                                                                                   for d in multi}}),
                                short_videos={}))
            for k in splits]


def evaluate_splits(protocol, exports: dict, cfg: Config, runs: list[SplitRun]) -> list[TaskResult]:
    """`protocol.evaluate` on each pass: each official split's result is kept as `<task>@split<k>`, and
    `<task>` reports the mean over the splits with their spread (`extra.split_std`, `extra.splits`), as the
    papers report UCF101 and HMDB51."""
    if runs[0].split is None:
        return protocol.evaluate(exports, runs[0].ctx)
    multi = {d for d in cfg.task_datasets() if cfg.datasets[d].official_splits()}
    splits = [run.split for run in runs]
    out, per_task = [], {}
    for run in runs:
        for r in protocol.evaluate(exports, run.ctx):
            if catalog.TASKS.get(r.task).dataset not in multi:
                if run.split == splits[0]:
                    out.append(r)  # a task of another dataset: scored once
                continue
            per_task.setdefault(r.task, []).append(r)
            out.append(replace(r, task=f"{r.task}@split{run.split}"))
    for task, rs in per_task.items():
        metrics = {m: statistics.mean(r.metrics[m] for r in rs) for m in rs[0].metrics}
        out.append(TaskResult(task=task, metrics=metrics,
                              costs={c: sum(r.costs.get(c, 0.0) for r in rs) for c in rs[0].costs},
                              counts={c: sum(r.counts.get(c, 0) for r in rs) for c in ("train_videos", "test_videos")},
                              bad_videos={p: e for r in rs for p, e in r.bad_videos.items()},
                              extra={"splits": splits,
                                     "split_std": {m: statistics.stdev(r.metrics[m] for r in rs) for m in metrics}}))
    return out


def scored_untrained(cfg: Config) -> str:
    """What a method without pre-training hands the protocol: a checkpoint file, or the initialised encoder."""
    path = getattr(cfg.method_cfg, "path", "")  # the `pretrained` method's file
    if path:
        return f"{path} (sha256 {cfg.method_cfg.identity()['sha256']})"
    return f"untrained {cfg.backbone.name}, seed {cfg.run.seed}"


def encoder_key(cfg: Config, plan: Plan) -> str:
    """Names the encoder a protocol scores: its pre-training key, or for an untrained encoder a hash of
    its settings and seed (the protocols that train cache their fits under it)."""
    if plan.key:
        return plan.key
    payload = {"method": cfg.method, "settings": cfg.encoder_identity(False), "seed": cfg.run.seed}
    state = catalog.BACKBONES.get(cfg.backbone.name).state_version
    if state is not None:  # a frozen stage the encoder learns itself (VIMPAC's tokenizer) changed how it is made
        payload["state"] = state
    return "init-" + content_key(payload)


def run(cfg: Config, resume: bool | None = None, retrain: bool = False, progress: bool = True) -> tuple[dict, Path]:
    """Run one method under one protocol; returns the record and where it was written. `resume`: None (the
    default) continues an interrupted pre-training of the same key, False starts it over (`--fresh`)."""
    if resume and retrain:
        raise ConfigError("--resume and --retrain contradict each other: --retrain starts a fresh pre-training")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    plan = preflight(cfg)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    seed_everything(cfg.run.seed)
    encoder, method, protocol = build_parts(cfg)
    ctx = EvalContext(cfg, plan.device, progress, encoder_key(cfg, plan), log)
    missing = [n for n in protocol.needs if n not in method.exports()]
    if missing:
        raise ConfigError(f"protocol {cfg.protocol!r} scores the {' and '.join(missing)} tower(s), which "
                          f"{cfg.method!r} does not learn (it exports: {', '.join(method.exports())})")
    passes = split_runs(cfg, ctx)
    if dist.world_size() > 1 and not dist.is_main():
        dist.barrier()  # rank 0 prepares the data and checks it first
    for p in passes:
        protocol.check(p.ctx)  # what only the data can tell, before any pre-training
    if dist.world_size() > 1 and dist.is_main():
        dist.barrier()
    stage = stage_for(cfg, progress)
    stages = prepare_stages(method, stage)  # after every check: a tokenizer may train for minutes
    pre = pretrain(cfg, plan, method, stage, resume, retrain, progress)
    dist.barrier()  # the encoder is on disk before any process goes on
    shards = dist.world_size() > 1 and protocol.shards
    if not dist.is_main() and not shards:
        return None, None  # rank 0 scores the encoder alone (a protocol that trains) and writes the record
    t1 = time.perf_counter()
    log(f"scoring {cfg.method} with protocol {cfg.protocol} on {', '.join(getattr(cfg.protocol_cfg, 'tasks', []))}"
        + (f", the videos split over {dist.world_size()} processes" if shards else ""))
    with dist.sharded() if shards else contextlib.nullcontext():
        results = evaluate_splits(protocol, method.exports(), cfg, passes)
    if not dist.is_main():
        return None, None
    t2 = time.perf_counter()
    datasets = {name: dataset_identity(cfg, name)
                for name in dict.fromkeys([*([cfg.pretrain.dataset] if cfg.pretrains else []), *cfg.task_datasets()])}
    card = protocol.card(cfg, results)
    for name, counts in passes[0].ctx.short_videos.items():  # what the protocol read (one official split: none)
        if name in card["tasks"] and not cfg.datasets[catalog.TASKS.get(name).dataset].official_splits():
            card["tasks"][name]["short_videos"] = counts
    record = build_record(
        cfg, results, card, pretrain=pre, stages=stages, pretrain_key=plan.key, pretrain_version=plan.code_version,
        protocol_version=code_version.protocol_version(cfg.protocol),
        scored_encoder=plan.key if cfg.pretrains else scored_untrained(cfg), datasets=datasets,
        costs={"total_seconds": t2 - t0, "pretrain_seconds": t1 - t0, "protocol_seconds": t2 - t1,
               "device": str(plan.device), "precision": plan.precision, "threads": torch.get_num_threads(),
               "processes": dist.world_size()},
        started=started.isoformat())
    path = write_record(record, cfg.runs_dir(), {r.task: r.outputs for r in results if r.outputs})
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
