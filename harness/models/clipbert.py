"""ClipBERT's encoder (Lei et al. 2021): a 2D CNN on the frames of a short clip, mean-pooled over the clip
into a grid of visual tokens, read together with the caption's tokens by one BERT.

The CNN is a torchvision ResNet and the transformer the `transformers` library's `BertModel` (random
weights, or a local pretrained folder): maintained model classes, not re-implementations. The visual
tokens enter BERT as input embeddings with their own row and column embeddings and token type 1; BERT
adds a position embedding to every input, so the visual tokens all take position 0's (one shared
vector; ClipBERT's code adds none to them).
As a video encoder for the protocols, the caption is empty ([CLS] [SEP]) and the feature is BERT's
pooled [CLS] output: what ClipBERT's task heads read.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from harness.models.configs import CLIPBERT_SIZES, ClipBertNetConfig
from harness.models.encoder import ClipSpec, Encoder


def _resnet(name: str, stages: int, weights: str) -> tuple[nn.Module, int]:
    import torchvision

    net = getattr(torchvision.models, name)()
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("state_dict", state), strict=False)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4][:stages]
    width = [m for m in layers[-1].modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *layers), width


class ClipBertEncoder(Encoder):
    """Frames -> ResNet grid -> conv 3x3 -> max-pool -> ReLU -> mean over the clip's frames -> + row, column
    and type embeddings -> BERT with a caption (or none) -> pooled [CLS]."""

    feature_layer = "BERT's pooled [CLS] output over the visual tokens and an empty caption"

    def __init__(self, cfg: ClipBertNetConfig, clip: ClipSpec):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.cfg, self.clip_spec = cfg, clip
        if cfg.bert_path:
            self.bert = BertModel.from_pretrained(cfg.bert_path, local_files_only=True)
        else:
            layers, dim, heads, mlp = CLIPBERT_SIZES[cfg.size]
            self.bert = BertModel(BertConfig(vocab_size=cfg.vocab_size, hidden_size=dim, num_hidden_layers=layers,
                                             num_attention_heads=heads, intermediate_size=mlp, type_vocab_size=2,
                                             hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout))
        dim = self.bert.config.hidden_size
        self.cnn, width = _resnet(cfg.cnn, cfg.cnn_stages, cfg.cnn_weights)
        self.to_dim = nn.Sequential(nn.Conv2d(width, dim, 3, padding=1), nn.MaxPool2d(cfg.pool, ceil_mode=True),
                                    nn.ReLU())
        with torch.no_grad():
            grid = self.to_dim(self.cnn(torch.zeros(1, 3, clip.crop_size, clip.crop_size))).shape[-2:]
        self.grid = tuple(grid)
        self.rows = nn.Embedding(max(64, grid[0]), dim)
        self.cols = nn.Embedding(max(64, grid[1]), dim)
        for table in (self.rows, self.cols):  # BERT's initialisation, as ClipBERT's own embeddings get
            nn.init.normal_(table.weight, std=self.bert.config.initializer_range)
        self.feature_dim = dim
        self.register_buffer("special", torch.tensor([2, 3]))  # the tokenizer's [CLS], [SEP] (set by the method)

    def visual(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, h*w, D) visual tokens: the clip's frames mean-pooled, positions added."""
        b, _, t = x.shape[:3]
        g = self.to_dim(self.cnn(x.transpose(1, 2).flatten(0, 1)))  # (B*T, D, h, w)
        g = g.unflatten(0, (b, t)).mean(1)  # (B, D, h, w)
        h, w = g.shape[-2:]
        pos = self.rows.weight[:h, None] + self.cols.weight[None, :w]
        return (g.permute(0, 2, 3, 1) + pos).flatten(1, 2)

    def joint(self, vis: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT over [caption tokens ; visual tokens]: (token states (B, L + n, D), pooled [CLS] (B, D))."""
        words = self.bert.get_input_embeddings()(ids)
        x = torch.cat([words, vis], dim=1)
        keep = torch.cat([mask.long(), mask.new_ones(vis.shape[:2]).long()], dim=1)
        n = vis.shape[1]
        types = torch.cat([torch.zeros_like(ids), ids.new_ones(len(ids), n)], 1)
        # words at positions 0..L-1; every visual token at position 0 (a shared bias, not an order: their
        # place is in the row and column embeddings), so caption padding never moves them
        positions = torch.cat([torch.arange(ids.shape[1], device=ids.device), ids.new_zeros(n)])[None].expand(len(ids), -1)
        out = self.bert(inputs_embeds=x, attention_mask=keep, token_type_ids=types, position_ids=positions)
        return out.last_hidden_state, out.pooler_output

    def empty_caption(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.special[None].expand(n, 2)
        return ids, torch.ones_like(ids, dtype=torch.bool)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.joint(self.visual(x), *self.empty_caption(len(x)))[1]

    def layers(self) -> list[nn.Module]:
        return [self.cnn, self.to_dim, self.bert.embeddings, *self.bert.encoder.layer, self.bert.pooler]
