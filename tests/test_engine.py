"""The training loop: schedule, LARS, atomic checkpoints, exact resume, the non-finite guard."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.nn as nn

from harness.config import load_config
from harness.engine import NonFiniteLossError, train
from harness.errors import ConfigError
from harness.optim import LARS, lr_at, param_groups, scaled_lr
from harness.storage import atomic_save


def test_lr_schedule_warmup_then_cosine():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_lr_schedule_of_the_rho_configs_is_one_cosine_that_the_warmup_joins():
    """PySlowFast with COSINE_AFTER_WARMUP=False: the cosine spans the whole run; warm-up ends on it."""
    def curve(s):
        return 0.5 * (1 + math.cos(math.pi * s / 100))

    assert lr_at(9, 100, 10, 1.0, "cosine") == pytest.approx(curve(10))  # the warm-up's last step meets it
    assert lr_at(4, 100, 10, 1.0, "cosine") == pytest.approx(curve(10) * 5 / 10)  # linear below it
    for s in (10, 35, 50, 99):
        assert lr_at(s, 100, 10, 1.0, "cosine") == pytest.approx(curve(s))
    assert lr_at(50, 100, 10, 1.0, "cosine") < lr_at(50, 100, 10, 1.0, "cosine-after-warmup")
    with pytest.raises(ValueError, match="unknown LR schedule"):
        lr_at(0, 100, 10, 1.0, "step")


def test_linear_scaling_rule():
    cfg = load_config("paper").pretrain
    assert cfg.lr_batch == 512 and scaled_lr(cfg) == pytest.approx(4.8)
    small = load_config("paper", ["pretrain.batch_size=64"]).pretrain
    assert scaled_lr(small) == pytest.approx(4.8 * 64 / 512)
    assert scaled_lr(load_config("ci").pretrain) == load_config("ci").pretrain.lr  # lr_batch = 0: as given


def _lars_by_hand(w, g, lr, m, wd, trust, nesterov, steps):
    """LARS written out in plain floats: d = trust*|w|/(|g|+wd|w|) * (g + wd w); buf = m buf + d;
    w -= lr * (d + m buf) with Nesterov, lr * buf without."""
    w, buf = list(w), None
    for _ in range(steps):
        wn, gn = math.sqrt(sum(x * x for x in w)), math.sqrt(sum(x * x for x in g))
        scale = trust * wn / (gn + wd * wn)
        d = [(gi + wd * wi) * scale for gi, wi in zip(g, w)]
        buf = d if buf is None else [m * b + di for b, di in zip(buf, d)]
        step = [di + m * b for di, b in zip(d, buf)] if nesterov else buf
        w = [wi - lr * si for wi, si in zip(w, step)]
    return w


@pytest.mark.parametrize("nesterov", [True, False])
def test_lars_matches_a_hand_computation_with_momentum_and_weight_decay(nesterov):
    w = nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    opt = LARS([{"params": [w], "lars": True, "weight_decay": 0.1}], lr=0.5, momentum=0.9, trust=0.01,
               nesterov=nesterov)
    g = [0.6, -0.8]
    for _ in range(3):
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    expect = _lars_by_hand([3.0, 4.0], g, 0.5, 0.9, 0.1, 0.01, nesterov, 3)
    assert w.tolist() == pytest.approx(expect, rel=1e-12)
    # step one by hand: scale = 0.01*5/(1+0.5) = 1/30, d = (g + 0.1 w)/30 = [0.03, 0.04/3 - ...]
    first = _lars_by_hand([3.0, 4.0], g, 0.5, 0.9, 0.1, 0.01, nesterov, 1)
    d = [(0.6 + 0.3) / 30, (-0.8 + 0.4) / 30]
    k = 1.9 if nesterov else 1.0
    assert first == pytest.approx([3.0 - 0.5 * k * d[0], 4.0 - 0.5 * k * d[1]], rel=1e-12)


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
    from harness.builders import build_encoder
    from harness.optim import build_optimizer

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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "ck.pt.sha256"]  # and its checksum


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

    def before_step(self, info):
        pass

    def before_optimizer_step(self, info):
        pass

    def after_step(self, info):
        pass


def _batches(seed: int, total: int):
    g = torch.Generator().manual_seed(seed)
    data = [torch.randn(8, 4, generator=g) for _ in range(total)]
    return lambda start: ({"clips": data[i].clone(), "bad": []} for i in range(start, total))


class NoisyToy(Toy):
    """A toy whose loss draws from torch's global RNG, as dropout or augmentation on the device would."""

    def losses(self, batch):
        noise = torch.rand(batch["clips"].shape) * 0.5
        x = batch["clips"] + noise
        return {"loss": (self.lin(x).squeeze(-1) - batch["clips"].sum(-1)).pow(2).mean()}


def _sampled(n=20, batch=4, epochs=3, seed=5, bad_steps=()):
    """Batches drawn by the real (epoch, index) sampler from a fixed table of rows; `bad_steps` come
    back with every video unreadable, as a batch of broken files does."""
    from harness.data.sampling import EpochBatches

    rows = torch.randn(n, 4, generator=torch.Generator().manual_seed(9))
    total = EpochBatches(n, batch, epochs, seed).total_steps

    def make(start):
        for step, keys in enumerate(EpochBatches(n, batch, epochs, seed, start), start):
            if step in bad_steps:
                yield {"bad": [(f"v{i}.mp4", "cannot decode") for _, i in keys]}
            else:
                yield {"clips": rows[[i for _, i in keys]].clone(), "bad": []}
    return make, total


def _kill_after(make, steps):
    def dying(start):
        for i, b in enumerate(make(start)):
            if i == steps:
                raise KeyboardInterrupt
            yield b
    return dying


@pytest.mark.parametrize("bad_steps", [(), (4, 9)])
def test_resume_reaches_the_same_weights(tmp_path, bad_steps):
    """Killed after step 7 (last checkpoint at 6) and resumed in a fresh process state: the same weights
    as an uninterrupted run, which needs the model, optimiser, global RNG and sampler position restored,
    also when whole batches were unreadable."""
    cfg = load_config("ci", ["pretrain.checkpoint_every=3", "pretrain.optimizer='sgd'", "pretrain.lr=0.05"]).pretrain
    cpu = torch.device("cpu")
    make, total = _sampled(bad_steps=bad_steps)
    torch.manual_seed(0)
    ref = NoisyToy()
    ref_stats = train(ref, make, total, 1, cfg, cpu, tmp_path / "ref.pt", False, progress=False)
    assert ref_stats.steps == total  # unreadable batches count as steps
    from harness.data.sampling import EpochBatches

    batches = list(EpochBatches(20, 4, 3, 5))
    assert set(ref_stats.bad_videos) == {f"v{i}.mp4" for s in bad_steps for _, i in batches[s]}
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(NoisyToy(), _kill_after(make, 7), total, 1, cfg, cpu, tmp_path / "k.pt", False, progress=False)
    assert torch.load(tmp_path / "k.pt", weights_only=False)["step"] == 6
    torch.manual_seed(123)  # a fresh process: different init and RNG, restored from the checkpoint
    torch.rand(17)
    resumed = NoisyToy()
    messages = []
    stats = train(resumed, make, total, 1, cfg, cpu, tmp_path / "k.pt", True, progress=False, log=messages.append)
    assert stats.resumed_from_step == 6 and stats.steps == total
    assert messages == [f"resuming from step 6 of {total} ({tmp_path / 'k.pt'})"]
    for a, b in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert stats.loss_curve == ref_stats.loss_curve


RESUME_CFG = ["pretrain.checkpoint_every=3", "pretrain.optimizer='sgd'", "pretrain.lr=0.05"]


def _reference_and_killed(make, total, tmp_path):
    """An uninterrupted run of NoisyToy and one killed after step 7 (its checkpoint at step 6), both from seed 0;
    returns the reference model and the config."""
    cfg = load_config("ci", RESUME_CFG).pretrain
    torch.manual_seed(0)
    ref = NoisyToy()
    train(ref, make, total, 1, cfg, torch.device("cpu"), tmp_path / "ref.pt", False, progress=False)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(NoisyToy(), _kill_after(make, 7), total, 1, cfg, torch.device("cpu"), tmp_path / "k.pt", False,
              progress=False)
    return ref, cfg


def test_resume_without_the_rng_state_would_differ(tmp_path):
    """The check above can fail: restoring everything but the RNG gives other weights."""
    make, total = _sampled()
    ref, cfg = _reference_and_killed(make, total, tmp_path)
    state = torch.load(tmp_path / "k.pt", weights_only=False)
    torch.manual_seed(123)
    state["rng"]["torch"] = torch.get_rng_state()
    atomic_save(state, tmp_path / "k.pt")  # with its checksum: a file edited behind the harness's back is not resumed
    resumed = NoisyToy()
    stats = train(resumed, make, total, 1, cfg, torch.device("cpu"), tmp_path / "k.pt", True, progress=False)
    assert stats.resumed_from_step == 6
    assert any(not torch.equal(a, b) for a, b in zip(ref.parameters(), resumed.parameters()))


def test_resume_is_exact_when_the_loader_draws_from_the_global_rng(tmp_path):
    """A DataLoader's iterator draws its base seed from the global RNG when it starts: restored before that
    draw, a resumed run would train on another random stream than the uninterrupted one (dropout, noise)."""
    from torch.utils.data import DataLoader

    from harness.data.sampling import EpochBatches

    rows = torch.randn(20, 4, generator=torch.Generator().manual_seed(9))
    total = EpochBatches(20, 4, 3, 5).total_steps

    def make(start):
        return DataLoader(rows, batch_sampler=[[i for _, i in b] for b in EpochBatches(20, 4, 3, 5, start)],
                          collate_fn=lambda xs: {"clips": torch.stack(xs), "bad": []})

    ref, cfg = _reference_and_killed(make, total, tmp_path)
    torch.manual_seed(123)
    resumed = NoisyToy()
    train(resumed, make, total, 1, cfg, torch.device("cpu"), tmp_path / "k.pt", True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), resumed.parameters()))


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    cfg = load_config("ci", ["pretrain.checkpoint_every=2"]).pretrain
    ck = tmp_path / "ck.pt"
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 5 .*Last good checkpoint: .*ck.pt"):
        train(Toy(poison_at=5), _batches(0, 10), 10, 1, cfg, torch.device("cpu"), ck, False, progress=False)
    state = torch.load(ck, weights_only=False)
    assert state["step"] == 4 and all(math.isfinite(v.float().sum()) for v in state["method"].values())


class BlowsUp(Toy):
    """Its BN-like running statistic becomes inf after step `at` while the loss stays finite one step
    longer: what a huge LR does to BN's running variance before the loss overflows."""

    def __init__(self, at):
        super().__init__()
        self.register_buffer("running_var", torch.ones(4))
        self.at, self.seen = at, 0

    def after_step(self, info):
        self.seen += 1
        if self.seen == self.at:
            self.running_var.fill_(float("inf"))


def test_the_last_good_checkpoint_after_a_blow_up_is_finite_and_resumable(tmp_path):
    cfg = load_config("ci", ["pretrain.checkpoint_every=1"]).pretrain
    ck = tmp_path / "ck.pt"
    with pytest.raises(NonFiniteLossError, match=r"non-finite values in running_var after step 3; .*Last good "
                                                 r"checkpoint: .*ck.pt"):
        train(BlowsUp(at=3), _batches(0, 10), 10, 1, cfg, torch.device("cpu"), ck, False, progress=False)
    state = torch.load(ck, weights_only=False)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["method"].values())
    stats = train(BlowsUp(at=-1), _batches(0, 10), 10, 1, cfg, torch.device("cpu"), ck, True, progress=False)
    assert stats.resumed_from_step == 2 and stats.steps == 10


def test_scalar_log_keeps_each_step_once_across_a_resume(tmp_path):
    import csv

    from harness.runlog import CSV_NAME, ScalarLog

    log = ScalarLog(tmp_path)
    for step in (2, 4, 6):
        log.add(step, {"loss": 1.0 / step, "lr": 0.1})
    log.close()  # killed after step 6; its last checkpoint was at step 4
    log = ScalarLog(tmp_path, resume_step=4)
    log.add(6, {"loss": 0.5, "lr": 0.1})
    log.close()
    rows = list(csv.DictReader(open(tmp_path / CSV_NAME)))
    assert [(int(r["step"]), r["name"]) for r in rows] == [(2, "loss"), (2, "lr"), (4, "loss"), (4, "lr"),
                                                           (6, "loss"), (6, "lr")]
    assert rows[4]["value"] == "0.5" and list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.e2e
def test_bench_perf_times_compute_loader_and_the_full_step(tmp_path, cache_dir, ci_manifest, capsys):
    from harness.cli import main

    rc = main(["perf", "-p", "ci", "--modes", "fp32,bf16", "--workers", "0", "--steps", "2", "--warmup", "1",
               "--set", f"run.cache_dir={str(cache_dir)!r}", "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| compute only, fp32 |" in out and "| 1.00x |" in out and "| loader only, workers=0 |" in out
    assert "full step (fp32, workers=0)" in out
    (path,) = (tmp_path / "perf").glob("*.json")
    body = json.loads(path.read_text())
    assert body["compute"]["fp32"]["clips_per_s"] > 0 and body["full"]["workers"] == 0
    assert main(["perf", "-p", "ci", "--modes", "fp64"]) == 2


def test_the_leaderboard_shows_the_newest_perf_figures(tmp_path):
    from harness.report.throughput import load_perf, perf_table

    (tmp_path / "perf").mkdir()
    for k, rate in enumerate((100.0, 200.0)):
        body = {"kind": "perf", "method": "rho_byol", "backbone": "small3d", "profile": "ci", "dataset": "moving-digits",
                "compute": {"fp32": {"clips_per_s": rate, "peak_gb": 0.5}, "bf16": {"error": "x"}},
                "loader": {"workers=0": {"clips_per_s": 50.0}, "workers=2": {"clips_per_s": 90.0}},
                "full": {"clips_per_s": 40.0, "data_wait_fraction": 0.25}, "versions": {}}
        (tmp_path / "perf" / f"2026-{k}.json").write_text(json.dumps(body))
    (tmp_path / "perf" / "junk.json").write_text("{")
    table = perf_table(load_perf(tmp_path))
    row = "| rho_byol | small3d | ci | moving-digits | cpu | fp32 200 (0.5), bf16 failed | 90 (workers=2) | 40 (25%) |"
    assert row in table
    assert perf_table([]) == ""


def test_a_schedule_counted_in_updates():
    """`pretrain.steps` fixes the number of updates whatever the dataset's size (VIMPAC: 12K, VATT: 500K),
    continuing the per-epoch permutations past the last whole epoch; `warmup_steps` counts the warm-up in
    updates. At their default (0) they leave the encoder's key alone."""
    from harness.data.sampling import EpochBatches

    by_epochs = EpochBatches(10, 4, 3, seed=0)
    by_steps = EpochBatches(10, 4, 3, seed=0, steps=7)
    assert by_epochs.total_steps == 6 and by_steps.total_steps == 7 and len(list(by_steps)) == 7
    assert list(by_steps)[:6] == list(by_epochs)  # the same order, one update more
    assert list(EpochBatches(10, 4, 3, seed=0, start_step=5, steps=7)) == list(by_steps)[5:]
    base = load_config("ci")
    assert "pretrain.steps" not in base.encoder_identity(True)
    cfg = load_config("ci", ["pretrain.steps=40", "pretrain.warmup_steps=4"])
    assert cfg.encoder_identity(True)["pretrain.steps"] == 40
    assert cfg.pretrain_key("cpu", "fp32", "1.1") != base.pretrain_key("cpu", "fp32", "1.1")
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_config("ci", ["pretrain.steps=4", "pretrain.warmup_steps=5"])


def test_a_full_disk_inside_a_write_is_exit_5_and_killed_writers_temp_files_are_swept(tmp_path):
    """torch.save hitting ENOSPC becomes a StorageError (exit 5) naming the file, the target unchanged and its
    temp file gone; temp files of writers killed mid-write (their pid gone) are removed by the next write."""
    import errno

    from harness.errors import StorageError
    from harness.storage import atomic_write, sweep_temp

    path = tmp_path / "enc.pt"
    atomic_save({"a": torch.ones(2)}, path)

    def full(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match=r"enc.pt could not be written \(no space left on the device\)") as e:
        atomic_write(path, full, binary=True)
    assert e.value.exit_code == 5 and torch.equal(torch.load(path)["a"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.pt", "enc.pt.sha256"]
    dead = tmp_path / ".enc.pt.999999999.tmp"  # no such process
    mine = tmp_path / f".other.json.{os.getpid()}.tmp"
    dead.write_bytes(b"half"), mine.write_bytes(b"in progress")
    atomic_save({"a": torch.zeros(2)}, path)
    assert not dead.exists() and mine.exists()
    assert sweep_temp(tmp_path) == 0 and mine.exists()


def test_the_whole_job_line_estimates_what_is_left(monkeypatch):
    from harness import progress

    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    clock = progress.JobClock(4, [60.0, None, 60.0, None])
    # from what earlier records tell; the untimed steps guessed at the mean of the timed ones
    assert clock.line(1, "a") == "[1/4] a (0 s so far, about 4 min in all; 2 steps not timed before)"
    now[0] += 300  # step a took 5x its estimate: so will c; b and d are guessed at the 5 min steps took
    assert clock.line(2, "b") == "[2/4] b (5 min so far, about 15 min left; 2 steps not timed before)"
    # a cheap step done first does not make an expensive one ahead look cheap
    clock = progress.JobClock(3, [60.0, 600.0, 60.0])
    clock.line(1, "a")
    now[0] += 60
    assert clock.line(2, "b") == "[2/3] b (60 s so far, about 11 min left)"
    assert progress.JobClock(2).line(1, "x") == "[1/2] x (0 s so far)"
