"""The embedded dataset `moving-digits`: real handwritten digits moving over textured backgrounds.

Generated deterministically from `sklearn.datasets.load_digits` and written as real H.264 `.mp4`
files with an AAC audio track, a caption per clip and a JSON manifest with checksums.

- Labelled clips (`train`, `test`) carry two labels: `digit` (appearance: one frame suffices) and
  `motion` (ten classes in five time-reversed pairs, so a single frame or an unordered bag of frames
  cannot tell them apart). Test clips use digit images disjoint from pre-training and training.
- Pre-training videos are longer and unlabelled: the digit image persists while motion, colours,
  background and texture are redrawn for every segment, so the only thing ρ clips of one video
  share is the digit's shape (docs/embedded-dataset.md: with one background per video, contrastive learning
  matched backgrounds instead).
- Audio: a tone whose pitch follows the digit and whose loudness follows the digit's size and
  opacity. Captions: short varied sentences naming colour, digit and motion.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.data.digits_video import (
    DIGIT_WORDS,
    MOTIONS,
    PHRASES,
    REVERSED,
    SPLITS,
    _digit_images,
    make_video,
    split_images,
    write_mp4,
)
from harness.data.manifest import Verification, content_checksum, labels_checksum, load_manifest, sha256_file, verify
from harness.data.source import Dataset, DatasetConfig
from harness.data.task import Task
from harness.errors import ConfigError, DataError
from harness.progress import progress_bar
from harness.storage import atomic_json, content_key

FORMAT_VERSION = 4  # 3: manifests carry file sizes and a content checksum; 4: x264 without MB-tree


@dataclass
class MovingDigitsSize:
    """How many videos each split has at one named size."""

    pretrain_videos: int
    train_clips: int
    test_clips: int


@dataclass
class MovingDigitsConfig(DatasetConfig):
    """Generator settings; `size` picks one of `sizes`. Changing any field makes a new dataset dir."""

    size: str
    sizes: dict[str, MovingDigitsSize]
    seed: int
    width: int
    height: int
    fps: int
    digit_size: list[int]  # [min, max] rendered digit height in pixels, drawn per segment
    texture_contrast: list[float]  # [min, max] background texture contrast (nuisance strength)
    pretrain_segments: int
    segment_frames: int
    labelled_frames: int
    test_image_fraction: float
    keyframe_interval: int
    crf: int
    audio_rate: int
    # the chance that a caption's sentence names the digit's colour: colour is a nuisance neither task rewards,
    # so text-video methods that match on it learn nothing the tasks measure (every sentence names the digit
    # and its motion). 1.0, every sentence, is how the copies made so far were captioned
    caption_colour_p: float = 1.0

    def validate(self) -> None:
        p = "datasets.moving-digits"
        if not 0 <= self.caption_colour_p <= 1:
            raise ConfigError(f"{p}.caption_colour_p: a probability in [0, 1], got {self.caption_colour_p}")
        if self.size not in self.sizes:
            raise ConfigError(f"{p}.size: unknown size {self.size!r}; known: {', '.join(self.sizes)}")
        for name in ("width", "height", "fps", "pretrain_segments", "segment_frames", "labelled_frames",
                     "keyframe_interval", "audio_rate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{p}.{name}: must be >= 1, got {getattr(self, name)}")
        for size, c in self.sizes.items():
            for name in ("pretrain_videos", "train_clips", "test_clips"):
                if getattr(c, name) < 1:
                    raise ConfigError(f"{p}.sizes.{size}.{name}: must be >= 1, got {getattr(c, name)}")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"{p}: width and height must be even (H.264 4:2:0), got {self.width}x{self.height}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"{p}.crf: x264's range is 0-51, got {self.crf}")
        if not 0 < self.test_image_fraction < 1:
            raise ConfigError(f"{p}.test_image_fraction: must be in (0, 1), got {self.test_image_fraction}")
        if len(self.digit_size) != 2 or not 0 < self.digit_size[0] <= self.digit_size[1] <= self.height:
            raise ConfigError(f"{p}.digit_size: need [min, max] with 0 < min <= max <= height "
                              f"({self.height}), got {self.digit_size}")
        c = self.texture_contrast
        if len(c) != 2 or not 0 <= c[0] <= c[1] <= 1:
            raise ConfigError(f"{p}.texture_contrast: need [min, max] with 0 <= min <= max <= 1, got {c}")

    def counts(self, size: str | None = None) -> MovingDigitsSize:
        return self.sizes[size or self.size]

    def fingerprint(self, size: str | None = None) -> str:
        """Hash of what shapes the files of one size (not the other sizes)."""
        d = self._named()
        d.pop("sizes")
        d["size"] = size or self.size
        d["counts"] = asdict(self.counts(size))
        d["format"] = FORMAT_VERSION
        return content_key(d, 10)

    def identity(self) -> dict[str, Any]:
        """What shapes the files of the selected size: the settings without the other sizes' counts."""
        d = self._named()
        d["sizes"] = {self.size: d["sizes"][self.size]}
        return d

    def _named(self) -> dict[str, Any]:
        """The settings, with those added later left out at their default (the copies made before keep
        their fingerprint, and the encoders trained on them their keys)."""
        d = asdict(self)
        if d["caption_colour_p"] == 1.0:
            d.pop("caption_colour_p")
        return d


# ----------------------------------------------------------------------------- preparing


def dataset_dir(cfg: MovingDigitsConfig, root: Path, size: str | None = None) -> Path:
    size = size or cfg.size
    return Path(root) / "datasets" / "moving-digits" / f"{size}-{cfg.fingerprint(size)}"


def _plan(cfg: MovingDigitsConfig, size: str) -> Iterator[tuple[str, int, tuple[int, int] | None]]:
    counts = cfg.counts(size)
    yield from (("pretrain", i, None) for i in range(counts.pretrain_videos))
    for split, n in (("train", counts.train_clips), ("test", counts.test_clips)):
        rng = np.random.default_rng([cfg.seed, SPLITS.index(split), 10_000_019])
        digits = rng.permutation(np.arange(n) % 10)  # balanced classes for both tasks,
        motions = rng.permutation(np.arange(n) % len(MOTIONS))  # drawn independently of each other
        yield from ((split, i, (int(digits[i]), int(motions[i]))) for i in range(n))


def _job(args: tuple) -> dict[str, Any]:
    """Render one video and write it unless a file with the expected checksum is already there."""
    cfg, size, out_dir, split, index, assigned, known = args
    images, labels = _digit_images()
    pools = split_images(labels, cfg.seed, cfg.test_image_fraction)
    rel = f"{split}/{split}_{index:05d}.mp4"
    path = Path(out_dir) / rel
    frames, audio, meta = make_video(cfg, split, index, pools[split], images, labels, assigned)
    if not (known and path.exists() and sha256_file(path) == known):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, frames, audio, cfg.fps, cfg.audio_rate, cfg.keyframe_interval, cfg.crf)
    entry = {
        "id": f"{split}_{index:05d}", "split": split, "path": rel, "frames": int(len(frames)),
        "fps": cfg.fps, "width": cfg.width, "height": cfg.height, "caption": meta["caption"],
        "image_id": meta["image_id"], "sha256": sha256_file(path), "bytes": path.stat().st_size,
    }
    if split == "pretrain":  # unlabelled: the loaders never read these, kept for analysis only
        entry["segments"] = [{"motion": MOTIONS[m], "colour": c} for m, c in zip(meta["motions"], meta["colours"])]
        entry["segment_frames"] = cfg.segment_frames
    else:
        entry["labels"] = {"digit": meta["digit"], "motion": meta["motions"][0]}
        entry["colour"] = meta["colours"][0]
    return entry


def _run_jobs(jobs: list[tuple], workers: int | None, desc: str, progress: bool) -> Iterator[dict]:
    """Entries of `jobs` in order, rendered in a process pool when there is more than one core."""
    workers = workers or min(len(jobs), os.cpu_count() or 1, 8)
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress_bar(len(jobs), 0, desc, "video", progress))
        if workers > 1:
            import multiprocessing as mp

            pool = stack.enter_context(mp.get_context("spawn").Pool(workers))
            results = pool.imap(_job, jobs, chunksize=8)
        else:
            results = map(_job, jobs)
        for k, e in enumerate(results):
            if k == 0:
                bar.restart_clock()  # the first video paid for starting the workers
            bar.update()
            yield e


def prepare(cfg: MovingDigitsConfig, root: Path, size: str | None = None, workers: int | None = None,
            progress: bool = True) -> Path:
    """Generate (or finish generating) one size of the dataset; return its manifest path.

    Files already present with the checksum an interrupted call recorded are kept, so a second
    call only writes what is missing. The manifest is written last and atomically: its presence
    means the dataset is complete.
    """
    size = size or cfg.size
    out = dataset_dir(cfg, root, size)
    manifest = out / "manifest.json"
    if manifest.exists():
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "partial.json"
    known: dict[str, str] = {}
    if partial.exists():
        try:
            known = json.loads(partial.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            known = {}  # only a hint of what may be skipped: regenerate everything
    jobs = [(cfg, size, str(out), s, i, a, known.get(f"{s}_{i:05d}")) for s, i, a in _plan(cfg, size)]
    print(f"generating moving-digits[{size}]: {len(jobs)} videos into {out}", file=sys.stderr, flush=True)
    entries: list[dict] = []
    try:
        entries.extend(_run_jobs(jobs, workers, f"moving-digits[{size}]", progress))
    finally:
        if entries and len(entries) < len(jobs):
            atomic_json(partial, {**known, **{e["id"]: e["sha256"] for e in entries}})
    body = {
        "name": "moving-digits", "size": size, "format": FORMAT_VERSION, "fingerprint": cfg.fingerprint(size),
        "checksum": content_checksum(entries), "labels_checksum": labels_checksum(entries),
        "config": {k: v for k, v in cfg._named().items() if k != "sizes"} | {"size": size,
                                                                             "counts": asdict(cfg.counts(size))},
        "tasks": {"digits-appearance": {"label": "digit", "classes": [str(d) for d in range(10)]},
                  "digits-motion": {"label": "motion", "classes": MOTIONS, "reversed_pair": REVERSED}},
        "videos": entries,
    }
    atomic_json(manifest, body)
    if partial.exists():
        partial.unlink()
    return manifest


def repair(cfg: MovingDigitsConfig, root: Path, size: str | None = None, workers: int | None = None,
           progress: bool = True) -> Verification:
    """Check every file of a prepared size against its manifest checksum and regenerate the missing
    or damaged ones. A regenerated file that still differs means the generator is not reproducing
    this copy (another version wrote it): that is a DataError, with the remedy."""
    size = size or cfg.size
    out = dataset_dir(cfg, root, size)
    body = load_manifest(out / "manifest.json")
    check = verify(out, body["videos"], full=True)
    if not check.bad:
        return check
    bad = set(check.bad)
    by_id = {e["id"]: e for e in body["videos"]}
    jobs = [(cfg, size, str(out), s, i, a, None) for s, i, a in _plan(cfg, size)
            if f"{s}/{s}_{i:05d}.mp4" in bad]
    for e in _run_jobs(jobs, workers, f"moving-digits[{size}] repair", progress):
        if e["sha256"] != by_id[e["id"]]["sha256"]:
            raise DataError(f"{out / e['path']}: regenerated, but it still differs from the manifest's checksum; "
                            "this copy was written by another version of the generator: regenerate the whole "
                            "copy with `bench data prepare moving-digits --rebuild`")
    return check


def rebuild(cfg: MovingDigitsConfig, root: Path, size: str | None = None, workers: int | None = None,
            progress: bool = True) -> Path:
    """Throw away one size's manifest and generate every file again."""
    out = dataset_dir(cfg, root, size or cfg.size)
    for name in ("manifest.json", "partial.json"):
        (out / name).unlink(missing_ok=True)
    return prepare(cfg, root, size, workers, progress)


# ----------------------------------------------------------------------------- the dataset and its tasks


class MovingDigits(Dataset):
    """The embedded dataset, generated on first use into the cache directory."""

    name = "moving-digits"
    generated = True
    splits = SPLITS

    prepare = staticmethod(prepare)
    repair = staticmethod(repair)
    rebuild = staticmethod(rebuild)

    @staticmethod
    def split(cfg: MovingDigitsConfig, cache_root: Path, split: str, progress: bool = True) -> tuple[Path, list[dict]]:
        """(directory, entries) of one split, generating the dataset first if needed.

        Every file is checked against the manifest (its checksum, hashed once per copy and remembered by
        size and modification time); a missing or changed file is named with the command that repairs it,
        is never read, and the run goes on without it only if the data path's tolerance for unreadable
        videos allows."""
        manifest = prepare(cfg, cache_root, progress=progress)
        body = load_manifest(manifest)
        # the generator places a keyframe every `keyframe_interval` frames: the decoder seeks by it
        entries = [{**v, "gop": cfg.keyframe_interval, "keyframes": "regular"} for v in body["videos"]
                   if v["split"] == split]
        # every file a run reads is checked against its checksum: hashed once per copy, then again only when
        # its size or modification time changed (a byte flipped in place trains nothing silently)
        remember = Path(cache_root) / "verify" / f"moving-digits-{manifest.parent.name}-{split}.json"
        check = verify(manifest.parent, entries, full=True, remember=remember)
        damaged = set(check.damaged)
        for e in entries:  # never read: counted as unreadable (within data.max_bad_fraction) and recorded
            if e["path"] in damaged:
                e["damaged"] = "its bytes differ from the manifest's checksum; `bench data prepare moving-digits` repairs it"
        if check.bad:
            import warnings

            warnings.warn(f"moving-digits {split}: {check.summary()}; `bench data prepare moving-digits` "
                          "repairs them", stacklevel=2)
        return manifest.parent, entries

    @staticmethod
    def labels(cfg: MovingDigitsConfig, entries: list[dict], name: str) -> tuple[tuple[str, ...], list[int]]:
        """Classes and per-video labels `name` of `entries`, for supervised pre-training.

        Pre-training videos have one label, `digit`: every segment shows the same digit image (their
        motion changes per segment, so they have no motion label). Their images are disjoint from the
        test clips' images, so a supervised encoder never sees a test digit.
        """
        if name == "digit":
            _, digits = _digit_images()
            return APPEARANCE.classes, [int(digits[e["image_id"]]) for e in entries]
        raise ConfigError(f"moving-digits: pre-training videos have only the label 'digit' (their motion changes "
                          f"from segment to segment); got {name!r}")

    @staticmethod
    def identity(cfg: MovingDigitsConfig, cache_root: Path) -> dict[str, Any]:
        """Which copy a run used: the config fingerprint, the checksum of its videos' bytes, that of their labels
        and captions (`labels`: a manifest whose labels were edited names another copy), and the count."""
        manifest = dataset_dir(cfg, cache_root) / "manifest.json"
        body = load_manifest(manifest)
        return {"name": "moving-digits", "size": cfg.size, "fingerprint": body.get("fingerprint"),
                "checksum": body.get("checksum") or content_checksum(body["videos"]),
                "labels": labels_checksum(body["videos"]), "videos": len(body["videos"])}


# zero-shot prompts: per class, sentences in the captions' words without the colour (the mean of their
# text embeddings stands for the class)
APPEARANCE = Task("digits-appearance", "moving-digits", "digit", tuple(str(d) for d in range(10)),
                  description="which digit (one frame suffices; like UCF101/K400)", emphasis="spatial",
                  prompts=tuple((f"a handwritten {w}.", f"the digit {w}.", f"number {d}.")
                                for d, w in enumerate(DIGIT_WORDS)))
MOTION = Task("digits-motion", "moving-digits", "motion", tuple(MOTIONS),
              description="how it moves; five time-reversed pairs (like SSv2/Diving48)", emphasis="temporal",
              prompts=tuple((f"a digit {PHRASES[m]}.", f"the number {PHRASES[m]}.") for m in MOTIONS))
# text-video retrieval: the test clips' own captions query the test clips (the label is not scored)
CAPTIONS = Task("digits-captions", "moving-digits", "digit", APPEARANCE.classes,
                description="the test clips' captions (text-to-video and video-to-text retrieval)", emphasis="")
