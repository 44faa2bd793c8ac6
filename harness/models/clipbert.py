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

import re
from collections import OrderedDict

import torch
import torch.nn as nn

from harness.errors import ConfigError
from harness.models.configs import CLIPBERT_SIZES, ClipBertNetConfig
from harness.models.encoder import ClipSpec, Encoder
from harness.models.weights import load_exactly, read_state

# Detectron2's ResNet names (grid-feat R-50, the weights ClipBERT starts from) -> torchvision's
_D2_STEM = re.compile(r"^stem\.conv1\.(?:(weight)|norm\.(\w+))$")
_D2_BLOCK = re.compile(r"^(?:roi_heads\.)?res(\d)\.(\d+)\.(conv\d|shortcut)\.(?:(weight)|norm\.(\w+))$")
_D2_HEADS = ("roi_heads.", "proposal_generator.")  # detection heads (res5 of a C4 model is kept: see above)


def detectron2_to_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detectron2 ResNet keys (`backbone.bottom_up.res2.0.conv1.norm.weight`, a C4 model's res5 under
    `roi_heads.`) -> torchvision's (`layer1.0.bn1.weight`); detection heads dropped, unknown keys kept as they
    are, so the exact load names them."""
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("backbone.").removeprefix("bottom_up.")
        m = _D2_STEM.match(k)
        if m:
            out["conv1.weight" if m[1] else f"bn1.{m[2]}"] = v
            continue
        m = _D2_BLOCK.match(k)
        if m:
            stage, block, part, weight, bn = int(m[1]), m[2], m[3], m[4], m[5]
            where = f"layer{stage - 1}.{block}"
            if part == "shortcut":
                out[f"{where}.downsample.0.weight" if weight else f"{where}.downsample.1.{bn}"] = v
            else:
                out[f"{where}.{part}.weight" if weight else f"{where}.bn{part[-1]}.{bn}"] = v
            continue
        if not k.startswith(_D2_HEADS):
            out[k] = v
    return out


def _resnet(name: str, stages: int, weights: str) -> tuple[nn.Module, int, bool]:
    """The ResNet trunk (its first `stages` stages), its output width, and whether it reads BGR frames.

    `weights` is a torchvision state dict or a Detectron2 checkpoint (grid-feat's R-50, ClipBERT's start):
    mapped by name, loaded exactly (`load_exactly`). Detectron2's MSRA-style ResNets stride in the 1x1
    conv of a block and read BGR; the trunk is set up the same way for them."""
    import torchvision

    net = getattr(torchvision.models, name)()
    bgr = False
    if weights:
        state = read_state(weights, ("model", "state_dict"))
        if any(k.startswith(("backbone.", "stem.", "res2.")) for k in state):
            state, bgr = detectron2_to_torchvision(state), True
            for layer in (net.layer2, net.layer3, net.layer4):  # the stride moves to the first 1x1 conv
                first = layer[0]
                if hasattr(first, "conv3"):
                    first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)
        named = nn.Sequential(OrderedDict((k, getattr(net, k)) for k in ("conv1", "bn1", "layer1", "layer2", "layer3",
                                                                         "layer4")))
        load_exactly(named, {k: v for k, v in state.items() if not k.startswith("fc.")},  # the classifier is unused
                     str(weights), f"torchvision's {name} (backbones.clipbert.cnn_weights)")
    layers = [net.layer1, net.layer2, net.layer3, net.layer4][:stages]
    width = [m for m in layers[-1].modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *layers), width, bgr


def _pretrained_bert(path: str) -> nn.Module:
    """BERT from a local pretrained folder, refusing one whose weights do not all load: `from_pretrained` only
    warns about weights it leaves at random. Weights of heads the folder has beyond the encoder (`cls.`: the
    MLM and NSP heads of a BertForPreTraining checkpoint) are not part of it and may be left out."""
    from transformers import BertModel

    model, info = BertModel.from_pretrained(path, local_files_only=True, output_loading_info=True)
    missing = list(info.get("missing_keys", []))
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.startswith("cls.")]
    shapes = list(info.get("mismatched_keys", []))
    if missing or unexpected or shapes:
        raise ConfigError(f"backbones.clipbert.bert_path={path}: does not fit BERT: {len(missing)} weights missing "
                          f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
                          f"{len(shapes)} of another shape; refusing a partial load")
    return model


class ClipBertEncoder(Encoder):
    """Frames -> ResNet grid -> conv 3x3 -> max-pool -> ReLU -> mean over the clip's frames -> + row, column
    and type embeddings -> BERT with a caption (or none) -> pooled [CLS]."""

    feature_layer = "BERT's pooled [CLS] output over the visual tokens and an empty caption"

    def __init__(self, cfg: ClipBertNetConfig, clip: ClipSpec):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.cfg, self.clip_spec = cfg, clip
        if cfg.bert_path:
            self.bert = _pretrained_bert(cfg.bert_path)
        else:
            layers, dim, heads, mlp = CLIPBERT_SIZES[cfg.size]
            self.bert = BertModel(BertConfig(vocab_size=cfg.vocab_size, hidden_size=dim, num_hidden_layers=layers,
                                             num_attention_heads=heads, intermediate_size=mlp, type_vocab_size=2,
                                             hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout))
        dim = self.bert.config.hidden_size
        self.cnn, width, self.bgr = _resnet(cfg.cnn, cfg.cnn_stages, cfg.cnn_weights)
        self.to_dim = nn.Sequential(nn.Conv2d(width, dim, 3, padding=1), nn.MaxPool2d(cfg.pool, ceil_mode=True),
                                    nn.ReLU())
        with torch.no_grad():
            grid = self.to_dim(self.cnn(torch.zeros(1, 3, clip.crop_size, clip.crop_size))).shape[-2:]
        self.grid = tuple(grid)
        self.rows = nn.Embedding(max(64, grid[0]), dim)
        self.cols = nn.Embedding(max(64, grid[1]), dim)
        for table in (self.rows, self.cols):  # BERT's initialisation, as ClipBERT's own embeddings get
            nn.init.normal_(table.weight, std=self.bert.config.initializer_range)
        self.width = dim  # of the visual and text tokens
        self.feature_dim = dim if cfg.readout == "cls" else width
        self.register_buffer("special", torch.tensor([2, 3]))  # the tokenizer's [CLS], [SEP] (set by the method)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B*T, C, h, w): the ResNet's grid of every frame."""
        frames = x.transpose(1, 2).flatten(0, 1)
        if self.bgr:  # weights of a Detectron2 CNN: its channels in BGR order (the normalisation is per channel)
            frames = frames.flip(1)
        return self.cnn(frames)

    def visual(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, h*w, D) visual tokens: the clip's frames mean-pooled, positions added."""
        g = self.to_dim(self.trunk(x))  # (B*T, D, h, w)
        g = g.unflatten(0, x.shape[0:3:2]).mean(1)  # x.shape[0:3:2] is (B, T); g: (B, D, h, w)
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
        if self.cfg.readout == "cnn":  # the trunk as an image classifier reads it (the CNN's own pre-training)
            return self.trunk(x).mean((2, 3)).unflatten(0, x.shape[0:3:2]).mean(1)
        return self.joint(self.visual(x), *self.empty_caption(len(x)))[1]

    def layers(self) -> list[nn.Module]:
        return [self.cnn, self.to_dim, self.bert.embeddings, *self.bert.encoder.layer, self.bert.pooler]
