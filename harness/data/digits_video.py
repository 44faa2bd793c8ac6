"""How one video of `moving-digits` is made: a handwritten digit drawn moving over a textured background,
a tone that follows it, a caption that names it, all encoded as H.264 + AAC. `harness.data.moving_digits`
plans the videos of each split, writes them and lists them in the manifest."""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

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


def _random_segment(rng: np.random.Generator, cfg, motion: int, frames: int, size: float) -> Segment:
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


# every sentence names the digit (numeral or word) and its motion; the first set names the colour too
COLOUR_TEMPLATES = ("a {c} {d} {p}.", "the digit {w}, drawn in {c}, {p}.", "a handwritten {w} in {c} {p}.",
                    "{c} number {d} {p} over a textured background.", "we see a {c} {w} that {p}.")
PLAIN_TEMPLATES = ("a {d} {p}.", "the digit {w} {p}.", "a handwritten {w} {p}.",
                   "number {d} {p} over a textured background.", "we see a {w} that {p}.")


def caption(rng: np.random.Generator, digit: int, colour: str, motion: int, colour_p: float = 1.0) -> str:
    """One segment's sentence. With `colour_p` < 1 a draw decides whether it names the colour (at 1 no draw
    is made, so the captions of earlier copies are reproduced exactly); the draws follow the frames' and
    never move them."""
    templates = COLOUR_TEMPLATES if colour_p >= 1 or rng.random() < colour_p else PLAIN_TEMPLATES
    t = templates[int(rng.integers(len(templates)))]
    return t.format(c=colour, d=digit, w=DIGIT_WORDS[digit], p=PHRASES[MOTIONS[motion]])


def tone(digit: int, loudness: np.ndarray, fps: int, rate: int) -> np.ndarray:
    """Mono float32 audio: pitch from the digit (a semitone scale from A3), loudness per frame."""
    n = int(round(len(loudness) * rate / fps))
    t = np.arange(n) / rate
    env = np.interp(t, (np.arange(len(loudness)) + 0.5) / fps, loudness)
    freq = 220.0 * 2 ** (digit / 12)
    return (0.4 * env * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def make_video(cfg, split: str, index: int, image_ids: np.ndarray,
               images: np.ndarray, labels: np.ndarray, assigned: tuple[int, int] | None):
    """Render one video of a split (`cfg` a `moving_digits.MovingDigitsConfig`): (frames, audio, metadata).
    Deterministic in (seed, split, index)."""
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
        "caption": " then ".join(caption(rng, digit, s.colour, s.motion, cfg.caption_colour_p).rstrip(".")
                                 for s in segs) + ".",
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
