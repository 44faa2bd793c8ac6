"""Per-frame tokenizers that turn pixels into discrete codes: VIMPAC's first, frozen stage.

VIMPAC tokenises each frame with the encoder of OpenAI's DALL-E dVAE (8192 codes, 8x downsampling).
Those weights cannot be downloaded here, so the harness trains its own small VQ-VAE on frames of the
pre-training videos (`FrameVQVAE`), once per setting and dataset (cached under `tokenizers/`), and
loads a user's `encoder.pkl` of the `dall-e` package when given one (`DalleTokenizer`). Both map
(N, 3, H, W) pixels in [0, 1] to (N, H/d, W/d) code ids.

The quantiser is vector-quantize-pytorch's `VectorQuantize` (EMA codebook, k-means initialisation and
restarts of dead codes): the parts of a VQ-VAE that decide whether the codebook is used at all.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.storage import content_key

DALLE_EPS = 0.1  # DALL-E's `map_pixels` squeezes [0, 1] into [eps, 1 - eps]


def luma_normalised(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> the frame's luma standardised over the frame and squashed back into
    (0, 1), on 3 channels: what a frame shows with its colours and overall brightness taken out."""
    y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    y = (y - y.mean((2, 3), keepdim=True)) / (y.std((2, 3), keepdim=True) + 1e-3)
    return torch.sigmoid(y).expand(-1, 3, -1, -1)


FRAME_INPUTS = {"rgb": lambda x: x, "luma-norm": luma_normalised}


class FrameVQVAE(nn.Module):
    """Conv encoder (÷`downsample`) -> vector quantiser -> conv decoder, on single frames.

    `frame_input = "luma-norm"` codes (and reconstructs) `luma_normalised` frames instead of the RGB ones.
    """

    def __init__(self, codebook: int, downsample: int, width: int, dim: int, frame_input: str = "rgb"):
        super().__init__()
        self.frame_input = frame_input
        from vector_quantize_pytorch import VectorQuantize

        k = int(math.log2(downsample))
        enc: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1), nn.ReLU()]
        dec: list[nn.Module] = [nn.Conv2d(dim, width, 3, 1, 1), nn.ReLU()]
        for _ in range(k):
            enc += [nn.Conv2d(width, width, 4, 2, 1), nn.ReLU()]
            dec += [nn.ConvTranspose2d(width, width, 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*enc, nn.Conv2d(width, dim, 1))
        self.decoder = nn.Sequential(*dec, nn.Conv2d(width, 3, 3, 1, 1))
        self.quantizer = VectorQuantize(dim=dim, codebook_size=codebook, decay=0.9, commitment_weight=0.25,
                                        kmeans_init=True, threshold_ema_dead_code=2, accept_image_fmap=True)
        self.vocab_size, self.downsample = codebook, downsample

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames in [0, 1], already through `prepare` -> (reconstruction, code ids, commitment loss)."""
        q, ids, commit = self.quantizer(self.encoder(x * 2 - 1))
        return (self.decoder(q) + 1) / 2, ids, commit

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> what this VQ-VAE codes (`frame_input`)."""
        return FRAME_INPUTS[self.frame_input](x)

    @torch.no_grad()
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(self.encoder(self.prepare(x) * 2 - 1))[1]


class DalleTokenizer(nn.Module):
    """The encoder of DALL-E's dVAE (`dall_e.Encoder`, loaded from its pickled `encoder.pkl`): code =
    argmax of its logits over the pixels squeezed as its `map_pixels` does."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.vocab_size, self.downsample = int(encoder.vocab_size), 2 ** (int(encoder.group_count) - 1)

    @torch.no_grad()
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder((1 - 2 * DALLE_EPS) * x.float() + DALLE_EPS).argmax(dim=1)


def load_dalle(path: str | Path) -> DalleTokenizer:
    """Load `encoder.pkl` of the `dall-e` package (a pickled module: it needs `pip install DALL-E`)."""
    try:
        import dall_e  # noqa: F401  (the pickle names its classes)
    except ImportError as e:
        raise ConfigError(f"backbones.vimpac.dvae_path={path}: loading DALL-E's encoder needs its package "
                          "(pip install DALL-E)") from e
    try:
        enc = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=False)
    except Exception as e:  # a damaged or foreign file: say which
        raise ConfigError(f"backbones.vimpac.dvae_path: cannot load {path}: {e}") from e
    if not isinstance(enc, nn.Module) or not hasattr(enc, "vocab_size") or not hasattr(enc, "group_count"):
        raise ConfigError(f"backbones.vimpac.dvae_path: {path} holds {type(enc).__name__}, not DALL-E's dVAE encoder")
    for p in enc.parameters():
        p.requires_grad_(False)
    return DalleTokenizer(enc.eval())


def train_vqvae(model: FrameVQVAE, frames: torch.Tensor, steps: int, batch: int, lr: float, seed: int,
                log: Callable[[str], None] = print) -> dict:
    """Fit `model` to `frames` (N, 3, H, W) in [0, 1] (as `model.prepare` gives them) by reconstruction +
    commitment; returns its report:
    reconstruction MSE on the frames, the MSE of the best constant image (their mean) for scale, and the
    share of codes in use."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        x = frames[torch.randint(len(frames), (batch,), generator=g)]
        lr_now = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr_now
        recon, _, commit = model(x)
        loss = F.mse_loss(recon, x) + commit.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % max(steps // 5, 1) == 0:
            log(f"  tokenizer step {step + 1}/{steps}: loss {loss.item():.4f}")
    model.eval()
    with torch.no_grad():
        mse, used = 0.0, torch.zeros(model.vocab_size, dtype=torch.bool)
        for chunk in frames.split(1024):
            recon, ids, _ = model(chunk)
            mse += F.mse_loss(recon, chunk, reduction="sum").item()
            used[ids.flatten()] = True
        mse /= frames.numel()
        constant = F.mse_loss(frames, frames.mean(0, keepdim=True).expand_as(frames)).item()
    return {"input": model.frame_input, "mse": mse, "constant_mse": constant, "codes_used": int(used.sum()),
            "codebook": model.vocab_size,
            "frames": len(frames), "steps": steps, "seconds": round(time.perf_counter() - t0, 1)}


def sample_frames(videos, count: int, size: int, seed: int) -> torch.Tensor:
    """`count` frames drawn uniformly from a VideoSet, resized to `size` on the short side and centre-cropped:
    the geometry VIMPAC's pre-training clips have. uint8 (count, 3, size, size)."""
    from harness.data.transforms import resize_short_side, spatial_crops, to_video

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(videos), size=count)
    out = []
    for i in np.unique(pick):
        n = videos.num_frames(int(i))
        idx = rng.integers(0, n, size=int((pick == i).sum()))
        video = resize_short_side(to_video(videos.frames(int(i), idx)), size)
        out.append(spatial_crops(video, size, 1)[0])
    return torch.cat(out)


def tokenizer_key(settings: dict, data: dict, size: int) -> str:
    """Names one trained tokenizer: its settings, the frames' size and the pre-training data it saw."""
    payload = {"settings": settings, "data": data, "size": size}
    return content_key(payload)
