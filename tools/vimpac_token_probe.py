"""Do a tokenizer's codes keep what the embedded tasks need? A supervised probe on one frame's codes.

For each tokenizer setting (`input:codebook`, e.g. rgb:512 luma-norm:32) this trains a per-frame VQ-VAE
on frames of the embedded pre-training videos, tokenises the middle frame of each labelled clip, and
fits a small CNN on those 8x8 code grids (a learned code embedding, two 3x3 convolutions) to the digit;
the same CNN on the pixels is the reference. Train and test top-1 show whether the codes generalise to
the test digits or only name the training clips. It measured the choice of the `embedded` tokenizer
(docs/results.md, VIMPAC):

    BENCH_CACHE_DIR=... python tools/vimpac_token_probe.py rgb:512 luma-norm:32 luma-norm:64 rgb:32
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import catalog  # noqa: E402
from harness.config import load_config  # noqa: E402
from harness.data.datasets import LabelledViews, VideoSet  # noqa: E402
from harness.data.sampling import ViewLayout  # noqa: E402
from harness.models.vq import FrameVQVAE, sample_frames, train_vqvae  # noqa: E402


def clips(cfg, split: str, n: int):
    ds = catalog.DATASETS.get("moving-digits")
    root, entries = ds.split(cfg.dataset_cfg, cfg.cache_root(), split, progress=False)
    views = LabelledViews(VideoSet(root, entries[:n], True), cfg.backbone.clip, ViewLayout(1, 1, with_centre=False),
                          ["digit"])
    items = [views[i] for i in range(len(views))]
    x = torch.cat([it["views"] for it in items])[:, :, cfg.backbone.clip.frames // 2]  # middle frames (N, 3, H, W)
    c = cfg.backbone.clip
    pixels = (x * torch.tensor(c.std).view(1, 3, 1, 1) + torch.tensor(c.mean).view(1, 3, 1, 1)).clamp(0, 1)
    return pixels, torch.tensor([it["labels"]["digit"] for it in items])


def fit(model: nn.Module, xtr, ytr, xte, yte, epochs: int) -> tuple[float, float]:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.05)
    for _ in range(epochs):
        model.train()
        for b in torch.randperm(len(xtr)).split(64):
            loss = F.cross_entropy(model(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return tuple(round(100 * (model(x).argmax(1) == y).float().mean().item(), 1) for x, y in ((xtr, ytr), (xte, yte)))


def code_cnn(codes: int) -> nn.Module:
    return nn.Sequential(nn.Embedding(codes, 32), Channels(), *conv_head(32))


def conv_head(cin: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, 64, 3, 1, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(64, 10)]


class Channels(nn.Module):
    def forward(self, x):  # (N, h, w, C) -> (N, C, h, w)
        return x.permute(0, 3, 1, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="+", help="input:codebook, input one of rgb, luma-norm")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config("embedded", method="vimpac")
    xtr, ytr = clips(cfg, "train", 1000)
    xte, yte = clips(cfg, "test", 500)
    ds = catalog.DATASETS.get("moving-digits")
    root, entries = ds.split(cfg.dataset_cfg, cfg.cache_root(), "pretrain", progress=False)
    frames = sample_frames(VideoSet(root, entries, False), 8192, cfg.backbone.clip.crop_size, 0).float() / 255
    rows = ["| codes of | codebook | VQ-VAE MSE (constant image) | train top-1 | test top-1 |", "|---|---|---|---|---|"]
    pix = fit(nn.Sequential(nn.Conv2d(3, 32, 4, 4), nn.ReLU(), *conv_head(32)), xtr, ytr, xte, yte, args.epochs)
    rows.append(f"| pixels (the same CNN, a 4x4 stride-4 stem) | — | — | {pix[0]} | {pix[1]} |")
    for setting in args.settings:
        frame_input, codebook = setting.split(":")
        torch.manual_seed(0)
        vq = FrameVQVAE(int(codebook), 4, 32, 32, frame_input)
        rep = train_vqvae(vq, vq.prepare(frames), args.steps, 128, 2e-3, 0, log=lambda m: None)
        vq.eval()
        acc = fit(code_cnn(int(codebook)), vq.tokens(xtr), ytr, vq.tokens(xte), yte, args.epochs)
        rows.append(f"| {frame_input} | {codebook} | {rep['mse']:.4f} ({rep['constant_mse']:.4f}) | {acc[0]} | {acc[1]} |")
        print(rows[-1], file=sys.stderr, flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
