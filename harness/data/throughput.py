"""`bench perf --data FILES`: what the data path costs on a user's own videos, before a long run.

For each file, on one thread, in interleaved rounds (ratios are taken within a round, so a busy machine
moves both sides alike):

- the decode limit: every frame decoded, nothing converted (frames per second);
- a pre-training sample (ρ clips of the profile's clip at random starts): its time against the limit's time
  for the fewest frames that reach those clips from their keyframes, and frames decoded vs that minimum;
- a video's test views (temporal x spatial, as the protocols read them): as the loader gives them now
  (uint8 crops) and normalised to float in the loader as before, each against the limit's time for the
  frames that pass decodes.

Keyframe positions come from the container's packets (nothing decoded). The seek rule of each file is the
one a run uses: keyframe-exact where the spacing is regular, else the seek-gap rule.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data import sampling
from harness.data.datasets import LabelledViews, VideoSet
from harness.data.video import decode_frames, keyframes, probe, video_stream

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov")


def fewest_frames(wanted: list[int], keys: list[int]) -> int:
    """Frames a pass must decode to reach every wanted frame from the nearest keyframe at or before it."""
    import bisect

    count, pos = 0, -1
    for w in sorted(set(wanted)):
        k = keys[max(bisect.bisect_right(keys, w) - 1, 0)] if keys else 0
        count += (w - k + 1) if k > pos else (w - pos)
        pos = w
    return count


def _decode_limit(path: Path) -> float:
    """Seconds per frame of decoding every frame with nothing converted."""
    import av

    t0, n = time.perf_counter(), 0
    with av.open(str(path)) as c:
        s = video_stream(c, path)
        s.thread_count = 1
        for _ in c.decode(s):
            n += 1
    return (time.perf_counter() - t0) / max(n, 1)


@dataclass
class FileResult:
    path: str
    size: str
    frames: int
    gop: int
    limit_fps: float
    sample_ratio: list[float] = field(default_factory=list)
    sample_ms: list[float] = field(default_factory=list)
    decoded_vs_min: float = 0.0
    views_ratio: list[float] = field(default_factory=list)
    views_ms: list[float] = field(default_factory=list)
    float_ratio: list[float] = field(default_factory=list)
    float_ms: list[float] = field(default_factory=list)


def measure(paths: list[Path], clip, rho: int = 2, temporal: int = 10, spatial: int = 3, rounds: int = 5,
            log=print) -> list[FileResult]:
    """The side-by-side measurements of every file (see the module docstring)."""
    import torch

    torch.set_num_threads(1)
    out = []
    for path in paths:
        info, keys = probe(path), keyframes(path)
        gaps = sorted(b - a for a, b in zip(keys, keys[1:]))
        regular = bool(gaps) and gaps[0] == gaps[-1] and keys[0] == 0
        gop = gaps[0] if regular else 0
        entry = {"id": path.stem, "path": path.name, "frames": info.num_frames, "labels": {},
                 **({"gop": gop, "keyframes": "regular"} if regular else {})}
        videos = VideoSet(path.parent, [entry], cache_frames=False)
        r = FileResult(str(path), f"{info.width}x{info.height}", info.num_frames, gop, 0.0)
        layout = sampling.ViewLayout(temporal, spatial)
        span = clip.frames * clip.stride
        rng = np.random.default_rng(0)
        limits = []
        for _ in range(rounds):
            per_frame = _decode_limit(path)
            limits.append(1 / per_frame)
            starts = rng.integers(0, max(info.num_frames - span, 1), size=rho)
            wanted = [int(s) + k * clip.stride for s in starts for k in range(clip.frames)]
            stats = {}
            t0 = time.perf_counter()
            decode_frames(path, wanted, expect=info.num_frames, gop=gop, stats=stats,
                          seek_gap=max(videos.seek_gap, gaps[len(gaps) // 2] if gaps else 0))
            took = time.perf_counter() - t0
            minimum = fewest_frames(wanted, keys)
            r.sample_ms.append(1000 * took)
            r.sample_ratio.append(per_frame * minimum / took)
            r.decoded_vs_min = stats["decoded"] / minimum
            view_frames = np.concatenate(layout.frame_indices(info.num_frames, clip.frames, clip.stride)).tolist()
            view_min = fewest_frames(view_frames, keys)
            for uint8, ms, ratio in ((True, r.views_ms, r.views_ratio), (False, r.float_ms, r.float_ratio)):
                ds = LabelledViews(videos, clip, layout, [], uint8=uint8)
                t0 = time.perf_counter()
                item = ds[0]
                took = time.perf_counter() - t0
                if "bad" in item:
                    raise RuntimeError(item["error"])
                ms.append(1000 * took)
                ratio.append(per_frame * view_min / took)
        r.limit_fps = statistics.median(limits)
        log(f"{path.name}: decode limit {r.limit_fps:.0f} frames/s")
        out.append(r)
    return out


def table(results: list[FileResult]) -> str:
    """One line per file: medians over the rounds; ratios are of the decode limit (1.0: at the limit)."""
    med = statistics.median
    lines = ["| file | size | frames | GOP | decode limit (frames/s) | pre-training sample ms (x limit) | "
             "decoded / fewest | test views uint8 ms (x limit) | float views ms (x limit) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {Path(r.path).name} | {r.size} | {r.frames} | {r.gop or 'irregular'} | {r.limit_fps:.0f} | "
                     f"{med(r.sample_ms):.1f} ({med(r.sample_ratio):.2f}) | {r.decoded_vs_min:.2f} | "
                     f"{med(r.views_ms):.1f} ({med(r.views_ratio):.2f}) | {med(r.float_ms):.1f} ({med(r.float_ratio):.2f}) |")
    return "\n".join(lines)


def files(paths: list[str]) -> list[Path]:
    """The video files named, and those inside named folders (sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            from harness.errors import ConfigError

            raise ConfigError(f"--data {p}: no such file or folder")
    return out
