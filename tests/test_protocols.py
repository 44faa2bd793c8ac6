"""The protocols score what they should: an encoder that sees the label scores 100%, one whose labels
carry no signal scores near chance, views are aggregated and picked as documented, kNN and recall@k
match brute-force references, BN re-estimation gives batch statistics, the training schedules and
layer-wise LR decay are as configured."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from harness import catalog
from harness.config import load_config
from harness.data.digits_video import write_mp4
from harness.data.sampling import ViewLayout
from harness.data.task import Task
from harness.engine import derived_seed, isolated_rng
from protocols.base import EvalContext, aggregate_views, bootstrap_ci, score_views

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 220, 30)]


@dataclass
class SolidConfig:
    """A test dataset: one solid colour per class; `shuffle` decouples the labels from the colours."""

    shuffle: bool = False


class SolidColours:
    """Real H.264 files in a manifest-like list: 8 training and 4 test videos per colour."""

    root: Path

    @classmethod
    def split(cls, cfg: SolidConfig, cache_root: Path, split: str, progress: bool = True):
        n = 8 if split == "train" else 4
        entries = []
        rng = np.random.default_rng(1)
        for k, rgb in enumerate(COLOURS):
            for i in range(n):
                rel = f"{split}/{k}_{i}.mp4"
                path = cls.root / rel
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    frames = np.broadcast_to(np.array(rgb, np.uint8), (16, 32, 32, 3)).copy()
                    frames[:, : 4 + i] //= 2  # a little variation within a class
                    write_mp4(path, frames, None, 8, 8000, 8, 18)
                label = int(rng.integers(len(COLOURS))) if cfg.shuffle else k
                entries.append({"id": f"{split}_{k}_{i}", "path": rel, "frames": 16, "labels": {"colour": label}})
        return cls.root, entries


class MeanColour(nn.Module):
    """An 'encoder' whose features are the clip's mean colour: it sees exactly what the label is."""

    feature_dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3, 4))


@pytest.fixture()
def solid(tmp_path):
    SolidColours.root = tmp_path / "solid"
    catalog.DATASETS.add("solid-colours", SolidColours, "test", config=SolidConfig)
    catalog.TASKS.add("solid-colour", Task("solid-colour", "solid-colours", "colour",
                                          tuple(str(k) for k in range(len(COLOURS)))))
    yield
    catalog.DATASETS.remove("solid-colours")
    catalog.TASKS.remove("solid-colour")


# protocol -> settings that make a run on the 48 solid-colour videos short
SOLID = {"linear-cached": dict(epochs=30, batch_size=8, warmup_epochs=2),
         "linear": dict(epochs=30, batch_size=8, warmup_epochs=2),
         "finetune": dict(epochs=30, batch_size=8, warmup_epochs=2, lr_steps=[20], dropout=0.0)}


def _evaluate(tmp_path, shuffle: bool, protocol: str):
    cfg = load_config("ci", [f"run.cache_dir='{tmp_path}'"], protocol=protocol)
    cfg.datasets["solid-colours"] = SolidConfig(shuffle=shuffle)
    proto_cfg = replace(cfg.protocol_cfg, tasks=["solid-colour"], **SOLID[protocol])
    ctx = EvalContext(cfg, torch.device("cpu"), progress=False, encoder_key=f"mean-colour-{shuffle}")
    (result,) = catalog.PROTOCOLS.get(protocol)(proto_cfg).evaluate({"video": MeanColour()}, ctx)
    return result


@pytest.mark.parametrize("protocol", list(SOLID))
def test_an_encoder_that_sees_the_label_scores_100(tmp_path, solid, protocol):
    """Separable features: the cached probe, the online probe (random crops through the encoder) and
    fine-tuning all reach 100% over all views and on the centre view."""
    r = _evaluate(tmp_path, False, protocol)
    assert r.metrics["top1"] == 100.0 and r.metrics["top1_1view"] == 100.0
    assert r.counts["test_videos"] == 16 and r.counts["train_videos"] == 32 and r.counts["views"] == 2 * 3


@pytest.mark.parametrize("protocol", list(SOLID))
def test_labels_without_signal_score_near_chance(tmp_path, solid, protocol):
    r = _evaluate(tmp_path, True, protocol)
    assert r.metrics["top1"] <= 50.0  # chance is 25% on 16 test videos; 100% would mean a leak
    assert r.metrics["top5"] == 100.0  # 4 classes: every label is in the top 5


@pytest.mark.parametrize("temporal, spatial, centre", [(1, 1, 0), (2, 3, 6), (3, 3, 4), (10, 3, 30), (4, 1, 4)])
def test_scores_average_all_views_and_pick_the_centre_view(temporal, spatial, centre):
    """Video 0: only the centre view is right, barely -> wrong over all views, right on the centre.
    Video 1: every view is right -> right both ways. With an even temporal count the centre view is
    the extra clip after the grid, which the all-views score leaves out."""
    lay = ViewLayout(temporal, spatial)
    assert lay.centre == centre
    x = torch.zeros(2, lay.count, 3)
    x[0, :, 1] = 5.0  # class 1 everywhere ...
    x[0, centre] = torch.tensor([6.0, 5.0, 0.0])  # ... but class 0 at the centre view
    x[1, :, 2] = 5.0
    metrics, ci = score_views(x, torch.tensor([0, 2]), lay, "softmax-mean")
    expected_all = 100.0 if lay.grid == 1 else 50.0
    assert metrics["top1"] == expected_all and metrics["top1_1view"] == 100.0
    assert set(ci) == {"top1", "top1_1view"}


def _brute_knn(q, bank, yb, n_classes, k, tau):
    """Plain loops: for each query, sort the bank by cosine and add exp(cos/τ) of the k best to their classes."""
    out = []
    for row in q.tolist():
        sims = sorted(((sum(a * b for a, b in zip(row, brow)), int(y)) for brow, y in zip(bank.tolist(), yb)),
                      reverse=True)[:k]
        votes = [0.0] * n_classes
        for s, y in sims:
            votes[y] += float(np.exp(s / tau))
        out.append(votes)
    return torch.tensor(out, dtype=torch.float64)


def _unit_rows(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("k", [1, 5, 40])  # 40 > bank size: every bank row votes
def test_knn_scores_match_a_brute_force_reference(k):
    from protocols.knn import knn_scores

    q, bank = _unit_rows(7, 6, 0), _unit_rows(30, 6, 1)
    yb = torch.arange(30) % 4
    got = knn_scores(q, bank, yb, 4, k, 0.07, chunk=3)  # chunks of 3 queries: the chunking must not matter
    torch.testing.assert_close(got, _brute_knn(q, bank, yb, 4, k, 0.07).to(got.dtype), rtol=1e-9, atol=0)


def test_recall_at_k_matches_a_brute_force_reference():
    from protocols.retrieval import recall_hits

    q, bank = _unit_rows(9, 5, 2), _unit_rows(25, 5, 3)
    yq, yb = torch.arange(9) % 3, torch.arange(25) % 5
    hits = recall_hits(q, bank, yq, yb, [1, 5, 10, 30], chunk=4)
    for i in range(9):
        order = sorted(range(25), key=lambda j: -float(q[i] @ bank[j]))
        for k in (1, 5, 10, 30):
            assert bool(hits[k][i]) == any(int(yb[j]) == int(yq[i]) for j in order[:k]), (i, k)
    assert all(hits[30]) or not all(hits[1])  # recall can only grow with k


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_videos():
    g = torch.Generator().manual_seed(0)
    small, large = torch.rand(100, generator=g) < 0.3, torch.rand(2000, generator=g) < 0.3
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= 100 * small.float().mean() <= hi_s and lo_l <= 100 * large.float().mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3  # about sqrt(20) = 4.5x narrower
    assert bootstrap_ci(torch.ones(50, dtype=torch.bool)) == [100.0, 100.0]


@pytest.mark.parametrize("protocol", ["knn", "retrieval"])
def test_frozen_protocols_score_an_encoder_that_sees_the_label_perfectly(tmp_path, solid, protocol):
    """The mean-colour 'encoder' separates the classes: kNN top-1 and retrieval R@1 are 100%."""
    cfg = load_config("ci", [f"run.cache_dir='{tmp_path}'"], protocol=protocol)
    cfg.datasets["solid-colours"] = SolidConfig()
    proto_cfg = replace(cfg.protocol_cfg, tasks=["solid-colour"])
    (r,) = catalog.PROTOCOLS.get(protocol)(proto_cfg).evaluate({"video": MeanColour()},
                                                               EvalContext(cfg, torch.device("cpu"), progress=False))
    key = "top1" if protocol == "knn" else "R@1"
    assert r.metrics[key] == 100.0 and r.metrics[f"{key}_1view"] == 100.0 and r.ci95[key] == [100.0, 100.0]
    assert r.counts["test_videos"] == 16 and r.counts["train_videos"] == 32


def test_low_shot_subset_is_stratified_fixed_and_independent_of_the_run():
    from protocols.frozen import low_shot

    entries = [{"id": f"v{i}", "labels": {"y": i % 4}} for i in range(40)]  # 10 videos per class
    base = load_config("ci").protocol_cfg
    full = low_shot(entries, "y", base)
    assert full is entries  # off by default
    two = low_shot(entries, "y", replace(base, train_per_class=2))
    assert sorted(e["labels"]["y"] for e in two) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert two == low_shot(entries, "y", replace(base, train_per_class=2))  # a function of subset_seed alone
    assert two != low_shot(entries, "y", replace(base, train_per_class=2, subset_seed=1))
    tenth = low_shot(entries, "y", replace(base, train_fraction=0.1))
    assert len(tenth) == 4 and {e["labels"]["y"] for e in tenth} == {0, 1, 2, 3}  # at least one per class
    with pytest.raises(Exception, match="class 0 of 'y' has only 10 training videos"):
        low_shot(entries, "y", replace(base, train_per_class=11))


def test_low_shot_settings_name_the_variant_only_when_set():
    full = load_config("ci").protocol_identity()
    assert not any("train_fraction" in k or "train_per_class" in k or "subset_seed" in k for k in full)
    shot = load_config("ci", ["protocol.train_fraction=0.1"]).protocol_identity()
    assert shot["protocols.linear-cached.train_fraction"] == 0.1


def test_view_aggregation_against_a_hand_computation():
    """One video, three views, two classes: view 1 favours class 0 strongly, views 2 and 3 class 1 mildly.
    softmax(3, 0) = (0.953, 0.047), softmax(0, 1) = (0.269, 0.731):
    mean softmax = (0.497, 0.503) -> class 1; mean logits = (1, 0.667) -> class 0; max softmax = (0.953, 0.731) -> 0."""
    logits = torch.tensor([[[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
    s = torch.tensor([math.exp(3) / (math.exp(3) + 1), 1 / (1 + math.e)])  # class-0 probability of each view kind
    torch.testing.assert_close(aggregate_views(logits, "softmax-mean")[0],
                               torch.tensor([(s[0] + 2 * s[1]) / 3, (1 - s[0] + 2 * (1 - s[1])) / 3]))
    torch.testing.assert_close(aggregate_views(logits, "logit-mean")[0], torch.tensor([1.0, 2 / 3]))
    torch.testing.assert_close(aggregate_views(logits, "max")[0], torch.tensor([s[0], 1 - s[1]]))
    assert [int(aggregate_views(logits, h).argmax()) for h in ("softmax-mean", "logit-mean", "max")] == [1, 0, 0]


class _Clips(torch.utils.data.Dataset):
    """Items shaped like LabelledViews': `views` (V, C, T, H, W) of random clips."""

    def __init__(self, n: int, views: int):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, views, 3, 2, 4, 4, generator=g) * 3 + 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"views": self.x[i], "labels": {}, "index": i}


def test_bn_re_estimation_matches_batch_statistics():
    """With every clip in one batch, the re-estimated running mean and variance are that batch's
    statistics; in equal chunks, the mean is still the mean of all clips. Weights do not move."""
    from harness.data.datasets import BadVideos
    from protocols.multiview import recalibrate_bn

    conv = nn.Conv3d(3, 4, 1)
    bn = nn.BatchNorm3d(4)
    enc = nn.Sequential(conv, bn)
    ds = _Clips(6, 2)
    with torch.no_grad():
        y = conv(ds.x.flatten(0, 1))
    before = {k: v.clone() for k, v in conv.state_dict().items()}
    seen = recalibrate_bn(enc, ds, torch.device("cpu"), batch=6, workers=0, bad=BadVideos(6, 0.0))
    assert seen == 12 and not enc.training
    torch.testing.assert_close(bn.running_mean, y.mean(dim=(0, 2, 3, 4)))
    torch.testing.assert_close(bn.running_var, y.var(dim=(0, 2, 3, 4), unbiased=True))
    assert all(torch.equal(v, conv.state_dict()[k]) for k, v in before.items())
    recalibrate_bn(enc, ds, torch.device("cpu"), batch=3, workers=0, bad=BadVideos(6, 0.0), clip_batch=2)
    torch.testing.assert_close(bn.running_mean, y.mean(dim=(0, 2, 3, 4)))


def test_views_are_chunked_into_bounded_encoder_calls():
    from protocols.multiview import chunked

    sizes = []

    class Probe(nn.Module):
        def forward(self, x):
            sizes.append(x.shape[0])
            return x.mean(dim=(2, 3, 4))

    views = torch.randn(4, 31, 3, 2, 4, 4)  # 4 videos x (10x3 + centre) views
    out = chunked(Probe(), views, torch.device("cpu"), clip_batch=50, bf16=False)
    assert sizes == [50, 50, 24] and out.shape == (4, 31, 3)
    torch.testing.assert_close(out, views.mean(dim=(3, 4, 5)))


def _classifier(frozen: bool, **kw):
    from harness.builders import build_encoder
    from protocols.trained import Classifier

    cfg = load_config("ci")
    enc = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip)
    return Classifier(enc, [Task("t", "d", "y", ("a", "b"))], frozen=frozen, **kw)


def test_the_probe_bn_switch_keeps_or_re_estimates_the_backbone_statistics():
    """bn = "train" (the reference code) updates the frozen backbone's BN running statistics from the
    training clips; bn = "frozen" keeps them; neither trains a backbone weight."""
    x = {"clips": torch.randn(4, 1, 3, 8, 16, 16), "labels": {"y": torch.tensor([0, 1, 0, 1])}}
    for bn_train in (True, False):
        m = _classifier(True, bn_train=bn_train).train()
        stats = [b.clone() for n, b in m.encoder.named_buffers() if "running_mean" in n]
        m.losses(x)["loss"].backward()
        after = [b for n, b in m.encoder.named_buffers() if "running_mean" in n]
        assert any(not torch.equal(a, b) for a, b in zip(stats, after)) == bn_train
        assert all(p.grad is None for p in m.encoder.parameters())
        assert m.trainable_modules() == [m.heads]


def test_layer_wise_lr_decay_scales_each_block_of_the_encoder():
    """With decay d over L blocks, block i (stem = 0) gets d^(L - i) of the LR and the new layer 1."""
    from harness.optim import param_groups

    m = _classifier(False, layer_decay=0.5)
    layers = m.encoder.layers()
    L = len(layers)
    assert [m.lr_scale(b) for b in layers] == [0.5 ** (L - i) for i in range(L)] and m.lr_scale(m.heads) == 1.0
    mods = m.trainable_modules()
    groups = param_groups(mods, 0.0, [m.lr_scale(b) for b in mods])
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert sorted({g["lr_scale"] for g in groups}) == sorted({0.5 ** k for k in range(L + 1)})
    plain = _classifier(False)
    assert plain.trainable_modules() == [plain.encoder, plain.heads]  # no decay: the encoder as one module


@pytest.mark.parametrize("name", ["small3d", "r3d_18", "r2plus1d_18", "slow_r50"])
def test_every_backbone_lists_its_blocks_in_depth_order(name):
    from harness.builders import build_encoder

    cfg = load_config("ci", [f"backbone.name={name!r}"])
    enc = build_encoder(name, cfg.backbone_cfg, cfg.backbone.clip)
    layers = enc.layers()
    assert len(layers) >= 5 and sum(p.numel() for b in layers for p in b.parameters()) == \
        sum(p.numel() for p in enc.parameters())


def test_step_and_cosine_schedules():
    """steps: base until the first decay epoch, then x0.1 at each; linear warm-up first; cosine ends near 0."""
    from protocols.trained import lr_schedule

    c = replace(load_config("ci", protocol="finetune").protocol_cfg, epochs=4, lr=1.0, lr_batch=0,
                schedule="steps", lr_steps=[2, 3], warmup_epochs=0)
    f = lr_schedule(c, batch=16, per_epoch=10)
    assert [f(s) for s in (0, 19, 20, 29, 30, 39)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    w = lr_schedule(replace(c, warmup_epochs=1), batch=16, per_epoch=10)
    assert w(0) == pytest.approx(0.1) and w(9) == pytest.approx(1.0) and w(10) == 1.0
    scaled = lr_schedule(replace(c, lr_batch=64), batch=16, per_epoch=10)
    assert scaled(0) == pytest.approx(0.25)  # the linear scaling rule
    cos = lr_schedule(replace(c, schedule="cosine"), batch=16, per_epoch=10)
    assert cos(0) == pytest.approx(1.0) and cos(39) < 0.01


def test_the_paper_step_benchmark_times_protocols_on_a_cpu():
    """tools/paper_step_bench.py --protocols (the GPU figures of docs/gpu.md) runs as a smoke test on ci shapes."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "tools/paper_step_bench.py"), "--profile", "ci", "--device", "cpu",
                        "--protocols", "--batch", "2", "--steps", "1", "--warmup", "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "| linear | 2 |" in p.stdout and "| finetune | 2 |" in p.stdout and "| extract | 2 | 12 |" in p.stdout
    assert "K400-sized probe" in p.stdout


@pytest.mark.parametrize("protocol", ["linear-cached", "finetune"])
def test_unreadable_videos_are_counted_and_limited_per_split(tmp_path, solid, protocol):
    """One damaged training video of 32 is left out and counted; a test split with no readable video
    stops the protocol with a DataError (exit 3) that names the split."""
    from harness.errors import DataError

    cfg = load_config("ci", [f"run.cache_dir='{tmp_path}'", "data.max_bad_fraction=0.05"], protocol=protocol)
    cfg.datasets["solid-colours"] = SolidConfig()
    for split in ("train", "test"):
        SolidColours.split(SolidConfig(), tmp_path, split)
    (SolidColours.root / "train/0_0.mp4").write_bytes(b"not a video")
    proto_cfg = replace(cfg.protocol_cfg, tasks=["solid-colour"], **SOLID[protocol])
    ctx = EvalContext(cfg, torch.device("cpu"), progress=False, encoder_key="mean-colour")
    (r,) = catalog.PROTOCOLS.get(protocol)(proto_cfg).evaluate({"video": MeanColour()}, ctx)
    assert list(r.bad_videos) == [str(SolidColours.root / "train/0_0.mp4")] and r.metrics["top1"] == 100.0
    for p in (SolidColours.root / "test").glob("*.mp4"):
        p.write_bytes(b"not a video")
    with pytest.raises(DataError, match="test videos of solid-colours could not be decoded") as e:
        catalog.PROTOCOLS.get(protocol)(replace(proto_cfg, cache_features=False) if protocol == "linear-cached"
                                        else proto_cfg).evaluate({"video": MeanColour()}, ctx)
    assert e.value.exit_code == 3


def test_a_probe_that_diverges_stops_naming_its_own_learning_rate():
    """A loss far above guessing at the end of a fit is a divergence, not a result at chance: exit 4 (a
    TrainingError) naming the protocol's lr; a fit that learns passes."""
    from harness.errors import TrainingError
    from protocols.linear_cached import train_linear
    from protocols.trained import check_converged

    cfg = load_config("ci", protocol="linear-cached").protocol_cfg
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (64,), generator=g)
    x = torch.randn(64, 8, generator=g) + 3 * nn.functional.one_hot(y, 8).float()
    assert isinstance(train_linear(x, y, 4, cfg, 0), nn.Linear)
    with pytest.raises(TrainingError, match=r"linear-cached: the fit diverged .*lower protocols.linear-cached.lr"):
        train_linear(x * 1e6, y, 4, replace(cfg, lr=99.0), 0)
    with pytest.raises(TrainingError, match="lower protocols.finetune.lr"):
        check_converged(float("nan"), [10], "finetune")
    check_converged(2.0, [10, 10], "finetune")  # near guessing (ln 10 + ln 10): not diverged, just untrained


def test_a_fit_draws_its_own_random_stream_whatever_ran_before_it(tmp_path, solid, monkeypatch):
    """Fine-tuning with dropout gives the same model whatever state the global RNG was left in by what ran
    before it (an earlier task's fit trained, resumed or was reused from the cache)."""
    monkeypatch.setitem(SOLID, "finetune", {**SOLID["finetune"], "epochs": 6, "dropout": 0.5})
    outputs = []
    for before in (0, 1):
        torch.manual_seed(before)
        outputs.append(_evaluate(tmp_path / f"before{before}", True, "finetune").outputs)
    assert outputs[0] == outputs[1]


def test_an_isolated_stream_is_seeded_and_gives_the_callers_back():
    torch.manual_seed(5)
    caller = torch.get_rng_state()
    with isolated_rng(derived_seed(0, "finetune", "task")):
        a = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), caller)
    with isolated_rng(derived_seed(0, "finetune", "task")):
        assert torch.equal(torch.rand(3), a)
    assert derived_seed(0, "finetune", "task") != derived_seed(1, "finetune", "task") < 2 ** 31
