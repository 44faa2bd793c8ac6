"""Run records are written atomically and completely; the leaderboard groups, dedupes and labels them."""
from __future__ import annotations

import json
import math
import multiprocessing as mp

import pytest

from harness.errors import ConfigError, StorageError
from harness.report.leaderboard import format_table, leaderboard, variant_labels
from harness.report.records import load_records, write_record


def _rec(method: str, scores: dict, seed: int = 0, profile: str = "embedded", protocol: str = "linear",
         pre: dict | None = None, proto: dict | None = None, code: tuple = ("1.1", "1.1"), bad=()) -> dict:
    """A record as the runner writes it; `pre`/`proto` override identity settings."""
    pretrains = method != "random_init"
    enc = {"backbone.name": "small3d", "backbones.small3d.width": 16}
    if pretrains:
        enc |= {f"methods.{method}.rho": 4, "pretrain.epochs": 90, "pretrain.lr": 0.001} | (pre or {})
    ident = {f"protocols.{protocol}.epochs": 60} | (proto or {})
    return {"method": method, "protocol": protocol, "profile": profile, "seed": seed, "backbone": "small3d",
            "identity": {"encoder": enc, "protocol": ident},
            "code_version": {"pretrain": code[0] if pretrains else None, "protocol": code[1]},
            "unreadable_videos": list(bad),
            "results": [{"task": t, "metrics": {"top1": v, "top5": 100.0}} for t, v in scores.items()]}


def _write(args):
    directory, i = args
    write_record(_rec(f"m{i % 3}", {"a": float(i)}, seed=i), directory)


def test_concurrent_writers_lose_nothing(tmp_path):
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_write, [(tmp_path, i) for i in range(24)])
    files = list(tmp_path.iterdir())
    assert len(files) == 24 and all(f.suffix == ".json" for f in files)
    records, skipped = load_records(tmp_path)
    assert sorted(r["seed"] for r in records) == list(range(24)) and not skipped


def test_reader_skips_temp_broken_and_stray_files_and_says_why(tmp_path):
    write_record(_rec("rho_byol", {"a": 50.0}), tmp_path)
    (tmp_path / ".half.123.tmp").write_text('{"method": ')
    (tmp_path / "broken.json").write_text('{"method": ')
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "latin1.json").write_bytes(b'{"m": "\xe9"}')
    records, skipped = load_records(tmp_path)
    assert [r["method"] for r in records] == ["rho_byol"]
    assert len(skipped) == 4 and all("\n" not in s for s in skipped)
    assert any(s.startswith("notes.json: not a run record") for s in skipped)
    assert any(s.startswith("broken.json: not valid JSON") for s in skipped)


def test_a_results_path_that_is_a_file_is_a_storage_error(tmp_path):
    (tmp_path / "runs").write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        load_records(tmp_path / "runs")
    with pytest.raises(StorageError, match="cannot be created"):
        write_record(_rec("rho_byol", {"a": 1.0}), tmp_path / "runs" / "sub")


def test_leaderboard_averages_seeds_with_a_t_interval():
    recs = [_rec("rho_byol", {"app": 40.0, "mot": 90.0}, seed=0),
            _rec("rho_byol", {"app": 50.0, "mot": 80.0}, seed=1),
            _rec("rho_byol", {"app": 60.0, "mot": 85.0}, seed=2),
            _rec("random_init", {"app": 20.0, "mot": 60.0}),
            _rec("random_init", {"app": 99.0}, profile="ci")]
    board = leaderboard(recs, profile="embedded")
    row = ("embedded", "rho_byol [rho=4]")  # a method's ρ is always named
    assert board.mean.loc[row, "linear:app"] == 50.0 and board.seeds.loc[row] == 3
    # sd of (40, 50, 60) = 10; t(0.975, 2) = 4.3027; half-width = 4.3027 * 10 / sqrt(3)
    assert board.ci95.loc[row, "linear:app"] == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-5)
    assert math.isnan(board.ci95.loc[("embedded", "random_init"), "linear:app"])
    md = format_table(board)
    assert md.splitlines()[0] == "| profile | method | pre-train | linear:app | linear:mot | seeds |"
    assert "| embedded | rho_byol [rho=4] | 90 ep | 50.0 ± 24.8 | 85.0 ± 12.4 | 3 |" in md
    assert "| embedded | random_init |  | 20.0 | 60.0 | 1 |" in md and "Backbone: small3d." in md
    csv = format_table(board, "csv").splitlines()
    assert csv[0] == "profile,method,variant,backbone,pretrain,protocol,task,mean,ci95,seeds,boot_low,boot_high,rank"
    assert "embedded,rho_byol,rho=4,small3d,90 ep,linear,app,50,24.8414,3,,," in csv


def test_a_one_seed_cell_shows_its_bootstrap_interval_over_test_videos():
    one = _rec("rho_byol", {"app": 40.0, "mot": 90.0})
    one["results"][0]["ci95"] = {"top1": [31.5, 48.25]}
    two = [_rec("rho_simclr", {"app": 40.0}, seed=0), _rec("rho_simclr", {"app": 50.0}, seed=1)]
    for r in two:
        r["results"][0]["ci95"] = {"top1": [1.0, 99.0]}
    board = leaderboard([one, *two])
    md = format_table(board)
    assert "| embedded | rho_byol [rho=4] | 90 ep | 40.0 [31.5, 48.2] | 90.0 |" in md  # mot: a record without a CI
    assert "| embedded | rho_simclr [rho=4] | 90 ep | 45.0 ± 63.5 |" in md  # two seeds: the interval over seeds
    assert "embedded,rho_byol,rho=4,small3d,90 ep,linear,app,40,,1,31.5,48.25," in format_table(board, "csv").splitlines()


def test_reruns_of_one_seed_count_once():
    """Two runs of seed 0 and one of seed 1: seed 0's runs are averaged first, then the two seeds."""
    recs = [_rec("rho_byol", {"app": 40.0}, seed=0), _rec("rho_byol", {"app": 44.0}, seed=0),
            _rec("rho_byol", {"app": 60.0}, seed=1)]
    board = leaderboard(recs)
    assert board.mean.loc[("embedded", "rho_byol [rho=4]"), "linear:app"] == 51.0  # (42 + 60) / 2, not 48
    assert board.seeds.loc[("embedded", "rho_byol [rho=4]")] == 2


def test_variants_get_their_own_rows_named_by_what_differs():
    recs = [_rec("rho_byol", {"a": 40.0}, seed=0), _rec("rho_byol", {"a": 50.0}, seed=1),
            _rec("rho_byol", {"a": 70.0}, pre={"pretrain.epochs": 120}), _rec("random_init", {"a": 20.0})]
    board = leaderboard(recs)
    assert board.mean.loc[("embedded", "rho_byol [rho=4, pretrain.epochs=90]"), "linear:a"] == 45.0
    assert board.seeds.loc[("embedded", "rho_byol [rho=4, pretrain.epochs=90]")] == 2
    assert board.mean.loc[("embedded", "rho_byol [rho=4, pretrain.epochs=120]"), "linear:a"] == 70.0
    assert board.seeds.loc[("embedded", "random_init")] == 1


def test_another_backbone_is_named_without_the_clip_shape_it_brings():
    small, vimpac = _rec("random_init", {"a": 20.0}), _rec("random_init", {"a": 10.0})
    small["identity"]["encoder"]["backbone.clip.frames"] = 8
    vimpac["identity"]["encoder"] = {"backbone.name": "vimpac", "backbone.clip.frames": 5, "backbones.vimpac.size": "tiny"}
    assert variant_labels([small, vimpac]) == ["backbone.name=small3d", "backbone.name=vimpac"]


def test_code_versions_are_never_averaged_together():
    recs = [_rec("rho_byol", {"a": 40.0}, code=("1.1", "1.1")), _rec("rho_byol", {"a": 60.0}, seed=1, code=("1.2", "1.1")),
            _rec("rho_byol", {"a": 50.0}, seed=2, code=("1.1", "2.1"))]
    labels = variant_labels(recs)
    assert labels == ["rho=4, code.linear=1.1, code.pretrain=1.1", "rho=4, code.linear=1.1, code.pretrain=1.2",
                      "rho=4, code.linear=2.1, code.pretrain=1.1"]
    assert len(leaderboard(recs).mean) == 3


def test_labels_ignore_other_methods_other_protocols_and_missing_pretraining():
    recs = [
        _rec("rho_byol", {"a": 40.0}, seed=0),
        _rec("rho_byol", {"a": 41.0}, seed=1),
        _rec("rho_byol", {"a": 42.0}, seed=0, protocol="knn", proto={"protocols.knn.k": 20}),
        _rec("rho_simclr", {"a": 30.0}, pre={"methods.rho_simclr.rho": 2}),  # another method's keys
        _rec("random_init", {"a": 20.0}),
        _rec("random_init", {"a": 21.0}, seed=1, code=("9.9", "1.1")),  # no pre-training: its version is moot
    ]
    assert variant_labels(recs) == ["rho=4"] * 3 + ["rho=2", "", ""]  # ρ always; nothing else differs
    board = leaderboard(recs)
    assert list(board.mean.columns) == ["knn:a", "linear:a"]
    assert board.mean.loc[("embedded", "rho_byol [rho=4]"), "knn:a"] == 42.0
    assert board.mean.loc[("embedded", "random_init"), "linear:a"] == 20.5


def test_an_option_left_at_its_default_is_a_variant_of_its_own():
    """Identities name an option with a default only when it is set (`input = "audio"`, a low-shot
    fraction): the runs that leave it out ran the default and are not averaged with the others."""
    recs = [_rec("vatt", {"a": 10.0}, protocol="linear-cached"),
            _rec("vatt", {"a": 100.0}, protocol="linear-cached", proto={"protocols.linear-cached.input": "audio"}),
            _rec("vatt", {"a": 12.0}, protocol="knn")]
    assert variant_labels(recs) == ["rho=4", "rho=4, protocols.linear-cached.input=audio", "rho=4"]
    board = leaderboard(recs).mean
    assert board.loc[("embedded", "vatt [rho=4]"), "linear-cached:a"] == 10.0  # not averaged with the audio run
    assert board.loc[("embedded", "vatt [rho=4]"), "knn:a"] == 12.0


def test_unreadable_videos_show_in_the_row():
    recs = [_rec("rho_byol", {"a": 40.0}, bad=["/d/x.mp4"]), _rec("rho_byol", {"a": 50.0}, seed=1, bad=["/d/x.mp4"])]
    md = format_table(leaderboard(recs))
    assert md.splitlines()[0].endswith("| seeds | notes |") and "1 unreadable videos left out" in md


def test_unknown_metric_or_profile_says_what_exists():
    recs = [_rec("rho_byol", {"a": 40.0})]
    with pytest.raises(ConfigError, match="'top2' is not in the records; they have: top1, top5"):
        leaderboard(recs, metric="top2")
    with pytest.raises(ConfigError, match="no runs with profile 'paper'; runs exist for: embedded"):
        leaderboard(recs, profile="paper")
    assert json.loads(json.dumps(recs))  # records are plain JSON


def test_leaderboard_filters_by_method_protocol_task_and_settings():
    from harness.report.leaderboard import filter_records

    recs = [_rec("rho_byol", {"app": 40.0, "mot": 90.0}), _rec("rho_byol", {"app": 30.0}, pre={"methods.rho_byol.rho": 2}),
            _rec("rho_simclr", {"app": 50.0}), _rec("random_init", {"app": 20.0}, protocol="knn")]
    assert [r["method"] for r in filter_records(recs, methods=["rho_byol"])] == ["rho_byol", "rho_byol"]
    assert [r["method"] for r in filter_records(recs, protocols=["knn"])] == ["random_init"]
    only = filter_records(recs, only="method=rho_byol,rho=2")
    assert len(only) == 1 and only[0]["results"][0]["metrics"]["top1"] == 30.0
    tasks = filter_records(recs, tasks=["mot"])
    assert len(tasks) == 1 and [t["task"] for t in tasks[0]["results"]] == ["mot"]
    assert list(leaderboard(tasks).mean.columns) == ["linear:mot"]


def test_leaderboard_csv_reads_back_with_commas_and_quotes_in_labels():
    import csv
    import io

    import pandas as pd

    odd = _rec("rho_byol", {"app": 40.0}, pre={"pretrain.init.encoder": 'run:rho_simclr;note="a, b"'})
    plain = _rec("rho_byol", {"app": 50.0}, seed=1)
    text = format_table(leaderboard([odd, plain]), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["variant"] for r in rows} == {'rho=4, pretrain.init.encoder=run:rho_simclr;note="a, b"', "rho=4"}
    assert {(r["protocol"], r["task"], r["method"]) for r in rows} == {("linear", "app", "rho_byol")}
    frame = pd.read_csv(io.StringIO(text))
    assert sorted(frame["mean"]) == [40.0, 50.0] and list(frame.columns)[:7] == [
        "profile", "method", "variant", "backbone", "pretrain", "protocol", "task"]
