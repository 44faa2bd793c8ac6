"""Can a video tower learn the digit from the embedded pre-training videos? A quick side experiment.

Collects the clips (16 px, 8 frames) and digit labels that `supervised` trains on, from 4 epochs of its own
data pipeline (4,096 clips of the 1,024 videos), keeps the clips of videos 0-819 for training and those of
videos 820-1023 as held out, then trains each named tower with a linear head (AdamW, warm-up, clip 5) and
prints its training loss and accuracy and its held-out accuracy. A tower that cannot even fit its training
clips here will not learn under any method. Towers:

    small3d                          the CNN of the ρ rows
    vatt[,stem=S][,patch=TxHxW][,layers=N][,pool=mean]   VATT's video transformer (stem: tubelet, conv, hybrid)
    clipbert[,pool=mean][,init=STD][,maxpool=no]  ClipBERT's CNN + BERT read with an empty caption (its
                                     `features`); pool=mean: the mean visual token, BERT left out; init: BERT's
                                     weights drawn with this standard deviation (its own: 0.02); maxpool=no:
                                     the ResNet stem without its max-pool (twice the grid's side)

    python tools/tower_probe.py [--steps 500] [--lr 1e-3] small3d vatt vatt,stem=hybrid,patch=2x8x8
    python tools/tower_probe.py --backbone clipbert small3d clipbert clipbert,pool=mean

`--backbone` names whose clips are collected (their frames, size and normalisation): vatt (16 px, 8 frames) or
clipbert (32 px, 2 frames).
"""
from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_config  # noqa: E402
from harness.models.configs import VattNetConfig  # noqa: E402
from harness.models.encoder import ClipSpec  # noqa: E402
from tools.capture import capture  # noqa: E402


def collect_clips(backbone: str) -> list[dict]:
    """The batches `supervised` on `backbone` trains on in 4 epochs at the embedded settings (its pipeline:
    that backbone's clips and normalisation). Every tower below trains on these."""
    import methods.supervised as sup

    batches, _ = capture(sup.Supervised, "supervised",
                         [f"backbone.name={backbone}", "pretrain.epochs=4", "pretrain.warmup_epochs=0"])
    return batches


def tower(spec: str, clip: ClipSpec) -> nn.Module:
    from harness.models.backbones import Small3D
    from harness.models.clipbert import ClipBertEncoder
    from harness.models.configs import ClipBertNetConfig, Small3DConfig
    from harness.models.vatt import VattVideo

    torch.manual_seed(0)
    name, *opts = spec.split(",")
    if name == "small3d":
        return Small3D(Small3DConfig(), clip)
    kw = dict(o.split("=") for o in opts)
    if name == "clipbert":
        enc = ClipBertEncoder(ClipBertNetConfig(), clip)
        if kw.get("maxpool") == "no":
            enc.cnn[3] = nn.Identity()
        if "init" in kw:
            enc.bert.config.initializer_range = float(kw["init"])
            enc.bert.apply(enc.bert._init_weights)
            for table in (enc.rows, enc.cols):
                nn.init.normal_(table.weight, std=float(kw["init"]))
        if kw.get("pool") == "mean":
            enc.features = lambda x: enc.visual(x).mean(1)
        return enc
    patch = tuple(int(v) for v in kw.get("patch", "2x4x4").split("x"))
    enc = VattVideo(VattNetConfig(stem=kw.get("stem", "tubelet"), patch=patch), clip)
    if "layers" in kw:
        enc.stack.blocks = enc.stack.blocks[:int(kw["layers"])]
    if kw.get("pool") == "mean":  # the tokens' mean in place of the [AGG] output
        def features(self, x, drop=0.0):
            t = self.tokens(x)
            for b in self.stack.blocks:
                t = b(t)
            return self.stack.norm(t.mean(1))
        enc.features = types.MethodType(features, enc)
    return enc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("towers", nargs="+")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--backbone", choices=("vatt", "clipbert"), default="vatt")
    args = ap.parse_args()
    batches = collect_clips(args.backbone)
    x = torch.cat([b["clips"][:, 0] for b in batches])
    y, idx = torch.cat([b["label"] for b in batches]), torch.cat([b["index"] for b in batches])
    train, held = idx < 820, idx >= 820
    c = load_config("embedded", [f"backbone.name={args.backbone}"], method="supervised").backbone.clip
    clip = ClipSpec(c.frames, c.stride, c.crop_size, c.test_short_side, tuple(c.mean), tuple(c.std))
    print(f"{int(train.sum())} training clips, {int(held.sum())} held out (other videos)")
    print("| tower | steps | training loss | training acc. | held-out acc. | s |\n|---|---|---|---|---|---|")
    for spec in args.towers:
        enc = tower(spec, clip)
        head = nn.Linear(enc.feature_dim, 10)
        params = [*enc.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
        g, running, t0 = torch.Generator().manual_seed(0), 0.0, time.perf_counter()
        xt, yt = x[train], y[train]
        enc.train()
        for s in range(args.steps):
            for group in opt.param_groups:
                group["lr"] = args.lr * min(1.0, (s + 1) / (0.06 * args.steps))
            i = torch.randint(0, len(xt), (32,), generator=g)
            loss = F.cross_entropy(head(enc(xt[i])), yt[i])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            running = 0.98 * running + 0.02 * loss.item() if s else loss.item()
        enc.eval()
        with torch.no_grad():
            acc_train = (head(enc(xt[:800])).argmax(1) == yt[:800]).float().mean().item()
            acc_held = (head(enc(x[held])).argmax(1) == y[held]).float().mean().item()
        print(f"| {spec} | {args.steps} | {running:.2f} | {100 * acc_train:.0f} | {100 * acc_held:.0f} | "
              f"{time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
