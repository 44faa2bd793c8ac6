"""Loss functions as pure functions of embeddings, testable against small loop references.

Each works on the clips of one process and is correct under `torchrun` too: negatives are
gathered and Sinkhorn's sums reduced through `harness.distributed`, whose helpers are the
identity in one process. The ρ clips of a batch come as a list of V tensors of shape (B, D),
clip v of video b at `z[v][b]`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from harness import distributed as dist


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs (bf16 autocast) go to fp32 for the exponentials; fp32/fp64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _check_views(name: str, z: Sequence[torch.Tensor]) -> None:
    if len(z) < 2:
        raise ValueError(f"{name}: need >= 2 clips per video, got {len(z)}")
    if len({tuple(t.shape) for t in z}) != 1:
        raise ValueError(f"{name}: all clips need the same (B, D) shape, got {[tuple(t.shape) for t in z]}")


def byol_pair_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised MSE, 2 - 2 cos(p, z), averaged over the batch; no gradient into z."""
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()


def rho_byol_loss(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """ρBYOL: every clip's prediction regresses every *other* clip's target, averaged over the
    ρ(ρ-1) ordered pairs ("the symmetric loss is the average over all ρ sub-losses", §3.2)."""
    v = len(preds)
    if v < 2 or len(targets) != v:
        raise ValueError(f"need >= 2 views with matching targets, got {v} and {len(targets)}")
    terms = [byol_pair_loss(preds[i], targets[j]) for i in range(v) for j in range(v) if i != j]
    return torch.stack(terms).mean()


def info_nce_loss(z: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """ρSimCLR's InfoNCE (NT-Xent generalised to V clips per video).

    Anchor a, positive p (another clip of a's video): -log(exp(s_ap/τ) / Σ_{k≠a} exp(s_ak/τ)), k over
    every other clip of the global batch; the mean over all local anchors and their V-1 positives.
    Under torchrun the candidates are gathered with gradient from all ranks; the anchors stay local,
    so the mean over ranks (DDP's gradient average) is the loss of the global batch.
    """
    _check_views("info_nce_loss", z)
    v, b = len(z), z[0].shape[0]
    local = [F.normalize(_wide(t), dim=1) for t in z]
    n_all = b * dist.world_size()
    cand = torch.cat([dist.gather_with_grad(t) for t in local])  # (V*N, D), clip w of global video i at w*N + i
    anchors = torch.cat(local)  # (V*B, D), clip w of local video i at w*B + i
    logits = anchors @ cand.T / temperature
    own = torch.arange(b, device=logits.device) + dist.rank() * b  # global index of each local video
    col = torch.stack([w * n_all + own for w in range(v)])  # (V, B): column of clip w of local video i
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(v * b, device=logits.device), col.reshape(-1)] = True
    logits = logits.masked_fill(is_self, float("-inf"))  # the sum runs over k != a
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    terms = [log_prob[a * b:(a + 1) * b].gather(1, col[p][:, None]) for a in range(v) for p in range(v) if p != a]
    return -torch.cat(terms).mean()


def moco_loss(q: list[torch.Tensor], k: list[torch.Tensor], queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """ρMoCo: query clip i against key clip j != i of the same video, with the queue as negatives.

    Term: -log(exp(q_i·k_j/τ) / (exp(q_i·k_j/τ) + Σ_n exp(q_i·n/τ))), n over the queue rows (used as
    given; the keys are normalised here and carry no gradient). The mean over the batch and all ordered
    pairs (i, j): the paper's average of the ρ sub-losses L_i.
    """
    _check_views("moco_loss", q)
    if len(k) != len(q):
        raise ValueError(f"moco_loss: {len(q)} query clips but {len(k)} key clips")
    qs = [F.normalize(_wide(t), dim=1) for t in q]
    ks = [F.normalize(t.detach().to(qs[0].dtype), dim=1) for t in k]
    neg = [t @ queue.detach().to(t.dtype).T / temperature for t in qs]  # (B, K) per query clip
    terms = []
    for i, qi in enumerate(qs):
        for j, kj in enumerate(ks):
            if i != j:
                pos = (qi * kj).sum(dim=1, keepdim=True) / temperature
                logits = torch.cat([pos, neg[i]], dim=1)
                terms.append(logits.logsumexp(dim=1) - pos[:, 0])
    return torch.cat(terms).mean()


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp: (B, K) prototype scores -> (B, K) soft codes under an equipartition prior.

    Alternately normalises exp(scores/ε) so each prototype holds 1/K of the mass and each sample 1/B,
    ending on the per-sample step, so each returned row sums to 1 and each column tends to B/K. Under
    torchrun the sums run over the global batch (B = all ranks' samples), as the paper's 8-node runs do.
    """
    # in fp64, less the largest score (a global factor that cancels in the first division): a small ε
    # neither overflows nor empties a prototype's row; the matrix is only B x K
    s = scores.double() / eps
    q = torch.exp(s - dist.all_reduce_max(s.max())).T  # (K, B)
    k, b = q.shape[0], q.shape[1] * dist.world_size()
    q /= dist.all_reduce_sum(q.sum())
    for _ in range(iters):
        q /= dist.all_reduce_sum(q.sum(dim=1, keepdim=True))
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).T.to(_wide(scores).dtype)


def swav_loss(scores: list[torch.Tensor], eps: float, iters: int, temperature: float,
              targets: Sequence[int] | None = None, queue_scores: Sequence[torch.Tensor | None] | None = None
              ) -> torch.Tensor:
    """ρSwAV's swapped prediction: clip v's codes `sinkhorn(scores[v])` predicted from clip w != v by
    -Σ_k code_k log softmax(scores[w]/τ)_k; the mean over the batch and all ordered pairs (v, w).

    `targets` limits the clips whose codes are targets (the released code uses clips 0 and 1 only);
    `queue_scores[v]`, when given, are scores of stored embeddings computed with the current
    prototypes, which join clip v's Sinkhorn problem and are dropped from its codes (SwAV's queue).
    """
    _check_views("swav_loss", scores)
    v = len(scores)
    targets = range(v) if targets is None else targets
    log_p = [F.log_softmax(_wide(s) / temperature, dim=1) for s in scores]
    terms = []
    for a in targets:
        extra = queue_scores[a] if queue_scores is not None else None
        s = scores[a].detach() if extra is None else torch.cat([extra.detach(), scores[a].detach()])
        codes = sinkhorn(s, eps, iters)[-scores[a].shape[0]:]
        terms += [-(codes * log_p[w]).sum(dim=1) for w in range(v) if w != a]
    return torch.cat(terms).mean()


def mil_nce_loss(anchors: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor | None,
                 temperature: float) -> torch.Tensor:
    """VATT's NCE (K = 1) and MIL-NCE (K positives per anchor) between L2-normalised embeddings.

    `anchors` (B, D) (video), `candidates` (B, K, D) (audio: K = 1; text: the K narrations nearest each
    clip), `valid` (B, K) False for a missing candidate (no audio track, fewer captions). For anchor b,
    the scores are its similarity to every valid candidate of the global batch and every anchor's
    similarity to its own valid candidates, over τ; the loss is logsumexp(all scores) - logsumexp(its
    positives), where the positives (b's own candidates) appear in both halves, as in the reference
    code's AsymmetricNCE and the MIL-NCE paper's two-sided negatives. An anchor without any valid
    candidate adds nothing; the mean runs over the valid anchors of the global batch.
    """
    b, k, _ = candidates.shape
    if valid is None:
        valid = torch.ones(b, k, dtype=torch.bool, device=candidates.device)
    a = F.normalize(_wide(anchors), dim=-1)
    c = F.normalize(_wide(candidates), dim=-1)
    a_all, c_all = dist.gather_with_grad(a), dist.gather_with_grad(c)  # (N, D), (N, K, D)
    v_all = dist.gather(valid.to(torch.uint8)).bool()  # (N, K)
    n = a_all.shape[0]
    own = torch.arange(b, device=a.device) + dist.rank() * b  # global index of each local anchor
    off = -1e9  # a missing candidate's score (finite: no inf - inf), as the reference code masks
    to_all = (a @ c_all.reshape(n * k, -1).T / temperature).masked_fill(~v_all.reshape(1, n * k), off)  # (B, N*K)
    from_all = (torch.einsum("nd,bkd->bnk", a_all, c) / temperature).masked_fill(~valid[:, None, :], off)
    from_all = from_all.reshape(b, n * k)
    rows = torch.arange(b, device=a.device)
    pos_to = to_all.view(b, n, k)[rows, own]  # (B, K): anchor b with its own candidates
    pos_from = from_all.view(b, n, k)[rows, own]
    per_anchor = (torch.logsumexp(torch.cat([to_all, from_all], dim=1), dim=1)
                  - torch.logsumexp(torch.cat([pos_to, pos_from], dim=1), dim=1))
    has = valid.any(dim=1)
    count = dist.all_reduce_sum(has.sum().to(per_anchor.dtype)).clamp(min=1)
    return torch.where(has, per_anchor, 0.0).sum() * dist.world_size() / count
