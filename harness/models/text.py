"""Text for the methods that learn from captions (VATT, ClipBERT): a tokenizer from the `tokenizers`
library, trained on the pre-training captions and cached, or loaded from a file the user gives.

Hand-written tokenisation would be one more thing to get wrong; the `tokenizers` library trains a
word-level or WordPiece vocabulary in seconds and reads the `tokenizer.json` / `vocab.txt` files that
pretrained text models ship with. Every tokenizer here has BERT's five special tokens; their ids
are the tokenizer's own (a trained one puts them first, BERT's `vocab.txt` at 0 and 100-103).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import torch

from harness.errors import ConfigError
from harness.models.stage import Stage
from harness.storage import atomic_write, content_key, read_verified

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class TextConfig:
    """How captions become token ids.

    `kind`: a `word` vocabulary (VATT's word-level tokenizer) or `wordpiece` (BERT's, ClipBERT), trained
    on the pre-training captions; `path` instead loads a `tokenizer.json` or a BERT `vocab.txt` (the
    `paper` profile: the pretrained model's own). `vocab_size` is the most ids the text tower embeds;
    `max_len` the tokens per caption, [CLS] and [SEP] included."""

    kind: Literal["word", "wordpiece"] = "word"
    vocab_size: int = 1024
    max_len: int = 16
    path: str = ""
    lowercase: bool = True


class TextTokenizer:
    """Captions -> (ids, mask) tensors: [CLS] words [SEP] [PAD]..., cut or padded to `max_len`."""

    def __init__(self, tokenizer, max_len: int):
        from tokenizers.processors import TemplateProcessing

        self.tok = tokenizer
        self.max_len = max_len
        ids = {name: tokenizer.token_to_id(name) for name in SPECIALS}
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise ConfigError(f"text tokenizer: it has no {', '.join(missing)} token; the text towers need "
                              f"{', '.join(SPECIALS)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids.values()
        tokenizer.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
            ("[CLS]", self.cls_id), ("[SEP]", self.sep_id)])
        tokenizer.enable_truncation(max_len)
        tokenizer.enable_padding(pad_id=self.pad_id, pad_token="[PAD]", length=max_len)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, max_len) token ids and the (N, max_len) bool mask of real tokens."""
        enc = self.tok.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long).view(len(enc), self.max_len)
        return ids, ids != self.pad_id

    def words(self, ids: torch.Tensor) -> list[str]:
        return [self.tok.decode(row.tolist()) for row in ids]


def _new(cfg: TextConfig):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if cfg.kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        trainer = trainers.WordLevelTrainer(vocab_size=cfg.vocab_size, special_tokens=list(SPECIALS))
    elif cfg.kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, special_tokens=list(SPECIALS))
    else:
        raise ConfigError(f"text.kind must be 'word' or 'wordpiece', got {cfg.kind!r}")
    steps = [normalizers.NFD(), normalizers.StripAccents()]
    tok.normalizer = normalizers.Sequence(([normalizers.Lowercase()] if cfg.lowercase else []) + steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok, trainer


def load_tokenizer_file(path: str | Path, cfg: TextConfig):
    """A `tokenizer.json` (the `tokenizers` format) or a BERT `vocab.txt` (or a folder holding one)."""
    from tokenizers import Tokenizer

    p = Path(path).expanduser()
    if p.is_dir():
        found = [q for q in (p / "tokenizer.json", p / "vocab.txt") if q.exists()]
        if not found:
            raise ConfigError(f"text.path: {p} holds neither tokenizer.json nor vocab.txt")
        p = found[0]
    if not p.exists():
        raise ConfigError(f"text.path: {p} does not exist")
    if p.suffix == ".json":
        return Tokenizer.from_file(str(p))
    from tokenizers import normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece.from_file(str(p), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=cfg.lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def tokenizer_for(cfg: TextConfig, captions: Iterable[str], data: dict, cache_root: Path,
                  log=print) -> tuple[TextTokenizer, dict]:
    """The tokenizer `cfg` names: loaded from `cfg.path`, or trained on `captions` once per (settings,
    data) and cached in `<cache>/text-tokenizers/`. Returns it and a report for the run record."""
    from tokenizers import Tokenizer

    if cfg.path:
        tok = load_tokenizer_file(cfg.path, cfg)
        report = {"tokenizer": "file", "path": str(cfg.path), "vocab": tok.get_vocab_size()}
    else:
        key = content_key({"kind": cfg.kind, "vocab": cfg.vocab_size, "lower": cfg.lowercase, "data": data})
        path = Path(cache_root) / "text-tokenizers" / f"{cfg.kind}-{key}.json"
        tok = read_verified(path, lambda p: Tokenizer.from_file(str(p)), "cached text tokenizer", log)
        if tok is not None:
            log(f"reusing the text tokenizer {path}")
        else:
            tok, trainer = _new(cfg)
            tok.train_from_iterator(list(captions), trainer=trainer)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: f.write(tok.to_str()), digest=True)  # whole or absent
            log(f"trained a {cfg.kind} text tokenizer ({tok.get_vocab_size()} tokens) -> {path}")
        report = {"tokenizer": cfg.kind, "key": key, "vocab": tok.get_vocab_size()}
    if tok.get_vocab_size() > cfg.vocab_size:
        raise ConfigError(f"text tokenizer has {tok.get_vocab_size()} tokens, more than text.vocab_size="
                          f"{cfg.vocab_size} rows the text tower embeds; raise text.vocab_size")
    return TextTokenizer(tok, cfg.max_len), report


T5_SIZES = {  # layers, width, heads, head width, MLP width: a CPU size, T5-small (VATT's text tower), T5-base
    "tiny": (2, 128, 4, 32, 512), "small": (6, 512, 8, 64, 2048), "base": (12, 768, 12, 64, 3072)}


def stage_tokenizer(stage: Stage, cfg: TextConfig, who: str) -> tuple[TextTokenizer, dict]:
    """A method's text-tokenizer stage (VATT, ClipBERT): `tokenizer_for` on the pre-training captions the
    runner's `stage` lists, cached under the identity of that data."""
    return tokenizer_for(cfg, stage.captions(who), stage.identity(), stage.cache_root, stage.log)


class T5Tower(torch.nn.Module):
    """VATT's text transformer: a T5 encoder (relative position bias, no absolute positions), built from
    the `transformers` library's model class with random weights, or from a local pretrained folder;
    the feature is its output at [CLS], the token every caption starts with (VATT's aggregate token)."""

    def __init__(self, size: str, vocab: int, dropout: float = 0.1, pretrained: str = ""):
        super().__init__()
        from transformers import T5Config, T5EncoderModel

        if pretrained:
            self.model = T5EncoderModel.from_pretrained(pretrained, local_files_only=True)
        else:
            layers, dim, heads, head_dim, mlp = T5_SIZES[size]
            self.model = T5EncoderModel(T5Config(vocab_size=vocab, d_model=dim, d_kv=head_dim, d_ff=mlp,
                                                 num_layers=layers, num_heads=heads, dropout_rate=dropout))
        self.feature_dim = self.model.config.d_model

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state[:, 0]


class TextEncoder(torch.nn.Module):
    """The "text" export: captions -> features, through a tokenizer and a text tower."""

    def __init__(self, tokenizer: TextTokenizer, tower: torch.nn.Module):
        super().__init__()
        self.tokenizer, self.tower = tokenizer, tower
        self.feature_dim = tower.feature_dim

    def forward(self, texts: list[str]) -> torch.Tensor:
        if self.tokenizer is None:
            raise RuntimeError("the text tower has no tokenizer yet: the method's prepare() builds it")
        ids, mask = self.tokenizer.encode(texts)
        device = next(self.tower.parameters()).device
        return self.tower.features(ids.to(device), mask.to(device))
