"""Paired comparisons (`bench compare`, leaderboard ranks): calibrated on simulated per-video outputs, the
sign-flip test against scipy's, per-video outputs written and read back exactly, ties ranked on hand-made
records, and an old record without outputs named."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.report import compare as cmp
from harness.report.outputs import hits, load_outputs, write_outputs


def _runs(rng, delta: float, seeds: int = 3, n: int = 500, sd_seed: float = 0.3) -> cmp.Paired:
    """Per-video hits of A and B: videos of varied difficulty (logit ~ N(-1.4, 1.2): about 25% accuracy), each
    run shifted by its own training seed (sd 0.3 logits: about the embedded profile's 3-5 points), A better
    by `delta` points."""
    difficulty = rng.normal(-1.4, 1.2, n)

    def run(shift: float) -> np.ndarray:
        p = 1 / (1 + np.exp(-(difficulty + shift + rng.normal(0, sd_seed))))
        return (rng.random(n) < p).astype(float)

    shift = delta / 100 / (0.25 * 0.75)
    return cmp.Paired(np.stack([run(shift) for _ in range(seeds)]), np.stack([run(0.0) for _ in range(seeds)]),
                      list(range(seeds)), n)


def test_the_paired_interval_covers_a_known_difference_at_its_nominal_rate():
    """200 simulated comparisons each at Δ = 0 and Δ = 3 points (3 seeds, 500 videos): the 95% interval covers
    Δ about 95% of the time and equal methods are declared different about 5% of the time; the power at
    Δ = 3 with this seed spread is what it is (printed; with `-s`)."""
    rng = np.random.default_rng(0)
    out = {}
    for delta in (0.0, 3.0):
        res = [cmp.compare(_runs(rng, delta), "t", "top1") for _ in range(200)]
        cover = np.mean([r.ci[0] <= delta <= r.ci[1] for r in res])
        decided = np.mean([r.decided for r in res])
        out[delta] = (cover, decided)
        assert 0.9 <= cover <= 0.99, (delta, cover)
    assert out[0.0][1] <= 0.09  # false positives at the 5% level
    assert out[3.0][1] >= out[0.0][1]
    print(f"coverage/decided: Δ=0 {out[0.0]}, Δ=3 {out[3.0]}")


def test_a_seed_spread_that_drowns_the_difference_is_reported_as_such():
    c = cmp.compare(_runs(np.random.default_rng(1), 0.0), "t", "top1")
    assert not c.decided and "would go unseen" in c.verdict() and c.seed_share > 0.3
    assert c.seeds_for(3.0) > 3 and c.detectable(c.seeds_for(3.0)) <= 3.0


def test_a_large_difference_is_decided_and_named():
    c = cmp.compare(_runs(np.random.default_rng(2), 25.0, sd_seed=0.05), "t", "top1")
    assert c.decided and c.verdict("A", "B").startswith("A better than B by")


def test_sign_flip_p_equals_scipys_exact_paired_permutation_test():
    from scipy import stats

    rng = np.random.default_rng(3)
    for n in (6, 10, 14):
        a, b = rng.random(n), rng.random(n) + 0.2
        ref = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                                     n_resamples=np.inf, alternative="two-sided").pvalue
        assert cmp.sign_flip_p(a - b) == pytest.approx(ref, abs=1e-12), n


def test_a_sampled_sign_flip_p_is_never_zero():
    x = np.full(500, 1.0) + np.random.default_rng(0).normal(0, 0.1, 500)  # no flip comes near the observed mean
    assert cmp.sign_flip_p(x, resamples=1000) == pytest.approx(1 / 1001)


def test_per_video_outputs_are_written_and_read_back_exactly(tmp_path):
    outputs = {"digits-appearance": {"ids": ["test_00000", "test_00001"], "label": [3, 7],
                                     "views": {"all": {"pred": [3, 1], "true_rank": [1, 4], "true_score": [0.91, 0.02]},
                                               "1view": {"pred": [2, 7], "true_rank": [2, 1], "true_score": [0.3, 0.8]}}},
               "digits-captions": {"ids": ["a", "b"], "label": [0, 1], "views": {"all": {"t2v_rank": [1, 3],
                                                                                       "v2t_rank": [2, 1]}}}}
    name = write_outputs(tmp_path, "rec1", outputs)
    assert load_outputs({"id": "rec1", "per_video": {"file": name, "version": 1}}, tmp_path) == outputs
    assert hits(outputs["digits-appearance"], "top1") == (["test_00000", "test_00001"], [1, 0])
    assert hits(outputs["digits-appearance"], "top5") == (["test_00000", "test_00001"], [1, 1])
    assert hits(outputs["digits-appearance"], "top1_1view")[1] == [0, 1]
    assert hits(outputs["digits-captions"], "t2v_R@1")[1] == [1, 0]
    with pytest.raises(ConfigError, match="no per-video form"):
        hits(outputs["digits-appearance"], "MedR")


def _record(tmp_path, rid: str, method: str, seed: int, hits_: list[int], per_video: bool = True) -> dict:
    rec = {"id": rid, "method": method, "protocol": "linear-cached", "profile": "embedded", "seed": seed,
           "tasks": ["digits-motion"], "finished": rid, "identity": {"encoder": {}, "protocol": {}}}
    if per_video:
        view = {"pred": [0 if h else 1 for h in hits_], "true_rank": [1 if h else 2 for h in hits_],
                "true_score": [0.5] * len(hits_)}
        out = {"digits-motion": {"ids": [f"v{i}" for i in range(len(hits_))], "label": [0] * len(hits_),
                                 "views": {"all": view}}}
        rec["per_video"] = {"file": write_outputs(tmp_path, rid, out), "version": 1}
    (tmp_path / f"{rid}.json").write_text(json.dumps(rec))
    return rec


def test_leaderboard_ranks_share_a_place_when_a_row_is_not_significantly_worse(tmp_path):
    """Three rows, 3 seeds each, 40 videos: `strong` hits ~90%, `close` ~88% (not separable), `weak` ~20%:
    strong and close share rank 1, weak is rank 3; a row without per-video outputs is not ranked."""
    rng = np.random.default_rng(0)
    rows = {}
    for name, p in (("strong", 0.9), ("close", 0.88), ("weak", 0.2)):
        rows[name] = [_record(tmp_path, f"{name}{s}", name, s, list((rng.random(40) < p).astype(int))) for s in range(3)]
    rows["old"] = [_record(tmp_path, "old0", "old", 0, [1] * 40, per_video=False)]
    ranks = cmp.tie_ranks(rows, "digits-motion", "top1", tmp_path)
    assert ranks == {"strong": 1, "close": 1, "weak": 3, "old": None}


def test_an_old_record_without_outputs_is_named_in_one_line(tmp_path):
    a = [_record(tmp_path, "new0", "new", 0, [1, 0, 1])]
    b = [_record(tmp_path, "old0", "old", 0, [1, 1, 1], per_video=False)]
    with pytest.raises(ConfigError, match="old0 .*keeps no per-video outputs"):
        cmp.pair(a, b, "digits-motion", "top1", tmp_path)


def test_holm_adjustment_against_a_hand_computation():
    assert cmp.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_a_selector_that_mixes_settings_is_named_and_default_selects_the_plain_runs(tmp_path):
    plain = _record(tmp_path, "p0", "rho_byol", 0, [1, 0, 1])
    low = _record(tmp_path, "l0", "rho_byol", 0, [1, 1, 1])
    low["identity"] = {"encoder": {}, "protocol": {"protocols.linear-cached.train_per_class": 10}}
    both = cmp.select([plain, low], cmp.parse_selector("rho_byol"))
    from harness.report.leaderboard import variants

    assert len(both) == 2 and variants(both) == ["rho_byol", "rho_byol [protocols.linear-cached.train_per_class=10]"]
    assert cmp.select([plain, low], cmp.parse_selector("rho_byol,train_per_class=default")) == [plain]
    assert cmp.select([plain, low], cmp.parse_selector("rho_byol,train_per_class=10")) == [low]
