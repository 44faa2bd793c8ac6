"""Decoding speed of real video files through the harness's data path, before and after `bench data resize`.

Writes two 10-second 340x256 H.264 files (25 and 30 fps) with a keyframe every 250 frames (x264's
default, what an ffmpeg-trimmed Kinetics clip has), re-encodes each as `bench data resize` does (short
side 256, a keyframe every 16 frames), and measures on one process:
- ρ = 2 pre-training samples: two 8x8 clips (57 source frames each) at random places, decoded with
  seeking (no frame cache), as `PretrainClips` reads them; clips per second;
- 10 x 3 test views: one decode of the ten clips' frames, resized and cropped to 30 views of 256 px,
  as `LabelledViews` cuts them; views per second.

    python tools/decode_speed.py [--seconds 10] [--samples 40]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_config  # noqa: E402
from harness.data import sampling  # noqa: E402
from harness.data.datasets import LabelledViews, VideoSet  # noqa: E402
from harness.data.encoding import Clip, encode, render  # noqa: E402
from harness.data.resize import resize_video  # noqa: E402
from harness.data.video import probe  # noqa: E402


def measure(path: Path, samples: int, rng: np.random.Generator) -> tuple[float, float]:
    clip = load_config("paper").backbone.clip
    n = probe(path).num_frames
    videos = VideoSet(path.parent, [{"path": path.name, "frames": n, "labels": {}}], cache_frames=False)
    t0 = time.perf_counter()
    for _ in range(samples):
        starts = sampling.random_clip_starts(n, clip.frames, clip.stride, 2, rng)
        videos.frames(0, np.concatenate([sampling.clip_indices(s, clip.frames, clip.stride, n) for s in starts]))
    pretrain = 2 * samples / (time.perf_counter() - t0)
    views = LabelledViews(videos, clip, sampling.ViewLayout(10, 3, with_centre=False), [])
    reps = max(2, samples // 10)
    t0 = time.perf_counter()
    for _ in range(reps):
        views[0]
    return pretrain, 30 * reps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--samples", type=int, default=40)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for fps in (Fraction(25), Fraction(30)):
            n = int(args.seconds * fps)
            src = Path(d) / f"orig_{fps}.mp4"
            c = Clip(src.name, 1, "mp4", "libx264", fps, 340, 256, n, gop=250)
            encode(src, render(c, np.random.default_rng(0)), c)
            small = Path(d) / f"resized_{fps}.mp4"
            resize_video(str(src), str(small), 256, 16)
            for name, p in (("original (keyframe every 250)", src), ("after `bench data resize` (every 16)", small)):
                pre, test = measure(p, args.samples, np.random.default_rng(0))
                rows.append((f"{fps} fps", name, pre, test))
    print("| video | copy | ρ = 2 pre-training clips/s | 10 x 3 test views/s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} |")


if __name__ == "__main__":
    main()
