"""Pre-training: the checks before any work (`preflight`), the stage a model or method learns before training
(`prepare_stages`), and training a method's encoder or reusing the one cached under the same key.

Everything the configuration can tell is checked before any work starts: the device, the precision,
that the results and cache folders can be written and that the datasets' copies are there. A finished
pre-training is reused only when its key matches — the settings that shape it, the seed, the code version
of the training path, the device kind and the precision — and when the videos it could not read are
still unreadable (once the data is repaired, it trains again on the whole set).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from harness import catalog, code_version
from harness import distributed as dist
from harness.config import Config, resolved_precision
from harness.data.datasets import BadVideos, PretrainClips, VideoSet
from harness.data.manifest import verify
from harness.data.sampling import EpochBatches, ShareOf, clip_span
from harness.data.source import Dataset, DatasetConfig
from harness.engine import resolve_device, to_device, train
from harness.errors import ConfigError
from harness.models.stage import Stage
from harness.report.records import git_commit
from harness.storage import atomic_json, atomic_save, check_writable, digest_path, file_sha256, read_verified


def log(msg: str) -> None:
    """A line on stderr, from one process of a multi-process run."""
    if dist.is_main():
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
        if not (issubclass(catalog.DATASETS.get(name), Dataset) and isinstance(cfg.datasets[name], DatasetConfig)):
            raise ConfigError(f"dataset {name!r}: its class must subclass harness.data.source.Dataset and its "
                              "schema harness.data.source.DatasetConfig (docs/extending.md, A dataset)")
        cfg.datasets[name].check_copy()  # a real dataset: is the copy there?
    if not cfg.pretrains:
        return Plan(device, precision, None, None, None)
    version = code_version.pretrain_version(cfg.method)
    key, out = encoder_dir(cfg, device.type, precision, version)
    return Plan(device, precision, version, key, out)


def encoder_dir(cfg: Config, device: str, precision: str, version: str, depth: int = 0) -> tuple[str, Path]:
    """The pre-training key of `cfg` on this kind of device, and the cache folder its encoder lives in."""
    key = cfg.pretrain_key(device, precision, version, init_sources(cfg, device, depth))
    return key, cfg.cache_root() / "checkpoints" / f"{cfg.method}-{cfg.backbone.name}-{key}"


# ----------------------------------------------------------------------------- staged initialisation

RUN_SOURCE = "run:"
MAX_CHAIN = 8  # runs started from runs started from ...: deeper than this is a loop


def parent_config(cfg: Config, source: str) -> Config:
    """The run a `pretrain.init` source "run:METHOD;KEY=VALUE;..." names: this profile and user file, this
    run section (seed, device, cache), the method and settings it lists."""
    from harness.config import load_config, method_pretrains

    method, *sets = [x.strip() for x in source[len(RUN_SOURCE):].split(";") if x.strip()] or [""]
    user = cfg.sources[-1] if len(cfg.sources) > 1 else None
    try:
        parent = load_config(cfg.profile, sets, method=method or None, seed=cfg.run.seed, path=user)
    except ConfigError as e:
        raise ConfigError(f"pretrain.init source {source!r}: {e}") from None
    if not method or not method_pretrains(parent.method_cfg):
        raise ConfigError(f"pretrain.init source {source!r}: name a method that pre-trains (run:rho_byol;"
                          "pretrain.epochs=10); to start from a file, give its path")
    return replace(parent, run=cfg.run)


def init_sources(cfg: Config, device: str, depth: int = 0) -> dict[str, dict]:
    """What each part of the encoder starts from, as its key names it: a parent run's method, settings and
    pre-training key (so this key changes whenever the parent's does), or a file's path and sha256."""
    if depth > MAX_CHAIN:
        raise ConfigError(f"pretrain.init: a chain of more than {MAX_CHAIN} runs, each starting from the next; "
                          "does a run start from itself?")
    out = {}
    for part, source in sorted(cfg.pretrain.init.items()):
        if source.startswith(RUN_SOURCE):
            parent = parent_config(cfg, source)
            key, _ = encoder_dir(parent, device, resolved_precision(parent.pretrain.precision, device),
                                 code_version.pretrain_version(parent.method), depth + 1)
            out[part] = {"run": source, "method": parent.method, "key": key}
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise ConfigError(f"pretrain.init.{part}: {source} is not a file (or write run:METHOD;...)")
            out[part] = {"file": str(path.resolve()), "sha256": file_sha256(path)}
    return out


def _part(encoder: torch.nn.Module, part: str) -> torch.nn.Module:
    if part == "encoder":
        return encoder
    try:
        return encoder.get_submodule(part)
    except AttributeError:
        names = [n for n, _ in encoder.named_children()]
        raise ConfigError(f"pretrain.init.{part}: the {type(encoder).__name__} encoder has no part {part!r} "
                          f"(its parts: {', '.join(names)}; encoder for the whole)") from None


def parent_encoder(parent: Config, progress: bool) -> Path:
    """The parent run's encoder file, pre-training it first when it is not cached (on a forked random
    state: the child's own stream is the same whether the parent was cached or not)."""
    from harness.builders import build_parts
    from harness.engine import isolated_rng

    plan = preflight(parent)
    path = plan.checkpoint_dir / "encoder.pt"
    if read_verified(plan.checkpoint_dir / "pretrain.json", _read_json, "cached pre-training report", log) is not None \
            and read_verified(path, _read_tensors, "cached encoder", log) is not None:
        return path
    log(f"pretrain.init: pre-training the parent run {parent.method} first (key {plan.key})")
    with isolated_rng(parent.run.seed):
        _, method, _ = build_parts(parent)
        stage = stage_for(parent, progress)
        prepare_stages(method, stage)
        pretrain(parent, plan, method, stage, resume=None, retrain=False, progress=progress)
    return path


def apply_init(cfg: Config, encoder: torch.nn.Module, sources: dict[str, dict], progress: bool) -> None:
    """Load each part of `encoder` from its source, exactly (`load_exactly`): a parent run's encoder file
    (its weights under the same part name) or a file holding either the whole encoder's state or the part's."""
    from harness.models.weights import load_exactly, read_state

    for part, src in sources.items():
        module = _part(encoder, part)
        if "run" in src:
            path, what = parent_encoder(parent_config(cfg, src["run"]), progress), f"{src['run']} (key {src['key']})"
        else:
            path, what = Path(src["file"]), src["file"]
        state = read_state(path, ("encoder", "model_state", "state_dict", "model"))
        prefix = "" if part == "encoder" else part + "."
        if prefix and any(k.startswith(prefix) for k in state):  # a whole encoder's state: take the part's
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        load_exactly(module, state, str(path), f"part {part!r} of the {type(encoder).__name__} encoder")
        log(f"pretrain.init: {part} starts from {what}")


def dataset_identity(cfg: Config, name: str) -> dict:
    """Which copy of a dataset a run read, as its class reports it."""
    return catalog.DATASETS.get(name).identity(cfg.datasets[name], cfg.cache_root())


def stage_for(cfg: Config, progress: bool) -> Stage:
    """What the run hands the encoder's and the method's `prepare` and pre-training: its pre-training split,
    opened once on first use, and that copy's identity."""
    name = cfg.pretrain.dataset
    return Stage(name, lambda: catalog.DATASETS.get(name).split(cfg.dataset_cfg, cfg.cache_root(), "pretrain",
                                                                 progress=progress),
                 lambda: dataset_identity(cfg, name), cfg.cache_root(), cfg.backbone.clip.fps, progress, log)


def prepare_stages(method, stage: Stage) -> dict:
    """The encoder's own stage (VIMPAC's tokenizer: trained once, cached), then the method's (a text
    tokenizer): what each reported, under the record's keys `tokenizer` and `text_tokenizer`. Rank 0 goes
    first, the others then load its result. Each stage runs on a forked random state: whether it trains or
    loads from the cache, the run's own random stream (initialisation, sampling) is the same, so a seed's
    result does not depend on the cache."""
    out = {}
    for name, owner in (("tokenizer", method.encoder), ("text_tokenizer", method)):
        if not dist.is_main():
            dist.barrier()
        with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []):
            report = owner.prepare(stage)
        if dist.is_main() and dist.world_size() > 1:
            dist.barrier()
        if report is not None:
            out[name] = report
    return out


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _read_tensors(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _still_unreadable(bad: dict[str, str], root: Path, entries: list[dict]) -> bool:
    """Whether the videos a pre-training could not read are still missing or damaged."""
    wanted = [e for e in entries if str(root / e["path"]) in bad]
    return len(wanted) < len(bad) or bool(verify(root, wanted, full=True).bad)


def pretrain(cfg: Config, plan: Plan, method, stage: Stage, resume: bool | None, retrain: bool, progress: bool) -> dict:
    """Train `method` on the pre-training split `stage` lists, unless a finished encoder with the same key
    exists; return what happened (the record's `pretrain`). `resume`: None continues an interrupted run of
    the same key if there is one (the default), True insists, False starts over."""
    if plan.checkpoint_dir is None:
        return {"skipped": True, "reason": f"{cfg.method} has no pre-training"}
    out = plan.checkpoint_dir
    enc_path, info_path, ckpt = out / "encoder.pt", out / "pretrain.json", out / "last.pt"
    towers_path = out / "method.pt" if set(method.exports()) != {"video"} else None  # audio/text towers, heads
    root, entries = stage.videos()
    info = None if retrain else read_verified(info_path, _read_json, "cached pre-training report", log)
    enc = None if info is None else read_verified(enc_path, _read_tensors, "cached encoder", log)
    towers = None if enc is None or towers_path is None else read_verified(towers_path, _read_tensors,
                                                                             "cached method state", log)
    # an encoder remembers the copy it was trained on: once that copy changes (repaired, regenerated), train again
    trained_on = ((info or {}).get("data") or {}).get("checksum")
    now = stage.identity().get("checksum") if trained_on else None
    if info is not None and trained_on and now and trained_on != now:
        log(f"the encoder at {enc_path} was trained on another copy of {cfg.pretrain.dataset} (checksum {trained_on}, "
            f"now {now}); training again")
    elif info is not None and enc is not None and (towers_path is None or towers is not None):
        bad = info.get("bad_videos", {})
        if not bad or _still_unreadable(bad, root, entries):
            if towers is not None:
                method.load_state_dict(towers)
            method.encoder.load_state_dict(enc)
            note = f"; it could not read {len(bad)} videos" if bad else ""
            log(f"reusing pre-trained encoder {enc_path} (key {plan.key}{note}; --retrain trains it again)")
            return {**info, "reused": True, "checkpoint": str(enc_path)}
        log(f"the encoder at {enc_path} was trained without {len(bad)} videos that are readable now; training again")
    elif retrain:
        log(f"--retrain: training a fresh encoder into {out}")
    if retrain:
        resume = False
    elif resume is None:  # by default an interrupted pre-training of the same key continues (it resumes exactly)
        resume = ckpt.exists()
        if resume:
            log(f"{ckpt} holds an interrupted pre-training of this configuration (same key); continuing it "
                "(--fresh starts over)")
    elif not resume and ckpt.exists():
        log(f"--fresh: starting over; the interrupted pre-training at {ckpt} is replaced")
    sources = init_sources(cfg, plan.device.type)
    if sources and not (resume and ckpt.exists()):  # a resumed run has its weights from the checkpoint
        apply_init(cfg, method.encoder, sources, progress)
    spec = method.sample_spec()
    videos = VideoSet(root, entries, cfg.data.cache_frames, fps=cfg.backbone.clip.fps)
    videos.preload("decoding pre-training videos", progress)
    labels = None
    if spec.label is not None:
        classes, labels = catalog.DATASETS.get(cfg.pretrain.dataset).labels(cfg.dataset_cfg, entries, spec.label)
        method.setup_labels(classes)
        log(f"{cfg.method} trains on the label {spec.label!r} of the {cfg.pretrain.dataset} pre-training videos "
            f"({len(classes)} classes)")
    data = PretrainClips.for_spec(videos, cfg, spec, cfg.run.seed, labels)
    steps = EpochBatches(len(videos), cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.run.seed,
                         steps=cfg.pretrain.steps)
    bad = BadVideos(len(videos), cfg.data.max_bad_fraction)

    def make_loader(start: int):
        sampler = EpochBatches(len(videos), cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.run.seed, start,
                               cfg.pretrain.steps)
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
                  on_bad=on_bad, fingerprint=plan.key, progress=progress, log=log, distributed=True,
                  steps_per_epoch=steps.per_epoch)
    span = clip_span(cfg.backbone.clip.frames, cfg.backbone.clip.stride)
    info = {"short_videos": videos.shorter_than(span),
            "key": plan.key, "code_version": plan.code_version, "git_commit": git_commit(),
            "device": plan.device.type, "data": stage.identity(),
            "videos": len(videos), "config": cfg.encoder_identity(True), "seed": cfg.run.seed, **asdict(stats)}
    if sources:
        info["init"] = sources
    if dist.world_size() > 1:
        info["processes"] = dist.world_size()
    if dist.is_main():
        if towers_path is not None:
            atomic_save(method.state_dict(), towers_path)
        atomic_save(method.encoder.state_dict(), enc_path)
        atomic_json(info_path, info, digest=True)
        for done in (ckpt, digest_path(ckpt)):  # the finished encoder supersedes the resumable state
            done.unlink(missing_ok=True)
    log(f"pre-training done in {stats.seconds:.0f} s ({stats.clips_per_s:.0f} clips/s)"
        + (f"; {len(stats.bad_videos)} unreadable videos skipped" if stats.bad_videos else ""))
    return {**info, "reused": False, "checkpoint": str(enc_path)}
