"""Can ClipBERT's image-text matching (ITM) leave chance? A quick side experiment.

Collects the batches `clipbert` pre-trains on at the embedded settings (6 epochs of its own pipeline: 192
batches of 32 videos x 2 clips with their captions) and the method as it stands before its first step, then
trains copies of it on those batches under named variants and prints ITM's running loss every 50 steps
(chance: ln 2 = 0.693). A variant is options joined by commas:

    base               the method as configured (MLM + ITM)
    itm-only           MLM's weight set to 0
    oracle             the visual tokens replaced by a learned embedding of the video's digit (read from
                       its caption): a perfect visual signal, so only BERT and the ITM head must learn
    pool               every visual token replaced by the mean of the clip's tokens: the frames' evidence
                       gathered in one place, as the oracle's is (the CNN is still trained)
    center             every channel of the visual tokens standardised over the batch's clips and positions
                       (a BatchNorm without its running statistics): what differs between clips, not what
                       they share, reaches BERT
    init=STD           BERT's weights (and the row/column tables) drawn again with this standard deviation
                       (BERT's own: 0.02)
    lr=X               the peak learning rate (default 5e-4, the embedded setting)
    nodrop             dropout off

    python tools/itm_probe.py --steps 600 base oracle,itm-only oracle,itm-only,init=0.088
    python tools/itm_probe.py --set "pretrain.init={cnn=\"run:supervised;backbone.name='clipbert'\"}" base
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import methods.clipbert as cb  # noqa: E402
from harness.config import load_config  # noqa: E402
from harness.data.moving_digits import dataset_dir  # noqa: E402
from tools.capture import capture  # noqa: E402

WORDS = "zero one two three four five six seven eight nine".split()
TOKEN_MAPS = {  # (B, n, D) visual tokens -> the same shape
    "pool": lambda t: t.mean(1, keepdim=True).expand_as(t),
    "center": lambda t: (t - t.mean((0, 1), keepdim=True)) / (t.std((0, 1), keepdim=True) + 1e-5),
}


def collect(extra: list[str], epochs: int = 6) -> tuple[list[dict], cb.ClipBert, Path]:
    """The batches of `epochs` epochs of `clipbert` pre-training, the method before its first step and the
    dataset's folder."""
    batches, method = capture(cb.ClipBert, "clipbert",
                              [f"pretrain.epochs={epochs}", "pretrain.warmup_epochs=0", *extra])
    cfg = load_config("embedded", method="clipbert")
    return batches, method, dataset_dir(cfg.datasets["moving-digits"], cfg.cache_root())


def digits_of_pretraining_videos(folder: Path) -> torch.Tensor:
    """Each pre-training video's digit, read from its caption (the labels of the pre-training split are not
    stored: the captions name the digit in every sentence, as a numeral or a word)."""
    import json

    out = []
    for v in json.loads((folder / "manifest.json").read_text())["videos"]:
        if v["split"] == "pretrain":
            w = next(w for w in re.findall(r"[a-z0-9]+", v["caption"]) if w.isdigit() or w in WORDS)
            out.append(int(w) if w.isdigit() else WORDS.index(w))
    return torch.tensor(out)


def variant(m0: cb.ClipBert, spec: str, digits: torch.Tensor) -> tuple[cb.ClipBert, float]:
    m, lr = copy.deepcopy(m0), 5e-4
    torch.manual_seed(0)
    for opt in spec.split(","):
        key, _, val = opt.partition("=")
        if key == "itm-only":
            m.cfg.mlm_weight = 0.0
        elif key == "lr":
            lr = float(val)
        elif key == "nodrop":
            for mod in m.modules():
                if isinstance(mod, nn.Dropout):
                    mod.p = 0.0
        elif key == "init":
            bert = m.encoder.bert
            bert.config.initializer_range = float(val)
            bert.apply(bert._init_weights)
            for table in (m.encoder.rows, m.encoder.cols):
                nn.init.normal_(table.weight, std=float(val))
        elif key == "oracle":
            table = nn.Embedding(10, m.encoder.width)
            m.add_module("oracle", table)
            n_tokens = m.encoder.grid[0] * m.encoder.grid[1]

            def visual(x, m=m, table=table, n_tokens=n_tokens):
                d = digits[m.current_index].repeat_interleave(len(x) // len(m.current_index))
                return table(d)[:, None].expand(-1, n_tokens, -1)
            m.encoder.visual = visual
        elif key in TOKEN_MAPS:  # applied to the visual tokens as the options before it left them
            m.encoder.visual = lambda x, visual=m.encoder.visual, f=TOKEN_MAPS[key]: f(visual(x))
        elif key != "base":
            raise SystemExit(f"unknown option {opt!r} in {spec!r}")
    return m, lr


@torch.no_grad()
def visual_share(m: cb.ClipBert, batch: dict) -> float:
    """How much the last [CLS] state moves when every caption is read with another video's visual tokens,
    relative to its norm, before training: how much of the visual side reaches the feature ITM reads."""
    m.eval()
    m.current_index = batch["index"]
    ids, mask = batch["text_ids"][:, 0, 0], batch["text_mask"][:, 0, 0]
    vis = m.encoder.visual(batch["clips"][:, 0])
    own = m.encoder.joint(vis, ids, mask)[0][:, 0]
    other = m.encoder.joint(vis.roll(1, 0), ids, mask)[0][:, 0]
    return ((own - other).norm(dim=1) / own.norm(dim=1)).mean().item()


@torch.no_grad()
def digit_readable(m: cb.ClipBert, batches: list[dict], digits: torch.Tensor) -> float:
    """How well the clip's digit can be read from its mean visual token before training (%): nearest class
    mean, the means from the clips of even-numbered videos, scored on the odd ones (chance 10). Whether the
    evidence ITM needs is in what BERT receives at all."""
    m.eval()
    feats, labels, odd = [], [], []
    for batch in batches[:32]:
        m.current_index = batch["index"]
        feats.append(m.encoder.visual(batch["clips"][:, 0]).mean(1))
        labels.append(digits[batch["index"]])
        odd.append(batch["index"] % 2 == 1)
    f, y, odd = torch.cat(feats), torch.cat(labels), torch.cat(odd)
    f = (f - f.mean(0)) / (f.std(0) + 1e-5)
    means = torch.stack([f[~odd & (y == d)].mean(0) for d in range(10)])
    guess = torch.cdist(f[odd], means).argmin(1)
    return 100 * (guess == y[odd]).float().mean().item()


def train(m: cb.ClipBert, batches: list[dict], steps: int, lr: float) -> tuple[list[float], float]:
    """AdamW (weight decay 1e-3), 10% linear warm-up then linear decay, gradient clip 5: the embedded recipe."""
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-3)
    m.train()
    curve, running, t0, warm = [], None, time.perf_counter(), max(1, steps // 10)
    for s in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min((s + 1) / warm, (steps - s) / (steps - warm) if s >= warm else 1.0)
        batch = batches[s % len(batches)]
        m.current_index = batch["index"]
        out = m.losses(batch)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        v = out["itm_loss"].item()
        running = v if running is None else 0.95 * running + 0.05 * v
        if (s + 1) % 50 == 0:
            curve.append(running)
    return curve, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="a setting of the collecting run")
    args = ap.parse_args()
    batches, m0, folder = collect(args.sets)
    digits = digits_of_pretraining_videos(folder)
    print(f"{len(batches)} batches; per variant, before training: how far the [CLS] state moves with another "
          f"video's visual tokens (of its norm) and how well the digit reads from the mean visual token (chance "
          f"10%); then ITM's running loss every 50 steps (chance 0.693)")
    for spec in args.variants:
        m, lr = variant(m0, spec, digits)
        share, readable = visual_share(m, batches[0]), digit_readable(m, batches, digits)
        curve, seconds = train(m, batches, args.steps, lr)
        losses = " ".join(f"{v:.3f}" for v in curve)
        print(f"{spec}: moves {100 * share:.1f}%, digit readable {readable:.0f}%; {losses} ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
