"""The training loop: schedule, LARS, atomic checkpoints, exact resume, the non-finite guard."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from harness.config import load_config
from harness.engine import LARS, NonFiniteLossError, atomic_save, lr_at, param_groups, train


def test_lr_schedule_warmup_then_cosine():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_lars_scales_weights_not_biases():
    w = nn.Parameter(torch.full((2, 2), 3.0))  # |w| = 6
    b = nn.Parameter(torch.zeros(2))
    w.grad, b.grad = torch.full((2, 2), 0.5), torch.full((2,), 0.5)  # |g_w| = 1
    opt = LARS([{"params": [w], "lars": True, "weight_decay": 0.0},
                {"params": [b], "lars": False, "weight_decay": 0.0}], lr=1.0, momentum=0.0, trust=0.001)
    opt.step()
    assert torch.allclose(w, torch.full((2, 2), 3.0 - 0.001 * 6 / 1 * 0.5))
    assert torch.allclose(b, torch.full((2,), -0.5))


def test_param_groups_exclude_bias_and_norm_from_decay():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay, plain = param_groups([m], 0.1)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(plain["params"]) == 3 and plain["weight_decay"] == 0.0


def test_lr_scale_gives_a_module_its_own_groups():
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    groups = param_groups([a, b], 0.1, [1.0, 10.0])
    assert [(g["lr_scale"], len(g["params"])) for g in groups] == [(1.0, 1), (1.0, 1), (10.0, 1), (10.0, 1)]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.1, 0.0]


def test_engine_applies_the_lr_scale(tmp_path):
    cfg = load_config("ci").pretrain
    train(Toy(), _batches(0, 5), 5, 1, cfg, torch.device("cpu"), tmp_path / "c.pt", False, progress=False)
    groups = torch.load(tmp_path / "c.pt", weights_only=False)["optimizer"]["param_groups"]
    warmup = int(round(cfg.warmup_epochs * max(5 // cfg.epochs, 1)))
    assert all(math.isclose(g["lr"], 3.0 * lr_at(4, 5, warmup, cfg.lr)) for g in groups)


def test_rho_byol_scales_only_the_predictor():
    from harness import catalog
    from harness.backbones import build_encoder
    from harness.engine import build_optimizer

    cfg = load_config("ci", ["method.pred_lr_scale=10"])
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    m = catalog.METHODS.get("rho_byol")(enc, cfg.method_cfg)
    mods = m.trainable_modules()
    opt = build_optimizer(mods, cfg.pretrain, [m.lr_scale(x) for x in mods])
    pred = {id(p) for p in m.predictor.parameters()}
    for g in opt.param_groups:
        assert g["lr_scale"] == (10.0 if all(id(p) in pred for p in g["params"]) else 1.0)
    assert sum(len(g["params"]) for g in opt.param_groups if g["lr_scale"] == 10.0) == len(pred)


def test_atomic_save_leaves_no_partial_file(tmp_path):
    path = tmp_path / "ck.pt"
    atomic_save({"a": torch.ones(3)}, path)
    atomic_save({"a": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path)["a"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


class Toy(nn.Module):
    """A method-shaped toy: regress a fixed target; `poison_at` injects a NaN at one step."""

    needs_pretraining = True

    def __init__(self, poison_at: int = -1):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.poison_at, self.calls = poison_at, 0

    def trainable_modules(self):
        return [self]

    def lr_scale(self, module):
        return 3.0

    def losses(self, batch):
        self.calls += 1
        loss = (self.lin(batch["clips"]).squeeze(-1) - batch["clips"].sum(-1)).pow(2).mean()
        if self.calls - 1 == self.poison_at:
            loss = loss * float("nan")
        return {"loss": loss}

    def after_step(self, progress):
        pass


def _batches(seed: int, total: int):
    g = torch.Generator().manual_seed(seed)
    data = [torch.randn(8, 4, generator=g) for _ in range(total)]
    return lambda start: ({"clips": data[i].clone(), "bad": []} for i in range(start, total))


def test_resume_reaches_the_same_weights(tmp_path):
    cfg = load_config("ci", ["pretrain.checkpoint_every=3", "pretrain.optimizer='sgd'", "pretrain.lr=0.05"]).pretrain
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    ref = Toy()
    train(ref, _batches(1, 10), 10, 1, cfg, cpu, tmp_path / "ref.pt", False, progress=False)
    torch.manual_seed(0)
    killed = Toy()
    loader = _batches(1, 10)

    def dying(start):  # the process "dies" after step 7; the last checkpoint is at step 6
        for i, b in enumerate(loader(start)):
            if i == 7:
                raise KeyboardInterrupt
            yield b

    with pytest.raises(KeyboardInterrupt):
        train(killed, dying, 10, 1, cfg, cpu, tmp_path / "k.pt", False, progress=False)
    assert torch.load(tmp_path / "k.pt", weights_only=False)["step"] == 6
    torch.manual_seed(123)  # a fresh process: different init, restored from the checkpoint
    resumed = Toy()
    stats = train(resumed, loader, 10, 1, cfg, cpu, tmp_path / "k.pt", True, progress=False)
    assert stats.resumed_from_step == 6 and stats.steps == 10
    for a, b in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    cfg = load_config("ci", ["pretrain.checkpoint_every=2"]).pretrain
    ck = tmp_path / "ck.pt"
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 5 .*Last good checkpoint: .*ck.pt"):
        train(Toy(poison_at=5), _batches(0, 10), 10, 1, cfg, torch.device("cpu"), ck, False, progress=False)
    state = torch.load(ck, weights_only=False)
    assert state["step"] == 4 and all(math.isfinite(v.float().sum()) for v in state["method"].values())
