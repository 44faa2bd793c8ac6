"""Reading video files with PyAV: one sequential pass per sample over the frames its clips need.

Seeking per clip loses (measurements in docs/data-path.md) to a single pass once clips are dense (10 test
clips), while two seeks beat a full decode for ρ=2 on a short video. `decode_frames` does both:
it walks the sorted union of wanted frames in one pass, and where the keyframe spacing is known it seeks
exactly when a keyframe lies between the last decoded frame and the next wanted one (else across gaps
longer than `seek_gap` frames), so no frame is decoded twice and none that a seek would skip.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.errors import VideoDecodeError

__all__ = ["VideoDecodeError", "VideoInfo", "probe", "decode_frames", "read_audio"]


@dataclass
class VideoInfo:
    """What a loader needs to know before sampling clips."""

    num_frames: int
    fps: float
    width: int
    height: int
    has_audio: bool


def video_stream(container, path: str | Path):
    """The container's first video stream; a file without one (an audio file under a video's name) is
    unreadable, said in those words."""
    if not container.streams.video:
        raise VideoDecodeError(f"{path}: no video stream")
    return container.streams.video[0]


def probe(path: str | Path) -> VideoInfo:
    """Frame count, rate, size and whether an audio stream exists (from the container header)."""
    import av

    try:
        with av.open(str(path)) as c:
            s = video_stream(c, path)
            fps = float(s.average_rate or s.guessed_rate or 0)
            n = s.frames
            if not n and s.duration and s.time_base and fps:
                n = int(round(float(s.duration * s.time_base) * fps))
            if not n and c.duration and fps:  # WebM keeps no per-stream count or duration: the container's
                n = int(round(c.duration / 1_000_000 * fps))
            return VideoInfo(int(n), fps, s.codec_context.width, s.codec_context.height, bool(c.streams.audio))
    except VideoDecodeError:
        raise
    except Exception as e:  # av raises several error types; all mean "unreadable"
        raise VideoDecodeError(f"{path}: cannot open ({type(e).__name__}: {e})") from e


def to_rgb(frames: list) -> np.ndarray:
    """Decoded av.VideoFrames -> uint8 (N, H, W, 3), as `frame.to_ndarray(format="rgb24")` of each.

    Converting frame by frame costs a swscale set-up per frame, most of the decode time of small
    videos. yuv420p frames of even size are stacked into one tall frame and converted in one call:
    the unscaled conversion maps each 2x2 block on its own, so the result is the same to the bit
    (tests/test_data.py checks it), about five times faster on the embedded videos.
    """
    import av

    f0 = frames[0]
    h, w = f0.height, f0.width
    if f0.format.name != "yuv420p" or h % 2 or w % 2 or len(frames) == 1 or \
            any(f.width != w or f.height != h or f.format.name != "yuv420p" for f in frames):
        return np.stack([f.to_ndarray(format="rgb24") for f in frames])
    def plane(f, i: int, rows: int, cols: int) -> np.ndarray:  # a view of the frame's buffer, no copy
        p = f.planes[i]
        return np.frombuffer(p, np.uint8)[:rows * p.line_size].reshape(rows, p.line_size)[:, :cols]

    y = np.concatenate([plane(f, 0, h, w) for f in frames])
    u = np.concatenate([plane(f, 1, h // 2, w // 2) for f in frames])
    v = np.concatenate([plane(f, 2, h // 2, w // 2) for f in frames])
    tall = np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)])
    return av.VideoFrame.from_ndarray(tall, format="yuv420p").to_ndarray(format="rgb24").reshape(len(frames), h, w, 3)


def _scan_keyframes(path: str | Path, max_packets: int | None) -> tuple[list[int], int]:
    """(frame indices of the keyframes, video packets read) from the first `max_packets` packets of the
    first video stream (all when None); nothing is decoded. A packet without a timestamp counts by its place."""
    import av

    with av.open(str(path)) as c:
        s = video_stream(c, path)
        fps, tb, start = float(s.average_rate or s.guessed_rate or 1), s.time_base, s.start_time or 0
        keys, n = set(), 0
        for pkt in c.demux(s):
            if pkt.size == 0:
                continue  # the flush packet
            if pkt.is_keyframe:
                keys.add(int(round((pkt.pts - start) * tb * fps)) if pkt.pts is not None else n)
            n += 1
            if max_packets is not None and n >= max_packets:
                break
    return sorted(keys), n


def keyframes(path: str | Path) -> list[int]:
    """Frame indices of every keyframe of the first video stream, from its packets."""
    return _scan_keyframes(path, None)[0]


def keyframe_interval(path: str | Path, max_packets: int = 2000) -> int:
    """Frames between keyframes: the median spacing of the keyframes among the first `max_packets` packets
    (the packets read when there is a single keyframe among them)."""
    keys, n = _scan_keyframes(path, max_packets)
    gaps = sorted(b - a for a, b in zip(keys, keys[1:]))
    return gaps[len(gaps) // 2] if gaps else max(n, 1)


def truncation_slack(expected: int) -> int:
    """How many frames a file may decode short of its header's count before it counts as truncated:
    container counts of healthy files can be off by a frame or two (edit lists, rounding)."""
    return max(2, expected // 50)


def decode_frames(path: str | Path, indices: Sequence[int] | None = None, seek_gap: int = 32,
                  expect: int | None = None, gop: int = 0, stats: dict | None = None) -> np.ndarray:
    """Frames at `indices` (any order, repeats allowed) as uint8 (N, H, W, 3); all frames if None.

    With `gop` (keyframes every `gop` frames from frame 0, as the manifest records), the pass is
    keyframe-exact: it seeks exactly when a keyframe lies after the last decoded frame and at or before the
    next wanted one, so every wanted frame is reached from the nearest keyframe and a sample decodes the
    fewest frames; without it, it seeks across gaps longer than `seek_gap`. `stats` (a dict) receives
    `decoded` (frames decoded) and `seeks`.

    Indices past the end of the stream are clamped to the last frame, as clip samplers do for
    videos shorter than a clip; but with `expect` (the frame count the index gives), a stream that
    ends more than `truncation_slack` frames before it is a truncated file: VideoDecodeError, not padding.
    """
    def seek_to(target: int, pos: int) -> bool:
        if pos < 0:
            return True
        return (target // gop) * gop > pos if gop > 0 else target - pos > seek_gap

    stats = stats if stats is not None else {}
    stats.update(decoded=0, seeks=0)
    import av

    try:
        with av.open(str(path)) as c:
            stream = video_stream(c, path)
            stream.thread_count = 1  # loaders run in parallel workers; codec threads would oversubscribe
            if indices is None:
                frames = list(c.decode(stream))
                if not frames:
                    raise VideoDecodeError(f"{path}: no decodable frames")
                return to_rgb(frames)
            wanted = sorted(set(int(i) for i in indices))
            if wanted and wanted[0] < 0:
                raise ValueError(f"negative frame index {wanted[0]}")
            fps = float(stream.average_rate or stream.guessed_rate)
            tb = stream.time_base
            start_pts = stream.start_time or 0
            got: dict[int, object] = {}  # index -> av.VideoFrame, converted together at the end
            last = None
            pos = -1  # index of the last decoded frame
            k = 0  # next wanted frame
            while k < len(wanted):
                sought = seek_to(wanted[k], pos)
                if sought:  # jump close to the target: seek lands on the keyframe at or before it
                    c.seek(int(start_pts + wanted[k] / fps / tb), stream=stream, backward=True, any_frame=False)
                    stats["seeks"] += 1
                for frame in c.decode(stream):
                    pos = int(round((frame.pts - start_pts) * tb * fps)) if frame.pts is not None else pos + 1
                    stats["decoded"] += 1
                    last = frame
                    while k < len(wanted) and wanted[k] <= pos:
                        got[wanted[k]] = frame
                        k += 1
                        sought = False
                    # after a seek, decode on to the target (the keyframe may lie far before it)
                    if k >= len(wanted) or (not sought and seek_to(wanted[k], pos)):
                        break  # done, or a keyframe nearer the next target: seek instead of decoding through
                else:
                    break  # end of stream
            if last is None:
                raise VideoDecodeError(f"{path}: no decodable frames")
            if k < len(wanted) and expect is not None and min(wanted[-1], expect - 1) - pos > truncation_slack(expect):
                raise VideoDecodeError(f"{path}: truncated: the stream ends at frame {pos} of the {expect} "
                                       "its header gives")
            for w in wanted[k:]:  # past the end: repeat the last frame
                got[w] = last
            keys = list(got)
            rgb = dict(zip(keys, to_rgb([got[i] for i in keys])))
            return np.stack([rgb[int(i)] for i in indices])
    except VideoDecodeError:
        raise
    except Exception as e:
        raise VideoDecodeError(f"{path}: cannot decode ({type(e).__name__}: {e})") from e


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole first audio stream as float32 mono samples and its sample rate."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise VideoDecodeError(f"{path}: no audio stream")
            s = c.streams.audio[0]
            chunks = [f.to_ndarray().astype(np.float32).mean(0) for f in c.decode(s)]
            return np.concatenate(chunks), int(s.rate)
    except VideoDecodeError:
        raise
    except Exception as e:
        raise VideoDecodeError(f"{path}: cannot decode audio ({type(e).__name__}: {e})") from e
