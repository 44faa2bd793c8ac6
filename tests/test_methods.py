"""Method maths against hand-computed values, and each method's contract on the ci profile."""
from __future__ import annotations

import math

import pytest
import torch

from harness import catalog
from harness.builders import build_encoder
from harness.config import load_config
from harness.engine import StepInfo
from methods.losses import byol_pair_loss, rho_byol_loss
from methods.momentum import cosine_momentum, ema_update


def _method(name: str, *overrides: str):
    cfg = load_config("ci", list(overrides), method=name)
    torch.manual_seed(0)
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(name)(enc, cfg.method_cfg)
    if getattr(method, "tokenizer", False) is None:  # a method that reads captions: what its prepare() builds
        import tempfile
        from pathlib import Path

        from harness.models.text import tokenizer_for

        method.tokenizer, _ = tokenizer_for(cfg.method_cfg.text, ["a red 3 moves up.", "a blue 5 shrinks."], {},
                                            Path(tempfile.mkdtemp()), log=lambda m: None)
    return method, cfg


def _batch(method, b: int = 4, seed: int = 0) -> dict:
    """A batch as the data path gives it for the method's sample spec (random clips, audio and captions)."""
    from harness.perf import synthetic_batch

    if method.sample_spec().label is not None:
        method.setup_labels(tuple("abcde"))
    return synthetic_batch(method, b, torch.device("cpu"), seed)


def _train_step(method, batch: dict, info: StepInfo, lr: float = 0.1, losses=None) -> dict:
    """One step the way the engine takes it: losses (`losses`, e.g. a compiled `method.losses`), backward,
    hook, update, hook."""
    opt = torch.optim.SGD([p for m in method.trainable_modules() for p in m.parameters()], lr=lr)
    method.before_step(info)
    out = (losses or method.losses)(batch)
    opt.zero_grad()
    out["loss"].backward()
    info.outputs = out
    method.before_optimizer_step(info)
    opt.step()
    method.after_step(info)
    return out


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
def test_method_contract(name, tmp_path):
    """Every method builds from the ci profile, and if it pre-trains, one engine-shaped step gives a
    finite loss and changes the encoder (solo-learn's per-method smoke test). `pretrained` reads a file."""
    extra = []
    if name == "pretrained":
        cfg = load_config("ci")
        torch.save(build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip).state_dict(), tmp_path / "e.pt")
        extra = [f"methods.pretrained.path='{tmp_path / 'e.pt'}'"]
    method, _ = _method(name, *extra)
    if not method.needs_pretraining:
        return
    before = [p.detach().clone() for p in method.encoder.parameters()]
    out = _train_step(method, _batch(method), StepInfo(5, 10, 5))
    assert torch.isfinite(out["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))


@pytest.mark.parametrize("name", ["rho_byol", "rho_moco"])
def test_momentum_encoders_get_no_gradient_and_follow_the_cosine_schedule(name):
    method, cfg = _method(name)
    targets = [method.target_encoder, method.target_projector] if name == "rho_byol" else \
        [method.key_encoder, method.key_projector]
    out = method.losses(_batch(method))
    out["loss"].backward()
    assert all(not p.requires_grad and p.grad is None for t in targets for p in t.parameters())
    base = cfg.method_cfg.momentum
    method.after_step(StepInfo(0, 50, 10, out))
    assert float(method.momentum) == pytest.approx(base)  # first step: m_base
    method.after_step(StepInfo(49, 50, 10, out))
    assert float(method.momentum) == pytest.approx(1.0)  # last step: annealed to 1


def test_moco_queue_is_fifo_and_survives_a_checkpoint(tmp_path):
    from harness.storage import atomic_save

    method, _ = _method("rho_moco", "method.queue_size=5", "method.proj_dim=3")
    rows = torch.arange(1, 8, dtype=torch.float32)[:, None].repeat(1, 3)  # rows 1..7
    method.enqueue(rows[:3])
    method.enqueue(rows[3:])
    # 1,2,3 went to slots 0-2; 4,5 to slots 3-4; 6,7 overwrote the oldest (1, 2) in slots 0-1
    assert method.queue[:, 0].tolist() == [6, 7, 3, 4, 5] and int(method.queue_ptr) == 2
    atomic_save({"method": method.state_dict()}, tmp_path / "ck.pt")
    fresh, _ = _method("rho_moco", "method.queue_size=5", "method.proj_dim=3")
    assert not torch.equal(fresh.queue, method.queue)
    fresh.load_state_dict(torch.load(tmp_path / "ck.pt")["method"])
    assert torch.equal(fresh.queue, method.queue) and int(fresh.queue_ptr) == 2


def test_moco_enqueues_the_keys_of_every_clip_after_each_step():
    method, _ = _method("rho_moco", "method.rho=3", "method.queue_size=64")
    out = _train_step(method, _batch(method, b=4), StepInfo(0, 10, 5))
    assert out["keys"].shape[0] == 3 * 4 and int(method.queue_ptr) == 12
    torch.testing.assert_close(method.queue[:12], out["keys"])


def test_moco_queue_warmup_holds_the_weights_while_the_queue_fills():
    method, _ = _method("rho_moco", "method.queue_size=16", "method.queue_warmup=true")
    batch = _batch(method, b=4)  # 16 / 4 videos: the first 4 steps take no update
    before = [p.detach().clone() for p in method.encoder.parameters()]
    _train_step(method, batch, StepInfo(3, 10, 5))
    assert all(torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))
    _train_step(method, batch, StepInfo(4, 10, 5))
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))


def test_swav_prototypes_stay_fixed_in_the_first_epoch_and_stay_unit_length():
    method, _ = _method("rho_swav")
    w0 = method.prototypes.weight.detach().clone()
    torch.testing.assert_close(w0.norm(dim=1), torch.ones(len(w0)))
    for step in (0, 1):  # epoch 0 of 2-step epochs
        _train_step(method, _batch(method, seed=step), StepInfo(step, 10, 2), lr=1.0)
        assert torch.equal(method.prototypes.weight, w0)
    _train_step(method, _batch(method, seed=2), StepInfo(2, 10, 2), lr=1.0)
    assert not torch.equal(method.prototypes.weight, w0)
    torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(len(w0)))


def test_swav_queue_joins_sinkhorn_once_full():
    method, _ = _method("rho_swav", "method.queue_size=8", "method.queue_start_epoch=1")
    for step in range(4):  # epochs of 2 steps: the queue fills in epoch 1 (4 videos a step)
        _train_step(method, _batch(method, seed=step), StepInfo(step, 10, 2))
    assert torch.all(method.queue.abs().sum(dim=-1) > 0)
    assert method.queue_on and all(s is not None for s in method._queue_scores())


def test_supervised_trains_a_classifier_on_the_pretraining_labels():
    method, cfg = _method("supervised", "method.rho=3")
    spec = method.sample_spec()
    assert spec.views == 3 and spec.label == "digit"
    out = _train_step(method, _batch(method), StepInfo(0, 10, 5))
    assert method.classifier.out_features == 5 and 0 <= out["train_top1"].item() <= 100
    assert load_config("ci", method="supervised").method_cfg.rho == 1
    assert _method("supervised")[0].sample_spec().views == 1  # one clip: no pair needed


def test_rho_byol_target_follows_online_by_ema():
    cfg = load_config("ci")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    m = catalog.METHODS.get("rho_byol")(enc, cfg.method_cfg)
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    t0 = [p.clone() for p in m.target_encoder.parameters()]
    m.after_step(StepInfo(0, 10, 5))
    k = cfg.method_cfg.momentum
    for t, before, o in zip(m.target_encoder.parameters(), t0, m.encoder.parameters()):
        assert torch.allclose(t, k * before + (1 - k) * o, atol=1e-6)


@pytest.mark.parametrize("rho", [2, 3])
def test_summed_rho_moco_loss_gives_the_released_codes_per_clip_backward_passes(rho):
    """`reduction = "sum"`: one backward of the method's loss gives the gradient PySlowFast's
    contrastive_forward accumulates with one backward per query clip i, each of
    L_i = mean over the batch and the other ρ-1 key clips of CE([q_i·k_j, q_i·queue] / τ, 0)."""
    import torch.nn.functional as F

    from methods.base import views_first

    method, _ = _method("rho_moco", f"methods.rho_moco.rho={rho}", "methods.rho_moco.reduction='sum'")
    method.eval()  # BN on running statistics: a clip's embedding does not depend on what else is in the batch
    batch = _batch(method)
    method.losses(batch)["loss"].backward()
    ours = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
    method.zero_grad()
    x, v = views_first(batch["clips"])
    with torch.no_grad():
        keys = [F.normalize(k, dim=1) for k in method.key_projector(method.key_encoder(x)).chunk(v)]
    tau, queue = method.cfg.temperature, method.queue
    for i, xi in enumerate(x.chunk(v)):  # one forward and one backward per query clip, as the released loop
        q = F.normalize(method.projector(method.encoder(xi)), dim=1)
        rows = [torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / tau for j, k in enumerate(keys) if j != i]
        logits = torch.cat(rows)
        F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long)).backward()
    ref = {n: p.grad for n, p in method.named_parameters() if p.grad is not None}
    assert ours.keys() == ref.keys() and ours
    for n in ours:
        assert torch.allclose(ours[n], ref[n], rtol=1e-4, atol=1e-7), n
    mean, _ = _method("rho_moco", f"methods.rho_moco.rho={rho}")
    mean.eval()
    assert torch.allclose(method.losses(batch)["loss"], v * mean.losses(batch)["loss"], rtol=1e-5)


@pytest.mark.parametrize("name", ["rho_byol", "rho_moco", "rho_simclr", "rho_swav", "supervised", "vimpac"])
def test_a_compiled_step_compiles_once(name):
    """torch.compile of a method's `losses` (dynamo's guards; the eager backend keeps it quick): after two
    warm-up steps, steps whose per-step scalars move (momentum, progress) recompile nothing."""
    import torch._dynamo as dynamo

    method, _ = _method(name)
    dynamo.reset()
    compiled = torch.compile(method.losses, backend="eager")
    try:
        for step in range(6):
            if step == 2:
                dynamo.config.error_on_recompile = True
            _train_step(method, _batch(method, seed=step), StepInfo(step * 7, 40, 10), lr=0.01, losses=compiled)
    finally:
        dynamo.config.error_on_recompile = False
        dynamo.reset()
