"""Writing video files: one clip's frames encoded in a container and codec as the real datasets ship them
(H.264 mp4, MPEG-4 Part 2 AVI, VP9 WebM), byte-identical for the same input, and a clip drawn to show its
class. The miniatures of the official layouts (`synth`) and re-encoded copies (`resize`) write through it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# One set of encoder options per codec, all single-threaded so the bytes depend on the seed alone.
# x264: mbtree=0 for the reason given in digits_video.write_mp4 (MB-tree read uninitialised padding).
CODEC_OPTIONS = {
    "libx264": {"crf": "23", "bf": "0", "g": "25", "sc_threshold": "0", "threads": "1", "preset": "fast",
                "x264-params": "mbtree=0"},
    "mpeg4": {"threads": "1", "g": "25", "bf": "0"},
    # realtime / cpu-used 8: VP9's default "good" deadline is ~50x slower for no benefit here
    "libvpx-vp9": {"threads": "1", "deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "0"},
}
BIT_RATES = {"mpeg4": 800_000}  # MPEG-4 Part 2 has no CRF; a fixed rate like the DivX/Xvid rips of UCF101/HMDB51


@dataclass(frozen=True)
class Clip:
    """One video to encode: where (relative to the miniature's root), its class, container and codec."""

    path: str
    label: int
    container: str  # PyAV / FFmpeg muxer name: "mp4", "avi", "webm"
    codec: str  # FFmpeg encoder: "libx264", "mpeg4", "libvpx-vp9"
    fps: Fraction
    width: int
    height: int
    frames: int
    codec_tag: str | None = None
    gop: int | None = None  # keyframe interval, when not the codec's default in CODEC_OPTIONS


PALETTE = np.array([(200, 40, 40), (40, 160, 60), (40, 70, 200), (210, 190, 30),
                    (170, 50, 190), (30, 170, 180), (230, 120, 20), (110, 110, 110)], dtype=np.float32)
DIRECTIONS = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)], dtype=np.float32)


def render(clip: Clip, rng: np.random.Generator) -> np.ndarray:
    """T x H x W x 3 uint8 frames that show `clip.label`: the background colour and the direction a bright
    square travels in are the class's; its brightness, size, start and speed vary per clip so that no two
    clips of a class are identical and nothing but the class is shared."""
    h, w, t, label = clip.height, clip.width, clip.frames, clip.label
    bg = np.clip(PALETTE[label % len(PALETTE)] * rng.uniform(0.8, 1.1), 0, 255)
    side = int(h * rng.uniform(0.18, 0.26))
    start = rng.uniform((0, 0), (w - side, h - side))
    speed = min(w, h) * rng.uniform(0.5, 0.7) / t  # pixels per frame: about half the frame per clip
    shade = rng.uniform(225, 255)
    # a still vertical gradient so frames are not flat colour (codecs treat flat frames specially)
    rows = np.clip(bg[None, :] + np.linspace(-25, 25, h)[:, None], 0, 255).astype(np.uint8)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    frames[:] = rows[None, :, None, :]
    span = np.array([w - side, h - side], dtype=np.float32)
    for i in range(t):
        x, y = (start + DIRECTIONS[label % len(DIRECTIONS)] * speed * i) % np.maximum(span, 1)
        frames[i, int(y):int(y) + side, int(x):int(x) + side] = int(shade)
    return frames


def encode(path: Path, frames: np.ndarray, clip: Clip) -> None:
    """The one encoder every format uses: `frames` as yuv420p in `clip`'s container and codec, written to a
    temporary name and renamed, so a killed run never leaves a truncated video under a listed name."""
    import av

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tb = 1 / clip.fps
    try:
        # bitexact: the WebM muxer otherwise writes a random segment UID, so two runs would differ
        with av.open(str(tmp), "w", format=clip.container, options={"fflags": "+bitexact"}) as out:
            vs = out.add_stream(clip.codec, rate=clip.fps)
            vs.width, vs.height, vs.pix_fmt = clip.width, clip.height, "yuv420p"
            vs.codec_context.time_base = tb
            if clip.codec in BIT_RATES:
                vs.codec_context.bit_rate = BIT_RATES[clip.codec]
            if clip.codec_tag:
                try:
                    vs.codec_context.codec_tag = clip.codec_tag
                except (ValueError, TypeError, AttributeError):
                    pass  # the FourCC is cosmetic; FFmpeg's default tag decodes the same
            vs.options = {**CODEC_OPTIONS[clip.codec], **({"g": str(clip.gop)} if clip.gop else {})}
            for i, f in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(f, format="rgb24")
                vf.pts, vf.time_base = i, tb
                out.mux(vs.encode(vf))
            out.mux(vs.encode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
