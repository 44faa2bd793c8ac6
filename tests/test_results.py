"""Run records are written atomically and completely; tables are derived from them."""
from __future__ import annotations

import json
import multiprocessing as mp

from harness.results import format_table, leaderboard, load_records, write_record


def _rec(method: str, task_scores: dict, seed: int = 0, profile: str = "embedded", epochs: int = 90) -> dict:
    return {"method": method, "protocol": "linear", "profile": profile, "seed": seed, "backbone": "small3d",
            "config": {"run": {"seed": seed}, "pretrain": {"epochs": epochs, "lr": 0.001}},
            "results": [{"task": t, "metrics": {"top1": v, "top5": 100.0}} for t, v in task_scores.items()]}


def _write(args):
    directory, i = args
    write_record(_rec(f"m{i % 3}", {"a": float(i)}, seed=i), directory)


def test_concurrent_writers_lose_nothing(tmp_path):
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_write, [(tmp_path, i) for i in range(24)])
    files = list(tmp_path.iterdir())
    assert len(files) == 24 and all(f.suffix == ".json" for f in files)
    assert sorted(r["seed"] for r in load_records(tmp_path)) == list(range(24))


def test_reader_skips_temp_and_broken_files(tmp_path):
    write_record(_rec("rho_byol", {"a": 50.0}), tmp_path)
    (tmp_path / ".half.123.tmp").write_text('{"method": ')
    (tmp_path / "broken.json").write_text('{"method": ')
    assert [r["method"] for r in load_records(tmp_path)] == ["rho_byol"]


def test_leaderboard_pivots_and_averages_seeds():
    recs = [_rec("rho_byol", {"digits-appearance": 40.0, "digits-motion": 90.0}, seed=0),
            _rec("rho_byol", {"digits-appearance": 50.0, "digits-motion": 80.0}, seed=1),
            _rec("random_init", {"digits-appearance": 20.0, "digits-motion": 60.0}),
            _rec("random_init", {"digits-appearance": 99.0}, profile="ci")]
    board = leaderboard(recs, profile="embedded")
    assert board.loc[("embedded", "rho_byol"), "linear:digits-appearance"] == 45.0
    assert board.loc[("embedded", "rho_byol"), "runs"] == 2
    assert board.loc[("embedded", "random_init"), "linear:digits-motion"] == 60.0
    md = format_table(board)
    assert md.splitlines()[0].startswith("| profile | method |") and "45.0" in md
    assert "rho_byol" in format_table(board, "csv")
    assert json.loads(json.dumps(recs))  # records are plain JSON


def test_leaderboard_keeps_different_settings_apart():
    """Seeds average into one row; a run with another schedule gets its own row, named by what differs."""
    recs = [_rec("rho_byol", {"a": 40.0}, seed=0), _rec("rho_byol", {"a": 50.0}, seed=1),
            _rec("rho_byol", {"a": 70.0}, epochs=120), _rec("random_init", {"a": 20.0})]
    board = leaderboard(recs)
    assert board.loc[("embedded", "rho_byol [pretrain.epochs=90]"), "linear:a"] == 45.0
    assert board.loc[("embedded", "rho_byol [pretrain.epochs=90]"), "runs"] == 2
    assert board.loc[("embedded", "rho_byol [pretrain.epochs=120]"), "linear:a"] == 70.0
    assert board.loc[("embedded", "random_init"), "runs"] == 1
