"""`bench data resize`: a copy of a dataset re-encoded to a short side and a short keyframe interval.

Decoding dominates the data path of real videos: a 340x256 H.264 clip from YouTube has keyframes every
few seconds, so every randomly placed clip decodes from a keyframe far before it, and full-resolution
frames are converted and resized only to be cropped to 224 px. A copy at the protocol's short side
with a keyframe every `gop` frames costs a fraction of that (measured in docs/datasets.md). The copy
keeps the folder layout, file names and containers, so the annotation files (copied as they are)
stay valid. Videos are re-encoded in parallel processes; each output is written atomically and an
existing one is skipped, so an interrupted resize continues where it stopped.
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

from harness.data.encoding import Clip, encode
from harness.data.formats import VIDEO_EXTENSIONS
from harness.progress import progress_bar

# container extension -> (muxer, encoder): the copy keeps each file's container and codec family
ENCODERS = {".mp4": ("mp4", "libx264"), ".mkv": ("matroska", "libx264"), ".avi": ("avi", "mpeg4"),
            ".webm": ("webm", "libvpx-vp9")}


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side `short_side` and the aspect ratio kept, both even (yuv420p)."""
    s = short_side / min(width, height)
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def resize_video(src: str, dst: str, short_side: int, gop: int) -> str:
    """Re-encode `src` to `dst` (same container) at `short_side`, a keyframe every `gop` frames; no audio."""
    import av
    import numpy as np

    from harness.data.video import video_stream

    with av.open(src) as c:
        s = video_stream(c, src)
        s.thread_count = 1
        fps = Fraction(s.average_rate or s.guessed_rate or 25)
        w, h = scaled_size(s.codec_context.width, s.codec_context.height, short_side)
        frames = np.stack([f.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
                           for f in c.decode(s)])
    muxer, codec = ENCODERS[os.path.splitext(dst)[1].lower()]
    encode(Path(dst), frames, Clip(dst, 0, muxer, codec, fps, w, h, len(frames), gop=gop))
    return dst


def _job(args: tuple[str, str, int, int]) -> str | None:
    try:
        return resize_video(*args) and None
    except Exception as e:  # a file that cannot be decoded is reported and left out of the copy
        return f"{args[0]}: {type(e).__name__}: {e}"


def resize_copy(src_root: Path, out: Path, short_side: int, gop: int, workers: int = 0,
                progress: bool = True) -> tuple[int, int, list[str]]:
    """Copy `src_root` to `out`: videos re-encoded, other files copied. Returns (videos written, skipped
    because already there, failures)."""
    jobs, skipped = [], 0
    for d, _, names in os.walk(src_root):
        for n in names:
            src = Path(d) / n
            dst = out / src.relative_to(src_root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                skipped += os.path.splitext(n)[1].lower() in VIDEO_EXTENSIONS
            elif os.path.splitext(n)[1].lower() in ENCODERS:
                jobs.append((str(src), str(dst), short_side, gop))
            else:
                shutil.copy2(src, dst)
    failures = []
    bar = progress_bar(len(jobs), 0, "resizing", "video", progress)
    with ProcessPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for err in pool.map(_job, jobs, chunksize=4):
            if err:
                failures.append(err)
            bar.update()
    bar.close()
    return len(jobs) - len(failures), skipped, failures
