"""The ρ losses against small references written with plain loops over numpy arrays (never by
calling the function under test), and under two `torch.distributed` processes against one."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.losses import info_nce_loss, mil_nce_loss, moco_loss, sinkhorn, swav_loss

TAU = 0.1


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _views(v: int, b: int, d: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, d, generator=g, dtype=torch.float64) for _ in range(v)]


def info_nce_by_hand(z: list[np.ndarray], tau: float) -> float:
    """Every (anchor, positive) pair of clips of one video; the denominator runs over every other clip."""
    clips = [(w, i, u) for w, zw in enumerate(z) for i, u in enumerate(_unit(zw))]
    terms = []
    for a, i, ua in clips:
        den = sum(math.exp(float(ua @ uk) / tau) for w, j, uk in clips if (w, j) != (a, i))
        for p, j, up in clips:
            if j == i and p != a:
                terms.append(-math.log(math.exp(float(ua @ up) / tau) / den))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("rho", [2, 3])
def test_info_nce_matches_a_loop_reference(rho):
    z = _views(rho, 5, 7, seed=rho)
    got = info_nce_loss(z, TAU).item()
    assert got == pytest.approx(info_nce_by_hand([t.numpy() for t in z], TAU), rel=1e-9)


def test_info_nce_of_two_views_is_nt_xent():
    """ρ = 2 is SimCLR's NT-Xent: 2B anchors, one positive each, 2B-1 candidates."""
    a, b = _views(2, 4, 3, seed=9)
    za, zb = _unit(a.numpy()), _unit(b.numpy())
    out = np.concatenate([za, zb])
    s = out @ out.T / TAU
    np.fill_diagonal(s, -np.inf)
    pos = np.concatenate([np.arange(4, 8), np.arange(4)])
    expect = np.mean([-(s[r, pos[r]] - np.log(np.exp(s[r]).sum())) for r in range(8)])
    assert info_nce_loss([a, b], TAU).item() == pytest.approx(expect, rel=1e-9)


def moco_by_hand(q, k, queue, tau) -> float:
    terms = []
    for i, qi in enumerate(q):
        for j, kj in enumerate(k):
            if i == j:
                continue
            for b in range(len(qi)):
                qb, kb = _unit(qi[b]), _unit(kj[b])
                pos = math.exp(float(qb @ kb) / tau)
                neg = sum(math.exp(float(qb @ n) / tau) for n in queue)
                terms.append(-math.log(pos / (pos + neg)))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("rho", [2, 3])
def test_moco_loss_matches_a_loop_reference(rho):
    q, k = _views(rho, 4, 6, seed=1), _views(rho, 4, 6, seed=2)
    queue = torch.nn.functional.normalize(_views(1, 9, 6, seed=3)[0], dim=1)
    got = moco_loss(q, k, queue, TAU).item()
    assert got == pytest.approx(moco_by_hand([t.numpy() for t in q], [t.numpy() for t in k], queue.numpy(), TAU),
                                rel=1e-9)


def test_moco_loss_sends_no_gradient_into_keys_or_queue():
    q = [t.requires_grad_() for t in _views(2, 3, 4, seed=4)]
    k = [t.requires_grad_() for t in _views(2, 3, 4, seed=5)]
    queue = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    moco_loss(q, k, queue, TAU).backward()
    assert all(t.grad is not None for t in q)
    assert all(t.grad is None for t in k) and queue.grad is None


def sinkhorn_by_hand(scores: np.ndarray, eps: float, iters: int) -> np.ndarray:
    b, k = scores.shape
    q = [[math.exp(scores[i][j] / eps) for i in range(b)] for j in range(k)]  # K x B
    total = sum(sum(row) for row in q)
    q = [[x / total for x in row] for row in q]
    for _ in range(iters):
        for j in range(k):
            r = sum(q[j])
            q[j] = [x / r / k for x in q[j]]
        for i in range(b):
            c = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / c / b
    return np.array([[q[j][i] * b for j in range(k)] for i in range(b)])


def test_sinkhorn_equals_a_loop_and_its_marginals_converge():
    g = torch.Generator().manual_seed(0)
    s = torch.nn.functional.normalize(torch.randn(12, 4, generator=g, dtype=torch.float64), dim=1) @ \
        torch.nn.functional.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1).T
    eps = 0.5  # a mild ε so that 3 iterations are visibly short of the fixed point
    for iters in (3, 100):
        q = sinkhorn(s, eps, iters)
        assert not q.requires_grad
        np.testing.assert_allclose(q.numpy(), sinkhorn_by_hand(s.numpy(), eps, iters), rtol=1e-6)
        np.testing.assert_allclose(q.sum(dim=1).numpy(), 1.0, rtol=1e-6)  # ends on the per-sample step
    off3 = (sinkhorn(s, eps, 3).sum(dim=0) - 12 / 5).abs().max().item()
    off100 = (sinkhorn(s, eps, 100).sum(dim=0) - 12 / 5).abs().max().item()
    assert off100 < 1e-6 < off3, (off3, off100)  # each prototype's mass tends to B/K


def test_sinkhorn_stays_finite_for_a_small_epsilon():
    """exp(1/0.005) overflows fp32; subtracting the largest score first (a factor that cancels) keeps it finite."""
    s = torch.nn.functional.normalize(torch.randn(8, 5), dim=1) @ torch.nn.functional.normalize(torch.randn(6, 5), dim=1).T
    q = sinkhorn(s, 0.005, 3)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(8))


def test_sinkhorn_has_no_gradient_even_from_a_graph():
    s = torch.randn(4, 3, requires_grad=True)
    assert not sinkhorn(s * 2, 0.05, 3).requires_grad


def swav_by_hand(scores: list[np.ndarray], eps, iters, tau, targets=None) -> float:
    terms = []
    for a in (range(len(scores)) if targets is None else targets):
        codes = sinkhorn_by_hand(scores[a], eps, iters)
        for w, sw in enumerate(scores):
            if w == a:
                continue
            for b in range(len(sw)):
                logits = [x / tau for x in sw[b]]
                log_z = math.log(sum(math.exp(x) for x in logits))
                terms.append(-sum(c * (x - log_z) for c, x in zip(codes[b], logits)))
    return sum(terms) / len(terms)


def test_swav_loss_rho3_matches_a_loop_reference():
    scores = [torch.tanh(t) for t in _views(3, 6, 5, seed=11)]  # (B, K) prototype scores in [-1, 1]
    ref = swav_by_hand([t.numpy() for t in scores], 0.05, 3, TAU)
    assert swav_loss(scores, 0.05, 3, TAU).item() == pytest.approx(ref, rel=1e-6)
    # the released code's variant: codes of clips 0 and 1 only
    ref01 = swav_by_hand([t.numpy() for t in scores], 0.05, 3, TAU, targets=[0, 1])
    assert swav_loss(scores, 0.05, 3, TAU, targets=[0, 1]).item() == pytest.approx(ref01, rel=1e-6)


def mil_nce_by_hand(a: np.ndarray, c: np.ndarray, valid: np.ndarray, tau: float) -> float:
    """For each anchor i with a valid candidate: all scores = (i, every valid candidate (j, k)) and (every
    anchor j, i's valid candidates k); positives = i's own valid candidates, once from each side."""
    a, c = _unit(a), _unit(c)
    b, k = valid.shape
    losses = []
    for i in range(b):
        if not valid[i].any():
            continue
        scores = [a[i] @ c[j, m] / tau for j in range(b) for m in range(k) if valid[j, m]]
        scores += [a[j] @ c[i, m] / tau for j in range(b) for m in range(k) if valid[i, m]]
        pos = [a[i] @ c[i, m] / tau for m in range(k) if valid[i, m]] * 2
        losses.append(math.log(sum(math.exp(s) for s in scores)) - math.log(sum(math.exp(s) for s in pos)))
    return sum(losses) / len(losses)


def test_mil_nce_matches_a_loop_reference_with_several_positives_and_missing_candidates():
    g = torch.Generator().manual_seed(5)
    a, c = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 3, 4, generator=g, dtype=torch.float64)
    valid = torch.ones(6, 3, dtype=torch.bool)
    valid[0, 1:] = False  # one positive left
    valid[4] = False  # no text for this clip: it adds nothing, and its candidates are no one's negatives
    ref = mil_nce_by_hand(a.numpy(), c.numpy(), valid.numpy(), TAU)
    assert mil_nce_loss(a, c, valid, TAU).item() == pytest.approx(ref, rel=1e-9)
    # NCE is the one-candidate case; a missing audio track masks its clip
    one = torch.tensor([True, True, False, True, True, True])[:, None]
    ref1 = mil_nce_by_hand(a.numpy(), c[:, :1].numpy(), one.numpy(), TAU)
    assert mil_nce_loss(a, c[:, :1], one, TAU).item() == pytest.approx(ref1, rel=1e-9)
    # masked candidates get no gradient (the anchor of a clip without text is still a negative for others)
    leaf_a, leaf_c = a.clone().requires_grad_(), c.clone().requires_grad_()
    mil_nce_loss(leaf_a, leaf_c, valid, TAU).backward()
    assert leaf_c.grad[0, 1:].abs().max() == 0 and leaf_c.grad[4].abs().max() == 0


def test_losses_reject_a_single_clip():
    one = _views(1, 4, 3, seed=0)
    for call in (lambda: info_nce_loss(one, TAU), lambda: swav_loss(one, 0.05, 3, TAU),
                 lambda: moco_loss(one, one, torch.zeros(2, 3), TAU)):
        with pytest.raises(ValueError, match="need >= 2 clips"):
            call()


WORKER = Path(__file__).parent / "fixtures" / "dist_losses.py"


@pytest.mark.e2e
def test_two_processes_give_the_one_process_loss_and_gradients(tmp_path):
    """torchrun, 2 processes, gloo: each holds half the batch; the mean of their losses equals the loss
    of the whole batch in one process (MIL-NCE's too, with missing candidates spread unevenly), and each
    rank's gradient (after DDP's 1/world average) equals
    the one-process gradient of its rows; MoCo's shuffle-BN helpers permute the global batch and undo it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(WORKER), str(tmp_path)], capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    z = _views(3, 8, 5, seed=21)
    scores = [torch.tanh(t) for t in _views(3, 8, 6, seed=22)]
    expect = {}
    g = torch.Generator().manual_seed(23)
    a, c = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 3, 5, generator=g, dtype=torch.float64)
    sys.path.insert(0, str(WORKER.parent))
    from dist_losses import milnce_valid

    for name, inputs, fn in (("info_nce", z, lambda x: info_nce_loss(x, TAU)),
                             ("swav", scores, lambda x: swav_loss(x, 0.05, 3, TAU)),
                             ("mil_nce", [a, c], lambda x: mil_nce_loss(x[0], x[1], milnce_valid(), TAU))):
        leaves = [t.clone().requires_grad_() for t in inputs]
        loss = fn(leaves)
        loss.backward()
        expect[name] = (loss.item(), [t.grad for t in leaves])
    shuffled = []
    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt")
        sh = got.pop("shuffle")
        assert torch.equal(sh["restored"], sh["x"])  # unshuffle_batch undoes shuffle_batch
        shuffled.append(sh["shuffled"])
        for name, (loss, grads) in expect.items():
            assert got[name]["loss"] == pytest.approx(loss, rel=1e-9), name
            for g_full, g_rank in zip(grads, got[name]["grads"]):
                torch.testing.assert_close(g_rank / 2, g_full[r * 4:(r + 1) * 4], rtol=1e-9, atol=1e-12)
    # together the ranks' shuffled batches hold every row of the global batch exactly once
    rows = sorted(torch.cat(shuffled)[:, 0].tolist())
    assert rows == sorted([0.0, 2.0, 4.0, 6.0, 100.0, 102.0, 104.0, 106.0])
