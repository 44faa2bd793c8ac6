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
import functools
import hashlib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.data.manifest import Verification, atomic_json, content_checksum, load_manifest, sha256_file, verify
from harness.data.task import Task
from harness.errors import ConfigError, DataError
from harness.progress import progress_bar

MOTIONS = [
    "left", "right", "up", "down", "grow", "shrink",
    "rotate clockwise", "rotate anticlockwise", "fade in", "fade out",
]
# motion k played backwards is motion REVERSED[k]
REVERSED = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
COLOURS = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40),
    "magenta": (220, 50, 220), "cyan": (40, 220, 230), "orange": (250, 140, 20), "white": (245, 245, 245),
    "purple": (130, 50, 200), "black": (15, 15, 15),
}
SPLITS = ("pretrain", "train", "test")
FORMAT_VERSION = 4  # 3: manifests carry file sizes and a content checksum; 4: x264 without MB-tree


@dataclass
class MovingDigitsSize:
    """How many videos each split has at one named size."""

    pretrain_videos: int
    train_clips: int
    test_clips: int


@dataclass
class MovingDigitsConfig:
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

    def validate(self) -> None:
        p = "datasets.moving-digits"
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
        d = asdict(self)
        d.pop("sizes")
        d["size"] = size or self.size
        d["counts"] = asdict(self.counts(size))
        d["format"] = FORMAT_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    def identity(self) -> dict[str, Any]:
        """What shapes the files of the selected size: the settings without the other sizes' counts."""
        d = asdict(self)
        d["sizes"] = {self.size: d["sizes"][self.size]}
        return d


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=1)
def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def split_images(labels: np.ndarray, seed: int, test_fraction: float) -> dict[str, np.ndarray]:
    """Indices of digit images per split; `test` is disjoint from `pretrain` and `train` (which share)."""
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test, rest = order[:n_test], order[n_test:]
    return {"pretrain": np.sort(rest), "train": np.sort(rest), "test": np.sort(test)}


def _background(rng: np.random.Generator, h: int, w: int, contrast: list[float]) -> np.ndarray:
    """A random textured background (float32 HxWx3 in [0, 1]): gradient, stripes, checks or blobs.

    `contrast` bounds how far the texture's second colour lies from its first: the nuisance
    strength. At full contrast a random encoder sees mostly texture and no method learns digits.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1 = rng.uniform(0, 1, 3)
    c2 = c1 + (rng.uniform(0, 1, 3) - c1) * rng.uniform(*contrast)
    kind = rng.integers(4)
    if kind == 0:  # gradient
        ang = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(ang) + yy * math.sin(ang))
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == 1:  # stripes
        ang, period = rng.uniform(0, math.pi), rng.uniform(3, 9)
        t = 0.5 + 0.5 * np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period)
    elif kind == 2:  # checks
        s = int(rng.integers(3, 8))
        t = ((xx // s + yy // s) % 2).astype(np.float32)
    else:  # blobs
        t = np.zeros((h, w), np.float32)
        for _ in range(4):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 10)
            t += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        t = np.clip(t, 0, 1)
    bg = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    bg += rng.normal(0, 0.04, (h, w, 3))  # fixed grain, part of the texture
    return np.clip(bg, 0, 1).astype(np.float32)


def _render_alpha(img: np.ndarray, cx: float, cy: float, size: float, angle: float, h: int, w: int) -> np.ndarray:
    """Digit coverage (HxW in [0, 1]): the 8x8 image scaled to `size` px, rotated, centred at (cx, cy)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = math.cos(angle), math.sin(angle)
    u = (c * dx + s * dy) / size * 8 + 4 - 0.5  # inverse rotation, into 8x8 pixel coordinates
    v = (-s * dx + c * dy) / size * 8 + 4 - 0.5
    pad = np.pad(img, 1)  # zero border: outside the digit is transparent
    u, v = u + 1, v + 1
    inside = (u >= 0) & (u <= 9) & (v >= 0) & (v <= 9)
    u, v = np.clip(u, 0, 9 - 1e-4), np.clip(v, 0, 9 - 1e-4)
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    out = (pad[v0, u0] * (1 - fu) * (1 - fv) + pad[v0, u0 + 1] * fu * (1 - fv)
           + pad[v0 + 1, u0] * (1 - fu) * fv + pad[v0 + 1, u0 + 1] * fu * fv)
    return np.where(inside, out, 0).astype(np.float32)


@dataclass
class Segment:
    """One stretch of constant motion with its own look: everything but the digit image is redrawn."""

    motion: int
    frames: int
    colour: str
    background: np.ndarray
    size: float
    cx: float
    cy: float
    angle: float
    amount: float  # how far the motion goes (fraction of the available range)


def _trajectory(seg: Segment, t: float, w: int, h: int) -> tuple[float, float, float, float, float]:
    """(cx, cy, size, angle, opacity) at time t in [0, 1]. Motion k at t equals REVERSED[k] at 1 - t."""
    m, a = seg.motion, seg.amount
    pair, forward = m // 2, m % 2 == 0
    s = t if forward else 1 - t  # the reversed member of a pair runs the same path backwards
    cx, cy, size, ang, op = seg.cx, seg.cy, seg.size, seg.angle, 1.0
    if pair == 0:  # left (forward) / right: start right, end left
        span = a * max(w - size * 0.8, 2)
        cx = w / 2 + span / 2 - span * s
    elif pair == 1:  # up / down
        span = a * max(h - size * 0.8, 2)
        cy = h / 2 + span / 2 - span * s
    elif pair == 2:  # grow / shrink
        size = seg.size * (0.55 + 0.45 * s)
    elif pair == 3:  # rotate clockwise / anticlockwise (image y points down: +angle is clockwise)
        ang = seg.angle + (s - 0.5) * a * math.radians(120)
    else:  # fade in / out
        op = 0.1 + 0.9 * s
    return cx, cy, size, ang, op


def render_segment(img: np.ndarray, seg: Segment, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T x H x W x 3 uint8) and per-frame loudness (T,) of one segment."""
    col = np.array(COLOURS[seg.colour], np.float32) / 255
    frames, loud = [], []
    for i in range(seg.frames):
        t = i / max(seg.frames - 1, 1)
        cx, cy, size, ang, op = _trajectory(seg, t, w, h)
        a = _render_alpha(img, cx, cy, size, ang, h, w)[..., None] * op
        frames.append(seg.background * (1 - a) + col * a)
        loud.append(op * size / seg.size)
    arr = np.clip(np.stack(frames) * 255 + 0.5, 0, 255).astype(np.uint8)
    return arr, np.asarray(loud, np.float32)


def _random_segment(rng: np.random.Generator, cfg: MovingDigitsConfig, motion: int, frames: int, size: float) -> Segment:
    w, h = cfg.width, cfg.height
    bg = _background(rng, h, w, cfg.texture_contrast)
    # a digit colour that stands out from this background
    mean = bg.mean((0, 1)) * 255
    names = list(COLOURS)
    dist = np.array([np.abs(np.array(COLOURS[n]) - mean).sum() for n in names])
    good = [n for n, d in zip(names, dist) if d > 150] or [names[int(dist.argmax())]]
    colour = str(rng.choice(good))
    margin_x, margin_y = max((w - size) / 2, 0), max((h - size) / 2, 0)
    return Segment(
        motion=motion, frames=frames, colour=colour, background=bg, size=size,
        cx=w / 2 + rng.uniform(-margin_x, margin_x) * 0.5, cy=h / 2 + rng.uniform(-margin_y, margin_y) * 0.5,
        angle=math.radians(rng.uniform(-15, 15)), amount=rng.uniform(0.7, 1.0),
    )


PHRASES = {  # how the captions say each motion
    "left": "moves to the left", "right": "moves to the right", "up": "moves up", "down": "moves down",
    "grow": "grows larger", "shrink": "shrinks", "rotate clockwise": "turns clockwise",
    "rotate anticlockwise": "turns anticlockwise", "fade in": "fades in", "fade out": "fades out",
}


def caption(rng: np.random.Generator, digit: int, colour: str, motion: int) -> str:
    m = MOTIONS[motion]
    templates = [
        "a {c} {d} {p}.", "the digit {w}, drawn in {c}, {p}.", "a handwritten {w} in {c} {p}.",
        "{c} number {d} {p} over a textured background.", "we see a {c} {w} that {p}.",
    ]
    t = templates[int(rng.integers(len(templates)))]
    return t.format(c=colour, d=digit, w=DIGIT_WORDS[digit], p=PHRASES[m])


def tone(digit: int, loudness: np.ndarray, fps: int, rate: int) -> np.ndarray:
    """Mono float32 audio: pitch from the digit (a semitone scale from A3), loudness per frame."""
    n = int(round(len(loudness) * rate / fps))
    t = np.arange(n) / rate
    env = np.interp(t, (np.arange(len(loudness)) + 0.5) / fps, loudness)
    freq = 220.0 * 2 ** (digit / 12)
    return (0.4 * env * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def make_video(cfg: MovingDigitsConfig, split: str, index: int, image_ids: np.ndarray,
               images: np.ndarray, labels: np.ndarray, assigned: tuple[int, int] | None):
    """Render one video of a split: (frames, audio, metadata). Deterministic in (seed, split, index)."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    if split == "pretrain":
        img_id = int(rng.choice(image_ids))
        n_seg, seg_frames = cfg.pretrain_segments, cfg.segment_frames
        motions = [int(rng.integers(len(MOTIONS))) for _ in range(n_seg)]
    else:
        digit, motion = assigned  # balanced labels decided by the caller
        candidates = image_ids[labels[image_ids] == digit]
        img_id = int(rng.choice(candidates))
        n_seg, seg_frames, motions = 1, cfg.labelled_frames, [motion]
    digit = int(labels[img_id])
    chunks, louds, segs = [], [], []
    for m in motions:
        size = rng.uniform(*cfg.digit_size)  # per segment: only the digit's shape persists
        seg = _random_segment(rng, cfg, m, seg_frames, size)
        f, loud = render_segment(images[img_id], seg, cfg.height, cfg.width)
        chunks.append(f)
        louds.append(loud)
        segs.append(seg)
    frames = np.concatenate(chunks)
    audio = tone(digit, np.concatenate(louds), cfg.fps, cfg.audio_rate)
    meta = {
        "digit": digit, "image_id": img_id, "motions": motions,
        "colours": [s.colour for s in segs],
        "caption": " then ".join(caption(rng, digit, s.colour, s.motion).rstrip(".") for s in segs) + ".",
    }
    return frames, audio, meta


# ----------------------------------------------------------------------------- encoding


def write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray | None, fps: int, audio_rate: int,
              keyframe_interval: int, crf: int) -> None:
    """Encode frames (T x H x W x 3 uint8) as H.264 and audio as AAC into `path`, atomically."""
    import av

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        # mbtree=0: x264's AVX-512 MB-tree kernels work on 8-16 macroblocks at a time and, on frames this
        # small (3x2 macroblocks at x264's half-resolution lookahead), read past each row into uninitialised
        # allocation padding and feed it to the rate control, so the bytes depended on the heap history of
        # the process (7 of 25 concurrent generations differed). Without MB-tree every generation matches;
        # files are ~3.6% larger, generation time is unchanged.
        vs.options = {"crf": str(crf), "g": str(keyframe_interval), "keyint_min": str(keyframe_interval),
                      "sc_threshold": "0", "bf": "0", "threads": "1", "preset": "fast",
                      "x264-params": "mbtree=0"}
        as_ = None
        if audio is not None:
            as_ = out.add_stream("aac", rate=audio_rate, layout="mono")
            as_.options = {"aac_coder": "fast"}  # 2.5x faster than the default two-loop search
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if as_ is not None:
            n = as_.codec_context.frame_size or 1024
            for start in range(0, len(audio), n):
                chunk = audio[start:start + n]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = audio_rate, start, Fraction(1, audio_rate)
                for pkt in as_.encode(af):
                    out.mux(pkt)
            for pkt in as_.encode():
                out.mux(pkt)
    os.replace(tmp, path)




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
        "checksum": content_checksum(entries),
        "config": {k: v for k, v in asdict(cfg).items() if k != "sizes"} | {"counts": asdict(cfg.counts(size))},
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


class MovingDigits:
    """The embedded dataset, generated on first use into the cache directory."""

    splits = SPLITS

    prepare = staticmethod(prepare)
    repair = staticmethod(repair)
    rebuild = staticmethod(rebuild)

    @staticmethod
    def split(cfg: MovingDigitsConfig, cache_root: Path, split: str, progress: bool = True) -> tuple[Path, list[dict]]:
        """(directory, entries) of one split, generating the dataset first if needed.

        Sizes are checked against the manifest (one stat per file); a missing or resized file is
        named with the command that repairs it, and the run goes on without it only if the data
        path's tolerance for unreadable videos allows."""
        manifest = prepare(cfg, cache_root, progress=progress)
        body = load_manifest(manifest)
        entries = [v for v in body["videos"] if v["split"] == split]
        check = verify(manifest.parent, entries, full=False)
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
        """Which copy a run used: the config fingerprint, the content checksum and the video count."""
        manifest = dataset_dir(cfg, cache_root) / "manifest.json"
        body = load_manifest(manifest)
        return {"name": "moving-digits", "size": cfg.size, "fingerprint": body.get("fingerprint"),
                "checksum": body.get("checksum") or content_checksum(body["videos"]), "videos": len(body["videos"])}


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
