"""Real datasets read from a folder the user gives, in their official layouts (`harness.data.formats`).

A dataset class lists a split's videos as the rest of the harness expects, `(videos folder, entries)`
with an `id`, a `path`, the frame count and the `class` label. Frame counts come from a per-dataset
index: the first use probes every listed video once (frames, fps, size, audio, keyframe spacing; in parallel processes
with a progress bar) and stores the result in the cache, keyed by the annotation files' bytes and the
videos' sizes, so later runs start in seconds and a changed copy is probed again. A listed video that
is missing or cannot be probed stays in its split with 0 frames: decoding it fails and the run counts it
among its unreadable videos (`data.max_bad_fraction` bounds how many a run accepts).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from harness.data import formats
from harness.data.source import Dataset, DatasetConfig
from harness.data.task import Task
from harness.errors import ConfigError, VideoDecodeError
from harness.progress import progress_bar
from harness.storage import atomic_json


@dataclass
class RealDatasetConfig(DatasetConfig):
    """Where a copy lives; `split` picks UCF101's / HMDB51's official split (1, 2 or 3; "all": a run scores
    each and reports their mean and spread)."""

    name: ClassVar[str] = ""

    root: str = ""  # the dataset folder as distributed (videos and annotation files)
    annotations: str = ""  # the annotation folder, when it is not where the format puts it
    split: str = "1"
    pretrain_split: str = "train"  # the split pre-training reads

    def validate(self) -> None:
        p = f"datasets.{self.name}"
        if self.name in formats.SPLIT_AWARE and self.split not in ("1", "2", "3", "all"):
            raise ConfigError(f"{p}.split: 1, 2, 3 or all, got {self.split!r}")

    def official_splits(self) -> tuple[str, ...]:
        return ("1", "2", "3") if self.split == "all" else ()

    def check_copy(self) -> None:
        """That the copy is there: run before any work by the commands that read it (a profile may name
        a dataset whose root a user sets only when running it)."""
        p = f"datasets.{self.name}"
        if not self.root:
            raise ConfigError(f"{p}.root: set the folder of your copy ([datasets.{self.name}] root = \"...\" in "
                              f"bench.toml, or --set {p}.root=/path); `bench data synth --format {self.name}` "
                              "writes a miniature to try the harness with")
        if not Path(self.root).expanduser().is_dir():
            raise ConfigError(f"{p}.root: {self.root} is not a folder")


def _config(name: str) -> type:
    return dataclass(type(f"{name.capitalize()}Config", (RealDatasetConfig,), {"name": name,
                                                                                 "__module__": __name__}))


K400Config, Ucf101Config, Hmdb51Config, Ssv2Config, Diving48Config = (
    _config(n) for n in ("k400", "ucf101", "hmdb51", "ssv2", "diving48"))


@lru_cache(maxsize=16)
def _listing(name: str, root: str, annotations: str, split: str) -> formats.Listing:
    reader = formats.READERS[name]
    ann = Path(annotations).expanduser() if annotations else None
    kw = {"split": split} if name in formats.SPLIT_AWARE else {}
    return reader(Path(root).expanduser(), ann, **kw)


def _probe_one(path: str) -> dict:
    from harness.data.video import keyframe_interval, probe

    if not os.path.exists(path):
        return {"error": "missing"}
    try:
        info = probe(path)
        gop = keyframe_interval(path)
    except VideoDecodeError as e:
        return {"error": str(e)}
    except Exception as e:  # av raises several types when demuxing a damaged file
        return {"error": f"{type(e).__name__}: {e}"}
    return {"frames": info.num_frames, "fps": info.fps, "width": info.width, "height": info.height,
            "audio": info.has_audio, "gop": gop}


def load_index(name: str, listing: formats.Listing, cache_root: Path, progress: bool) -> dict[str, dict]:
    """relative path -> probe result for every listed video, from the cache or probed now."""
    paths = sorted({rel for items in listing.splits.values() for rel, _, _ in items})
    h = hashlib.sha256()
    for f in listing.annotation_files:
        h.update(Path(f).read_bytes())
    for rel in paths:
        full = listing.videos_dir / rel
        h.update(f"{rel}\0{full.stat().st_size if full.exists() else -1}\n".encode())
    where = Path(cache_root) / "indexes" / f"{name}-{h.hexdigest()[:16]}.json"
    if where.exists():
        return json.loads(where.read_text())
    full_paths = [str(listing.videos_dir / rel) for rel in paths]
    bar = progress_bar(len(paths), 0, f"probing {name}", "video", progress)
    if len(paths) > 64:
        with ProcessPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = []
            for r in pool.map(_probe_one, full_paths, chunksize=16):
                results.append(r)
                bar.update()
    else:
        results = []
        for p in full_paths:
            results.append(_probe_one(p))
            bar.update()
    bar.close()
    index = dict(zip(paths, results))
    where.parent.mkdir(parents=True, exist_ok=True)
    atomic_json(where, index)
    return index


class RealDataset(Dataset):
    """A dataset read from the user's copy in its official layout; subclasses name the format."""

    name: ClassVar[str] = ""

    @classmethod
    def listing(cls, cfg: RealDatasetConfig) -> formats.Listing:
        return _listing(cls.name, cfg.root, cfg.annotations, cfg.split)

    @classmethod
    def split(cls, cfg: RealDatasetConfig, cache_root: Path, split: str, progress: bool = True
              ) -> tuple[Path, list[dict]]:
        """(videos folder, entries) of `split` ("pretrain" is `cfg.pretrain_split`)."""
        lst = cls.listing(cfg)
        name = cfg.pretrain_split if split == "pretrain" else split
        if name not in lst.splits:
            raise ConfigError(f"{cls.name}: no split {name!r}; the annotation files give {', '.join(lst.splits)}")
        index = load_index(cls.name, lst, cache_root, progress)
        root = lst.videos_dir.resolve()
        entries, outside, bad = [], [], 0
        for rel, label, vid in lst.splits[name]:
            if not (root / rel).resolve().is_relative_to(root):
                outside.append(rel)
                continue
            info = index.get(rel, {})
            bad += "error" in info
            entries.append({"id": vid, "path": rel, "frames": int(info.get("frames", 0)), "labels": {"class": label},
                            **({"fps": info["fps"]} if info.get("fps") else {}),
                            **({"gop": info["gop"]} if info.get("gop") else {})})
        if lst.problems:
            warnings.warn(f"{cls.name}: {len(lst.problems)} annotation lines are left out, e.g. "
                          f"{lst.problems[0][0]}: {lst.problems[0][1]}", stacklevel=2)
        if outside:
            warnings.warn(f"{cls.name} {name}: {len(outside)} annotated paths lead outside {root} and are left "
                          f"out, e.g. {outside[0]!r}", stacklevel=2)
        if bad:
            warnings.warn(f"{cls.name} {name}: {bad} of {len(entries)} annotated videos are missing or unreadable; "
                          "runs count them as unreadable and list them in their records", stacklevel=2)
        return lst.videos_dir, entries

    @classmethod
    def classes(cls, cfg: RealDatasetConfig, cache_root: Path) -> tuple[str, ...]:
        return cls.listing(cfg).classes

    @classmethod
    def labels(cls, cfg: RealDatasetConfig, entries: list[dict], name: str) -> tuple[tuple[str, ...], list[int]]:
        """Classes and per-video labels for supervised pre-training: the one label of these datasets, `class`."""
        if name != "class":
            raise ConfigError(f"{cls.name}: videos have one label, 'class'; got {name!r}")
        return cls.listing(cfg).classes, [int(e["labels"]["class"]) for e in entries]

    @classmethod
    def identity(cls, cfg: RealDatasetConfig, cache_root: Path) -> dict[str, Any]:
        """Which copy a run read: its folder, the split(s), and a hash of the annotation files."""
        splits = ("1", "2", "3") if cfg.split == "all" else (cfg.split,)
        listings = [_listing(cls.name, cfg.root, cfg.annotations, k) for k in splits]
        h = hashlib.sha256()
        for f in dict.fromkeys(f for lst in listings for f in lst.annotation_files):
            h.update(Path(f).read_bytes())
        return {"name": cls.name, "root": str(Path(cfg.root).expanduser().resolve()), "split": cfg.split,
                "annotations": h.hexdigest()[:16], "classes": len(listings[0].classes),
                "videos": sum(len(v) for v in listings[0].splits.values())}


def _dataset(name: str) -> type:
    return type(name.capitalize(), (RealDataset,), {"name": name, "__module__": __name__})


K400, Ucf101, Hmdb51, Ssv2, Diving48 = (_dataset(n) for n in ("k400", "ucf101", "hmdb51", "ssv2", "diving48"))

# Tasks: the classes come from the annotation files at run time (an empty tuple here, see
# protocols.frozen.task_groups)
K400_TASK = Task("k400", "k400", "class", (), "train", "val", emphasis="spatial")
UCF101_TASK = Task("ucf101", "ucf101", "class", (), "train", "test", emphasis="spatial")
HMDB51_TASK = Task("hmdb51", "hmdb51", "class", (), "train", "test", emphasis="spatial")
SSV2_TASK = Task("ssv2", "ssv2", "class", (), "train", "validation", emphasis="temporal")
DIVING48_TASK = Task("diving48", "diving48", "class", (), "train", "test", emphasis="temporal")
