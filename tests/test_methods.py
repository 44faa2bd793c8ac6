"""Method maths against hand-computed values, and each method's contract on the ci profile."""
from __future__ import annotations

import math

import pytest
import torch

from harness import catalog
from harness.backbones import build_encoder
from harness.config import load_config
from methods.losses import byol_pair_loss, cosine_momentum, ema_update, rho_byol_loss


def test_byol_loss_hand_computed():
    p = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])]
    z = [torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 1.0]])]
    # pairs (p0, z1): cos = 1/sqrt(2) -> 2 - sqrt(2);  (p1, z0): cos = 1 -> 0;  mean over 2 ordered pairs
    assert rho_byol_loss(p, z).item() == pytest.approx((2 - math.sqrt(2)) / 2, abs=1e-6)
    # the same-clip pairs (p0, z0) and (p1, z1) never enter the loss
    assert byol_pair_loss(p[0], z[0]).item() == pytest.approx(2.0)


def test_rho_byol_loss_averages_all_ordered_pairs():
    torch.manual_seed(0)
    p = [torch.randn(4, 8) for _ in range(3)]
    z = [torch.randn(4, 8) for _ in range(3)]
    expect = sum(2 - 2 * torch.nn.functional.cosine_similarity(p[i], z[j]).mean()
                 for i in range(3) for j in range(3) if i != j) / 6
    assert rho_byol_loss(p, z).item() == pytest.approx(expect.item(), abs=1e-6)
    with pytest.raises(ValueError):
        rho_byol_loss(p[:1], z[:1])


def test_no_gradient_flows_into_targets():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    rho_byol_loss([p, p * 2], [z, z * 3]).backward()
    assert p.grad is not None and z.grad is None


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.996, 0.0) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 0.5) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 1.0) == pytest.approx(1.0)


def test_ema_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update(a, b, 0.9)
    assert torch.allclose(a.weight, 0.9 * before + 0.1 * b.weight)


@pytest.mark.parametrize("name", catalog.METHODS.names())
def test_method_contract(name):
    """Every method builds from the ci profile, and if it pre-trains, one step lowers nothing to NaN
    and changes the encoder (solo-learn's per-method smoke test)."""
    cfg = load_config("ci", method=name)
    torch.manual_seed(0)
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(name)(enc, cfg.method_cfg)
    assert method.encoder is enc
    if not method.needs_pretraining:
        return
    spec = method.sample_spec()
    clips = torch.randn(4, max(spec.clips, 2), 3, 8, 32, 32)
    before = [p.detach().clone() for p in enc.parameters()]
    opt = torch.optim.SGD([p for m in method.trainable_modules() for p in m.parameters()], lr=0.1)
    out = method.losses({"clips": clips})
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    opt.step()
    method.after_step(0.5)
    assert any(not torch.equal(a, b) for a, b in zip(before, enc.parameters()))


def test_rho_byol_target_follows_online_by_ema():
    cfg = load_config("ci")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    m = catalog.METHODS.get("rho_byol")(enc, cfg.method_cfg)
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    t0 = [p.clone() for p in m.target_encoder.parameters()]
    m.after_step(0.0)
    k = cfg.method_cfg.momentum
    for t, before, o in zip(m.target_encoder.parameters(), t0, m.encoder.parameters()):
        assert torch.allclose(t, k * before + (1 - k) * o, atol=1e-6)
