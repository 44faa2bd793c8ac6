"""`bench regress`: compares each metric with the stored baseline within its tolerance, fails outside it,
writes baselines with --update and says which changed (the runs are faked here; the e2e test runs one)."""
from __future__ import annotations

import json

from harness.regress import matrix, regress

NOW = {"digits-appearance/top1": 30.0, "digits-motion/top1": 20.0}


def fake(profile, method, protocol, cache, results):
    return dict(NOW)


def test_the_matrix_is_every_pretraining_method_and_the_untrained_row():
    cells = matrix("ci")
    assert ("random_init", "linear-cached") in cells and ("rho_byol", "linear-cached") in cells
    assert all(m != "pretrained" for m, _ in cells) and len(cells) == 9


def test_regress_passes_within_tolerance_and_fails_beyond_it(tmp_path):
    path = tmp_path / "ci.json"
    rows, report = regress("ci", update=True, baseline_path=path, runner=fake)
    assert "random_init/linear-cached" in report.split("changed: ")[1] and json.loads(path.read_text())["cells"]
    rows, report = regress("ci", baseline_path=path, runner=fake)
    assert all(r.ok for r in rows) and "all 18 metrics within their tolerance" in report
    stored = json.loads(path.read_text())
    stored["cells"]["rho_byol/linear-cached"]["digits-appearance/top1"] = 30.0 + 4.9  # inside the 5-point tolerance
    path.write_text(json.dumps(stored))
    assert all(r.ok for r in regress("ci", baseline_path=path, runner=fake)[0])
    stored["cells"]["rho_byol/linear-cached"]["digits-appearance/top1"] = 30.0 + 5.1  # a baseline raised beyond it
    path.write_text(json.dumps(stored))
    rows, report = regress("ci", baseline_path=path, runner=fake)
    bad = [r for r in rows if not r.ok]
    assert [(r.cell, r.metric) for r in bad] == [("rho_byol/linear-cached", "digits-appearance/top1")]
    assert "| rho_byol/linear-cached | digits-appearance/top1 | 35.1 | 30.0 | -5.1 | NO (tolerance 5) |" in report
    assert "1 of 18 metrics outside their tolerance" in report
    rows, report = regress("ci", update=True, baseline_path=path, runner=fake)
    assert report.endswith("changed: rho_byol/linear-cached")


def test_the_stored_ci_baselines_cover_the_matrix():
    from harness.regress import BASELINES

    stored = json.loads((BASELINES / "ci.json").read_text())
    assert sorted(stored["cells"]) == sorted(f"{m}/{p}" for m, p in matrix("ci"))
    assert all(set(v) >= {"digits-appearance/top1", "digits-motion/top1"} for v in stored["cells"].values())
