"""VIMPAC's video transformer (Tan et al. 2021) over a (T, h, w) grid of discrete tokens, and the
`vimpac` encoder that puts a frozen per-frame tokenizer in front of it.

Embedding: h0 = LayerNorm(E[x] + pos_T(t) + pos_H(i) + pos_W(j)), factorised position tables that are
linearly interpolated when a clip's grid differs from the one the encoder was built for. A layer is
attention blocks along 1-D lines of the grid, then an MLP, each with a post-LN residual (BERT's
order; `norm = "pre"` is the ablation). Layouts (the paper's table 13):

- `T,H|W`: attention along time, then one block in which half the heads attend along the column
  and half along the row, outputs concatenated before one output projection (the paper's choice);
- `T,H,W`: three blocks, one per axis; `T,HxW`: time, then the whole frame; `TxHxW`: full attention.

[CLS] is one learned vector prepended to every 1-D sequence of a block; its outputs over all
sequences are averaged (TimeSformer's scheme, the paper's eq. 15). Written by hand because no
maintained library has axis-restricted attention with this [CLS] handling; the attention kernel is
torch's scaled_dot_product_attention.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.models.configs import VimpacNetConfig
from harness.models.encoder import ClipSpec, Encoder
from harness.models.stage import Stage
from harness.storage import atomic_json, atomic_save, read_verified

# the settings that shape a trained VQ-VAE tokenizer (its cache key, with the frame size and the data)
TOKENIZER_FIELDS = ("dvae_path", "codebook", "downsample", "vq_width", "vq_dim", "vq_frames", "vq_steps", "vq_batch",
                    "vq_lr", "vq_seed", "vq_input")

# axis groups per block, per layout: dims 1, 2, 3 of a (B, T, H, W, C) grid; a block with two groups
# splits its heads between them
LAYOUTS: dict[str, tuple[tuple[tuple[int, ...], ...], ...]] = {
    "T,H|W": (((1,),), ((2,), (3,))),
    "T,H,W": (((1,),), ((2,),), ((3,),)),
    "T,HxW": (((1,),), ((2, 3),)),
    "TxHxW": (((1, 2, 3),),),
}


def line_attention(q, k, v, cq, ck, cv, axes: tuple[int, ...], heads: int, dropout: float):
    """Attention within the lines of a grid that run along `axes`, [CLS] prepended to each line.

    q, k, v: (B, T, H, W, C); cq, ck, cv: (B, C). Returns the tokens' outputs (B, T, H, W, C) and the
    [CLS] output averaged over the lines (B, C).
    """
    b, c = q.shape[0], q.shape[-1]
    other = [d for d in (1, 2, 3) if d not in axes]
    perm = (0, *other, *axes, 4)
    sizes = [q.shape[d] for d in perm]
    n_lines = 1
    for d in other:
        n_lines *= q.shape[d]

    def lines(x, cx):
        x = x.permute(perm).reshape(b * n_lines, -1, c)
        cx = cx[:, None, None, :].expand(b, n_lines, 1, c).reshape(b * n_lines, 1, c)
        return torch.cat([cx, x], 1).unflatten(-1, (heads, c // heads)).transpose(1, 2)  # (BN, h, 1+L, c/h)

    out = F.scaled_dot_product_attention(lines(q, cq), lines(k, ck), lines(v, cv), dropout_p=dropout)
    out = out.transpose(1, 2).flatten(2)  # (BN, 1+L, C)
    cls = out[:, 0].reshape(b, n_lines, c).mean(1)
    inverse = [perm.index(d) for d in range(5)]
    return out[:, 1:].reshape(sizes).permute(inverse), cls


class AxisAttention(nn.Module):
    """One attention block: a shared QKV projection, its heads split evenly over the axis groups."""

    def __init__(self, dim: int, heads: int, head_dim: int, groups: tuple[tuple[int, ...], ...], dropout: float):
        super().__init__()
        self.groups, self.heads, self.head_dim, self.dropout = groups, heads, head_dim, dropout
        self.qkv = nn.Linear(dim, 3 * heads * head_dim)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, -1)
        cq, ck, cv = self.qkv(cls).chunk(3, -1)
        h = self.heads // len(self.groups)
        w = h * self.head_dim
        p = self.dropout if self.training else 0.0
        outs = [line_attention(q[..., s], k[..., s], v[..., s], cq[..., s], ck[..., s], cv[..., s], axes, h, p)
                for s, axes in ((slice(g * w, (g + 1) * w), axes) for g, axes in enumerate(self.groups))]
        return self.out(torch.cat([o[0] for o in outs], -1)), self.out(torch.cat([o[1] for o in outs], -1))


class Residual(nn.Module):
    """x + dropout(f(x)) with LayerNorm after (post-LN, the paper) or before f (pre-LN), on tokens and [CLS]."""

    def __init__(self, dim: int, body: nn.Module, post: bool, dropout: float):
        super().__init__()
        self.body, self.norm, self.post, self.drop = body, nn.LayerNorm(dim), post, nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.post:
            y, yc = self.body(x, cls)
            return self.norm(x + self.drop(y)), self.norm(cls + self.drop(yc))
        y, yc = self.body(self.norm(x), self.norm(cls))
        return x + self.drop(y), cls + self.drop(yc)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), self.net(cls)


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp: int, layout: str, post: bool, dropout: float):
        super().__init__()
        blocks = [AxisAttention(dim, heads, head_dim, groups, dropout) for groups in LAYOUTS[layout]]
        self.blocks = nn.ModuleList([*(Residual(dim, b, post, dropout) for b in blocks),
                                     Residual(dim, MLP(dim, mlp, dropout), post, dropout)])

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            x, cls = block(x, cls)
        return x, cls


class Embedding(nn.Module):
    """Token table (codes, then [MASK]) + factorised position tables + LayerNorm + dropout."""

    def __init__(self, vocab: int, dim: int, grid: tuple[int, int, int], dropout: float):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        std = 0.02 / 3 ** 0.5
        self.pos = nn.ParameterList([nn.Parameter(torch.randn(n, dim) * std) for n in grid])
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(dim) * std)
        self.norm, self.drop = nn.LayerNorm(dim), nn.Dropout(dropout)

    def position(self, axis: int, n: int) -> torch.Tensor:
        """Table `axis` (0: T, 1: H, 2: W) at length n, linearly interpolated when n differs from its own."""
        table = self.pos[axis]
        if len(table) == n:
            return table
        return F.interpolate(table.T[None], size=n, mode="linear", align_corners=False)[0].T

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, h, w = ids.shape[1:]
        pos = (self.position(0, t)[:, None, None] + self.position(1, h)[None, :, None]
               + self.position(2, w)[None, None, :])
        x = self.drop(self.norm(self.tokens(ids) + pos))
        cls = self.drop(self.norm(self.cls + self.cls_pos)).expand(len(ids), -1)
        return x, cls


class TokenTransformer(nn.Module):
    """(B, T, h, w) token ids -> (token states (B, T, h, w, D), [CLS] state (B, D))."""

    def __init__(self, vocab: int, grid: tuple[int, int, int], cfg: VimpacNetConfig):
        super().__init__()
        layers, dim, heads, head_dim, mlp = cfg.shape()
        self.dim, self.vocab = dim, vocab
        self.embed = Embedding(vocab, dim, grid, cfg.dropout)
        self.layers = nn.ModuleList([Layer(dim, heads, head_dim, mlp, cfg.layout, cfg.norm == "post", cfg.dropout)
                                     for _ in range(layers)])
        self.final_norm = nn.LayerNorm(dim) if cfg.norm == "pre" else nn.Identity()
        for m in self.modules():  # BERT's initialisation
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, cls = self.embed(ids)
        for layer in self.layers:
            x, cls = layer(x, cls)
        return self.final_norm(x), self.final_norm(cls)


class Vimpac(Encoder):
    """Pixels -> frozen per-frame tokenizer -> TokenTransformer -> [CLS] feature.

    The tokenizer is trained (or loaded) by `prepare`, before pre-training or scoring; its weights are
    part of this encoder's state, so a saved encoder brings its own. It never trains with the rest and
    stays in eval mode. Code ids are 0..K-1; id K is [MASK] (the data path repeats frames rather than
    padding short clips, so there is no PAD token).
    """

    feature_layer = "the transformer's last [CLS] state (the mean of its outputs over the 1-D lines)"
    # how the tokenizer is made; part of its cache key and of an untrained encoder's key. 2: initialised
    # from vq_seed (1 took the run's random state, so the first seed to train it decided it)
    state_version = 2

    def __init__(self, cfg: VimpacNetConfig, clip: ClipSpec):
        super().__init__()
        from harness.models import vq

        self.cfg, self.clip_spec = cfg, clip
        if cfg.dvae_path:
            self.tokenizer = vq.load_dalle(cfg.dvae_path)
        else:
            self.tokenizer = self._new_vqvae()
        self.codes = self.tokenizer.vocab_size
        d = self.tokenizer.downsample
        if clip.crop_size % d:
            raise ValueError(f"backbone.clip.crop_size {clip.crop_size} is not a multiple of the tokenizer's "
                             f"downsampling {d}")
        self.grid = (clip.frames, clip.crop_size // d, clip.crop_size // d)
        self.mask_id = self.codes
        self.net = TokenTransformer(self.codes + 1, self.grid, cfg)
        self.feature_dim = self.net.dim
        self.register_buffer("mean", torch.tensor(clip.mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(clip.std).view(1, 3, 1, 1, 1), persistent=False)
        self.tokenizer.eval()

    def _new_vqvae(self) -> nn.Module:
        from harness.models import vq

        c = self.cfg
        model = vq.FrameVQVAE(c.codebook, c.downsample, c.vq_width, c.vq_dim, c.vq_input)
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: its codebook statistics never move
        return self

    @torch.no_grad()
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised clips (B, C, T, H, W) -> code ids (B, T, h, w), each frame tokenised alone."""
        b, _, t = x.shape[:3]
        frames = (x.float() * self.std + self.mean).clamp(0, 1).transpose(1, 2).flatten(0, 1)
        with torch.autocast(x.device.type, enabled=False):
            ids = self.tokenizer.tokens(frames)
        return ids.unflatten(0, (b, t))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.tokens(x))[1]

    def layers(self) -> list[nn.Module]:
        return [self.tokenizer, self.net.embed, *self.net.layers, self.net.final_norm]

    # ------------------------------------------------------------------ the tokenizer stage

    def prepare(self, stage: Stage) -> dict:
        """Train this encoder's VQ-VAE on the pre-training videos, or load the one trained before with the
        same settings on the same data (`<cache>/tokenizers/<key>.pt`); a dVAE file needs nothing."""
        from harness.data.datasets import VideoSet
        from harness.models import vq

        log = stage.log
        if self.cfg.dvae_path:
            return {"tokenizer": "dalle", "path": self.cfg.dvae_path}
        root, entries = stage.videos()  # prepares the data
        settings = {k: v for k, v in asdict(self.cfg).items() if k in TOKENIZER_FIELDS}
        if settings["vq_input"] == "rgb":  # named only when set, so earlier tokenizers keep their key
            del settings["vq_input"]
        key = vq.tokenizer_key({**settings, "made": self.state_version}, stage.identity(), self.clip_spec.crop_size)
        path = stage.cache_root / "tokenizers" / f"vqvae-{key}.pt"
        report_path = path.with_suffix(".json")
        report = read_verified(report_path, lambda p: json.loads(p.read_text()), "cached tokenizer report", log)
        state = None if report is None else read_verified(
            path, lambda p: torch.load(p, map_location="cpu", weights_only=True), "cached VQ-VAE tokenizer", log)
        if state is not None:
            self.tokenizer.load_state_dict(state)
            self.tokenizer.eval()
            log(f"reusing the VQ-VAE tokenizer {path}")
            return report
        videos = VideoSet(root, entries, cache_frames=False, fps=stage.fps)
        log(f"training the VQ-VAE tokenizer ({self.cfg.codebook} codes, ÷{self.cfg.downsample}, {self.cfg.vq_input}) on "
            f"{self.cfg.vq_frames} frames of {stage.dataset} -> {path}")
        frames = vq.sample_frames(videos, self.cfg.vq_frames, self.clip_spec.crop_size, self.cfg.vq_seed)
        # the tokenizer depends on its settings and data only: initialised from vq_seed, never the run's state
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(self.cfg.vq_seed)
            self.tokenizer = self._new_vqvae()  # trained on the CPU, as the frames are
            for p in self.tokenizer.parameters():
                p.requires_grad_(True)
            report = vq.train_vqvae(self.tokenizer, self.tokenizer.prepare(frames.float() / 255), self.cfg.vq_steps,
                                    self.cfg.vq_batch, self.cfg.vq_lr, self.cfg.vq_seed, log)
            for p in self.tokenizer.parameters():
                p.requires_grad_(False)
        self.tokenizer.to(self.mean.device).eval()
        report = {"tokenizer": "vqvae", "key": key, **report}
        log(f"tokenizer: reconstruction MSE {report['mse']:.4f} (a constant image: {report['constant_mse']:.4f}), "
            f"{report['codes_used']}/{report['codebook']} codes used, {report['seconds']:.0f} s")
        atomic_save(self.tokenizer.state_dict(), path)
        atomic_json(report_path, report, digest=True)
        return report
