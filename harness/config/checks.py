"""Checks of a built `Config` that types cannot express: every name is registered, every number is in
its range. Each failure is a `ConfigError` naming the key and what is allowed."""
from __future__ import annotations

from harness import catalog
from harness.config.build import _suggest, build, to_plain
from harness.config.schema import Config
from harness.config.sections import LR_MAX, LR_WHY, at_least, at_most
from harness.errors import ConfigError


def check_names(cfg: Config) -> None:
    for label, name, registry, table in (
        ("method", cfg.method, catalog.METHODS, cfg.methods),
        ("protocol", cfg.protocol, catalog.PROTOCOLS, cfg.protocols),
        ("backbone.name", cfg.backbone.name, catalog.BACKBONES, cfg.backbones),
        ("pretrain.dataset", cfg.pretrain.dataset, catalog.DATASETS, cfg.datasets),
    ):
        if name not in registry:
            raise ConfigError(f"{label}: unknown name {name!r}" + _suggest(name, registry.names()))
        if name not in table:  # a registered entry with no section: use its defaults if it has them
            try:
                table[name] = build(registry.config_class(name), {}, f"{label}:{name}")
            except ConfigError as e:
                raise ConfigError(f"{label} {name!r} needs a section in bench.toml: {e}") from None
    proto = cfg.protocol_cfg
    for t in getattr(proto, "tasks", []):
        if t not in catalog.TASKS:
            raise ConfigError(f"protocols.{cfg.protocol}.tasks: unknown task {t!r}" + _suggest(t, catalog.TASKS.names()))
        ds = catalog.TASKS.get(t).dataset
        if ds not in cfg.datasets:
            raise ConfigError(f"task {t!r} reads dataset {ds!r}, which has no [datasets.{ds}] section")



def check_values(cfg: Config) -> None:
    """Range checks that types cannot express; each names the key and the allowed range."""
    r = cfg.run
    at_least("run.seed", r.seed, 0)
    at_most("run.seed", r.seed, 2**32 - 1, "the random generators take 32-bit seeds")
    at_least("run.threads", r.threads, 0)
    if not r.results_dir.strip():
        raise ConfigError("run.results_dir: empty path")
    at_least("data.num_workers", cfg.data.num_workers, 0)
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ConfigError(f"data.max_bad_fraction: in [0, 1], got {cfg.data.max_bad_fraction}")
    p = cfg.pretrain
    for name in ("batch_size", "checkpoint_every", "log_every"):
        at_least(f"pretrain.{name}", getattr(p, name), 1)
    at_least("pretrain.lr_batch", p.lr_batch, 0)
    at_least("pretrain.lr", p.lr, 0, strict=True)
    for name in ("epochs", "weight_decay", "momentum", "warmup_epochs", "grad_clip"):
        at_least(f"pretrain.{name}", getattr(p, name), 0)
    if p.momentum >= 1:
        raise ConfigError(f"pretrain.momentum: must be < 1, got {p.momentum:g}")
    if len(p.adam_betas) != 2 or not all(0 <= b < 1 for b in p.adam_betas):
        raise ConfigError(f"pretrain.adam_betas: two values in [0, 1), got {p.adam_betas}")
    at_least("pretrain.adam_eps", p.adam_eps, 0, strict=True)
    at_least("pretrain.steps", p.steps, 0)
    at_most("pretrain.epochs", p.epochs, 100_000, "the papers' longest schedule is 800 epochs")
    at_most("pretrain.steps", p.steps, 100_000_000, "VATT's 500K updates are the papers' longest")
    at_most("pretrain.lr", p.lr, LR_MAX, LR_WHY)
    at_least("pretrain.warmup_steps", p.warmup_steps, 0)
    if p.steps and p.warmup_steps > p.steps:
        raise ConfigError(f"pretrain.warmup_steps ({p.warmup_steps}) must be <= pretrain.steps ({p.steps})")
    if not p.steps and p.warmup_epochs > p.epochs:
        raise ConfigError(f"pretrain.warmup_epochs ({p.warmup_epochs:g}) must be <= pretrain.epochs ({p.epochs})")
    for part, source in p.init.items():
        if not all(name.isidentifier() or name.isdigit() for name in part.split(".")):
            raise ConfigError(f"pretrain.init: {part!r} is not a part of an encoder (a module path such as "
                              "cnn, bert or trunk.blocks.0; encoder for the whole)")
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(f"pretrain.init.{part}: give a weights file or run:METHOD;KEY=VALUE;...")
    c = cfg.backbone.clip
    for name in ("frames", "stride", "crop_size"):
        at_least(f"backbone.clip.{name}", getattr(c, name), 1)
    at_most("backbone.clip.frames", c.frames, 1024, "a clip of more frames does not fit a batch in memory")
    at_most("backbone.clip.stride", c.stride, 1024, "no video is that long between two frames of a clip")
    for name in ("crop_size", "test_short_side"):
        at_most(f"backbone.clip.{name}", getattr(c, name), 4096, "4K frames are the largest the decoders are tested on")
    if c.test_short_side < c.crop_size:
        raise ConfigError(f"backbone.clip.test_short_side ({c.test_short_side}) must be >= crop_size ({c.crop_size})")
    if len(c.mean) != 3 or len(c.std) != 3:
        raise ConfigError("backbone.clip.mean and .std need 3 values (RGB)")
    if min(c.std) <= 0:
        raise ConfigError(f"backbone.clip.std: must be > 0, got {c.std}")
    at_least("backbone.clip.fps", c.fps, 0)
    a = cfg.augment
    if a.crop_mode == "scale" and (len(a.jitter_scales) != 2 or not 0 < a.jitter_scales[0] <= a.jitter_scales[1]):
        raise ConfigError(f"augment.jitter_scales: [low, high] short sides in pixels, got {a.jitter_scales}")
    for name in ("crop_scale", "crop_ratio", "blur_sigma"):
        v = getattr(a, name)
        if len(v) != 2 or v[0] > v[1] or v[0] <= 0:
            raise ConfigError(f"augment.{name}: expected [low, high] with 0 < low <= high, got {v}")
    if a.crop_scale[1] > 1:
        raise ConfigError(f"augment.crop_scale: an area fraction in (0, 1], got {a.crop_scale}")
    if len(a.jitter) != 4 or min(a.jitter) < 0 or a.jitter[3] > 0.5:
        raise ConfigError(f"augment.jitter: expected [brightness, contrast, saturation, hue] >= 0 with hue <= 0.5, "
                          f"got {a.jitter}")
    for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
        v = getattr(a, name)
        if not 0 <= v <= 1:
            raise ConfigError(f"augment.{name}: a probability in [0, 1], got {v}")
    for task, per in cfg.task_overrides.items():  # typed and checked like the sections they override
        if task not in catalog.TASKS:
            raise ConfigError(f"task_overrides.{task}: unknown task {task!r}" + _suggest(task, catalog.TASKS.names()))
        for proto, fields in per.items():
            if proto not in cfg.protocols:
                raise ConfigError(f"task_overrides.{task}.{proto}: unknown protocol {proto!r}"
                                  + _suggest(proto, list(cfg.protocols)))
            if not isinstance(fields, dict):
                raise ConfigError(f"task_overrides.{task}.{proto}: expected a table of settings, got {fields!r}")
            if "tasks" in fields:
                raise ConfigError(f"task_overrides.{task}.{proto}.tasks: a task's overrides cannot name tasks")
            base = to_plain(cfg.protocols[proto])
            built = build(type(cfg.protocols[proto]), {**base, **fields}, f"task_overrides.{task}.{proto}")
            per[proto] = {k: getattr(built, k) for k in fields}
            if proto == cfg.protocol and task in getattr(cfg.protocol_cfg, "tasks", []):
                built.validate()
    checked = [cfg.method_cfg, cfg.protocol_cfg, cfg.backbone_cfg, cfg.dataset_cfg,
               *(cfg.datasets[d] for d in cfg.task_datasets())]
    for section in {id(s): s for s in checked}.values():
        check = getattr(section, "validate", None)
        if check is not None:
            check()
