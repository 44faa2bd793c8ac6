"""Records that never crash a reader: each hostile record (a field of the wrong type, a missing one, a broken
interval) is skipped by `load_records` with one line naming the field, while the sound records beside it
still fill the leaderboard and the paper tables; a NaN metric is shown as NaN, never dropped."""
from __future__ import annotations

import copy
import json
import math

import pytest

from harness.report import paper, tables
from harness.report.filled import fill
from harness.report.leaderboard import format_table, leaderboard
from harness.report.records import load_records, record_problem

RHO = "feichtenhofer2021/rho"


def _good(seed: int = 0, value: float = 40.0) -> dict:
    from harness.config import load_config

    defs = paper.load_definitions()
    exp = paper.experiment(defs, defs.table(RHO), 1, 1, "embedded")
    cfg = load_config("embedded", list(exp.sets), method=exp.method, protocol=exp.protocol, seed=seed)
    _, _, _, versions = paper.expected("embedded", exp)
    return {"id": f"good{seed}", "profile": "embedded", "method": exp.method, "protocol": exp.protocol, "seed": seed,
            "tasks": [exp.task], "identity": {"encoder": cfg.encoder_identity(True), "protocol": cfg.protocol_identity()},
            "code_version": dict(versions), "pretrain": {"seconds": 60.0}, "costs": {"protocol_seconds": 30.0},
            "results": [{"task": exp.task, "metrics": {"top1": value}, "ci95": {"top1": [value - 5, value + 5]}}]}


def _set(path: str, value):
    """A mutation: the field at `path` (dots; [i] for list items) set to `value`, or removed when value is DROP."""
    def apply(rec: dict) -> dict:
        keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
        node = rec
        for k in keys[:-1]:
            node = node[k]
        if value is DROP:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
        return rec
    return apply


DROP = object()
CASES = {
    "results is a string": (_set("results", "top1=40"), "results"),
    "results is null": (_set("results", None), "results"),
    "a result is a list": (_set("results[0]", [1, 2]), "results[0]"),
    "a result has no task": (_set("results[0].task", DROP), "results[0].task"),
    "task is a number": (_set("results[0].task", 3), "results[0].task"),
    "metrics is a list": (_set("results[0].metrics", [40.0]), "results[0].metrics"),
    "metrics is missing": (_set("results[0].metrics", DROP), "results[0].metrics"),
    "a metric is a string": (_set("results[0].metrics.top1", "40.0"), "results[0].metrics"),
    "a metric is a bool": (_set("results[0].metrics.top1", True), "results[0].metrics"),
    "a metric is null": (_set("results[0].metrics.top1", None), "results[0].metrics"),
    "ci95 is a number": (_set("results[0].ci95", 5.0), "results[0].ci95"),
    "an interval is a string": (_set("results[0].ci95.top1", "35-45"), "results[0].ci95"),
    "an interval has three ends": (_set("results[0].ci95.top1", [1.0, 2.0, 3.0]), "results[0].ci95"),
    "an interval holds text": (_set("results[0].ci95.top1", ["a", "b"]), "results[0].ci95"),
    "identity is a string": (_set("identity", "x"), "identity"),
    "identity.encoder is a list": (_set("identity.encoder", [1]), "identity.encoder"),
    "identity.protocol is a number": (_set("identity.protocol", 1), "identity.protocol"),
    "code_version is a list": (_set("code_version", ["1.0"]), "code_version"),
    "code_version.protocol is a number": (_set("code_version.protocol", 1.2), "code_version.protocol"),
    "seed is a string": (_set("seed", "0"), "seed"),
    "seed is a float": (_set("seed", 0.5), "seed"),
    "seed is a bool": (_set("seed", False), "seed"),
    "method is a number": (_set("method", 7), "method"),
    "profile is null": (_set("profile", None), "profile"),
    "protocol is a list": (_set("protocol", ["linear"]), "protocol"),
    "tasks is a string": (_set("tasks", "digits-appearance"), "tasks"),
    "pretrain is a list": (_set("pretrain", [60.0]), "pretrain"),
    "costs is a string": (_set("costs", "cheap"), "costs"),
    "a result's costs hold text": (_set("results[0].costs", {"seconds": "many"}), "results[0].costs"),
    "unreadable_videos is a dict": (_set("unreadable_videos", {"a": 1}), "unreadable_videos"),
    "id is a number": (_set("id", 12), "id"),
    "per_video is a string": (_set("per_video", "x.gz"), "per_video"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_record_with_a_wrong_field_is_skipped_naming_it_and_the_others_still_render(case, tmp_path):
    mutate, field = CASES[case]
    bad = mutate(copy.deepcopy(_good(1, 60.0)))
    for rec, name in ((_good(0), "good0"), (bad, "bad1")):
        (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    records, skipped = load_records(tmp_path)
    assert [r["id"] for r in records] == ["good0"]
    assert len(skipped) == 1 and skipped[0].startswith("bad1.json: field ") and f" {field} " in skipped[0] + " "
    assert "| 40.0 [35.0, 45.0] |" in format_table(leaderboard(records, runs_dir=tmp_path))
    assert "65.8 / 40.0" in tables.markdown(fill(paper.load_definitions().table(RHO), records, "embedded",
                                                  runs_dir=tmp_path))


def test_a_sound_record_passes_and_a_nan_metric_is_shown_not_dropped(tmp_path):
    assert record_problem(_good()) is None
    diverged = _good(1, float("nan"))
    diverged["id"] = "nan1"
    assert record_problem(diverged) is None  # NaN is a number: a diverged run, to be shown
    board = leaderboard([_good(0), diverged])
    assert math.isnan(board.mean.iloc[0, 0])  # one NaN seed makes the cell NaN, never averaged away
    assert "| NaN |" in format_table(board)
    assert ",nan," in format_table(board, "csv")
