"""The data path side by side on natural content: the harness against pytorchvideo's `EncodedVideo`, both
against the single-thread decode limit, on three files made from real photographs.

No Kinetics video can be downloaded here, so the files are filmed by a virtual camera that pans and zooms
across the two photographs scikit-learn ships (`load_sample_images`: a temple and a flower), with a cut
half-way and a little sensor noise, so the encoder meets textures, edges and motion as in a real clip:

- `natural_720p.mp4`: 1280x720, 30 fps, 10 s, H.264 with x264's default keyframe interval (250);
- `natural_k400.mp4`: the same shot at 340x256 (the size of the common Kinetics-400 copies), keyframes every 250;
- `natural_k400_resized.mp4`: that file after `bench data resize` (short side 256, a keyframe every 16).

Per file and round (one thread; ratios are taken within a round, so a busy machine moves both sides alike):
`harness.data.throughput.measure` (decode limit, a ρ = 2 pre-training sample of the `paper` clip, a video's
10 x 3 test views as uint8 crops and as float as before) and pytorchvideo reading the same clips
(`get_clip` per clip; test views then resized, cropped and normalised in torch, as its transforms do).
A ratio is the decode limit's time for the fewest frames those clips need from their keyframes, over the
time taken: 1.0 is at the limit.

    python tools/natural_video_speed.py [--rounds 5] [--out DIR]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_config  # noqa: E402
from harness.data import sampling  # noqa: E402
from harness.data.encoding import Clip, encode  # noqa: E402
from harness.data.resize import resize_video  # noqa: E402
from harness.data.throughput import fewest_frames, measure  # noqa: E402
from harness.data.video import keyframes, probe  # noqa: E402

FPS, SECONDS = 30, 10


def film(width: int, height: int, seconds: int = SECONDS, fps: int = FPS) -> np.ndarray:
    """T x H x W x 3 uint8: a camera panning and zooming across one photograph, then (a cut) the other."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p) for p in load_sample_images().images]
    n, rng = seconds * fps, np.random.default_rng(0)
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        shot, u = divmod(t, n // 2)
        u /= n // 2
        photo = photos[shot]
        pw, ph = photo.size
        zoom = 0.85 - 0.25 * u if shot == 0 else 0.6 + 0.25 * u  # share of the photo's height in view
        ch = ph * zoom
        cw = min(ch * width / height, pw)
        x = (pw - cw) * (0.1 + 0.8 * u if shot == 0 else 0.9 - 0.8 * u)
        y = (ph - ch) * (0.5 + 0.3 * np.sin(2 * np.pi * u))
        view = photo.resize((width, height), Image.BILINEAR, box=(x, y, x + cw, y + ch))
        noisy = np.asarray(view, np.int16) + rng.normal(0, 2.0, (height, width, 3)).round().astype(np.int16)
        frames[t] = np.clip(noisy, 0, 255)
    return frames


def make_files(folder: Path) -> list[Path]:
    out = []
    for name, w, h in (("natural_720p", 1280, 720), ("natural_k400", 340, 256)):
        path = folder / f"{name}.mp4"
        clip = Clip(path.name, 0, "mp4", "libx264", Fraction(FPS), w, h, SECONDS * FPS, gop=250)
        encode(path, film(w, h), clip)
        out.append(path)
    resized = folder / "natural_k400_resized.mp4"
    resize_video(str(out[1]), str(resized), 256, 16)
    return out + [resized]


def pytorchvideo_times(path: Path, clip, starts: list[int], layout: sampling.ViewLayout) -> tuple[float, float]:
    """Seconds for pytorchvideo to read the sample's clips, and to make the video's test views."""
    import torch
    import torch.nn.functional as F
    from pytorchvideo.data.encoded_video import EncodedVideo

    span = clip.frames * clip.stride
    t0 = time.perf_counter()
    video = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
    for s in starts:
        frames = video.get_clip(s / FPS, (s + span) / FPS)["video"]  # (C, T, H, W) float, every frame in the window
        frames[:, ::clip.stride][:, :clip.frames]
    video.close()
    sample = time.perf_counter() - t0

    mean = torch.tensor(clip.mean).view(3, 1, 1, 1)
    std = torch.tensor(clip.std).view(3, 1, 1, 1)
    n = probe(path).num_frames
    t0 = time.perf_counter()
    video = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
    views = []
    for idx in layout.frame_indices(n, clip.frames, clip.stride):
        frames = video.get_clip(int(idx[0]) / FPS, (int(idx[-1]) + 1) / FPS)["video"]
        x = frames[:, ::clip.stride][:, :clip.frames] / 255.0
        c, t, h, w = x.shape
        scale = clip.test_short_side / min(h, w)
        x = F.interpolate(x.transpose(0, 1), size=(round(h * scale), round(w * scale)), mode="bilinear",
                          align_corners=False).transpose(0, 1)
        x = (x - mean) / std
        h, w, side = x.shape[-2], x.shape[-1], clip.crop_size
        for k in range(layout.spatial):  # left / centre / right (or top / centre / bottom)
            off = (k * (max(h, w) - side)) // max(layout.spatial - 1, 1)
            views.append(x[..., off:off + side, :side] if h > w else x[..., :side, off:off + side])
    torch.stack(views)
    video.close()
    return sample, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="keep the three files here (default: a temporary folder)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    clip = load_config("paper").backbone.clip
    layout = sampling.ViewLayout(10, 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        paths = make_files(folder)
        print(f"made {', '.join(p.name for p in paths)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows = []
        for path in paths:
            n, keys = probe(path).num_frames, keyframes(path)
            r = {k: [] for k in ("h_sample", "h_views", "h_float", "p_sample", "p_views", "limit")}
            decoded = 0.0
            rng = np.random.default_rng(1)
            for _ in range(args.rounds):
                (h,) = measure([path], clip, rounds=1, log=lambda *_: None)
                per_frame = 1 / h.limit_fps  # this round's decode limit, measured by `measure`
                starts = rng.integers(0, n - clip.frames * clip.stride, size=2).tolist()
                wanted = [s + k * clip.stride for s in starts for k in range(clip.frames)]
                view_min = fewest_frames(np.concatenate(layout.frame_indices(n, clip.frames, clip.stride)).tolist(),
                                         keys)
                p_sample, p_views = pytorchvideo_times(path, clip, starts, layout)
                r["limit"].append(1 / per_frame)
                r["h_sample"].append(h.sample_ratio[0])
                r["h_views"].append(h.views_ratio[0])
                r["h_float"].append(h.float_ratio[0])
                r["p_sample"].append(per_frame * fewest_frames(wanted, keys) / p_sample)
                r["p_views"].append(per_frame * view_min / p_views)
                decoded = h.decoded_vs_min
            rows.append((path.name, h.size, h.gop, decoded, {k: statistics.median(v) for k, v in r.items()}))
    print("| file | size | GOP | decode limit (frames/s) | sample: harness | sample: pytorchvideo | "
          "decoded / fewest (harness) | test views: harness uint8 | harness float (before) | test views: pytorchvideo |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, size, gop, dec, m in rows:
        print(f"| {name} | {size} | {gop or 'irregular'} | {m['limit']:.0f} | {m['h_sample']:.2f} | {m['p_sample']:.2f} | "
              f"{dec:.2f} | {m['h_views']:.2f} | {m['h_float']:.2f} | {m['p_views']:.2f} |")
    print("\nratios of the single-thread decode limit (1.0 = at the limit), medians of "
          f"{args.rounds} interleaved rounds; torchcodec is not measured (it does not load on this machine)")


if __name__ == "__main__":
    main()
