"""Paper tables as data: definitions against reference.csv, cells filled only by their own experiment,
the rendered layout, suites that skip what is recorded and go on after a failure, the HTML leaderboard."""
from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from harness import suite
from harness.config import load_config
from harness.report import paper, tables
from harness.report.filled import Cell, fill
from harness.report.html import page
from harness.report.leaderboard import format_table, leaderboard

RHO = "feichtenhofer2021/rho"

EXPECTED_RHO_PAPER = """\
### Clips per video (ρ): four methods, 200 epochs of Kinetics-400

Slow R-50 8x8 pre-trained for 200 epochs on K400 with ρ clips per video; K400 linear probe and UCF101 (split 1) \
fine-tuning, top-1. ρSimCLR and ρSwAV at ρ = 4 ran out of memory in the paper. Source: Feichtenhofer et al., \
CVPR 2021, Table 2. ours: profile `paper`.

Each cell: paper / ours, mean ± std over seeds [95% CI] (n = seeds) / Δ = ours − paper.

|  | K400 linear ρ=1 | K400 linear ρ=2 | K400 linear ρ=3 | K400 linear ρ=4 | UCF101 fine-tune ρ=1 | \
UCF101 fine-tune ρ=2 | UCF101 fine-tune ρ=3 | UCF101 fine-tune ρ=4 |
|---|---|---|---|---|---|---|---|---|
| ρMoCo | 61.0 / no run | 65.8 / no run | 67.3 / no run | 67.8 / no run | 90.8 / no run | 91.0 / no run | \
92.8 / no run | 93.5 / no run |
| ρBYOL | 60.6 / no run | 65.8 / no run | 68.3 / no run | 68.9 / no run | 91.2 / no run | 92.7 / no run | \
93.8 / no run | 93.8 / no run |
| ρSimCLR | 36.1 / no run | 60.5 / no run | 62.0 / no run | –* / no run | 84.2 / no run | 88.9 / no run | \
87.9 / no run | –* / no run |
| ρSwAV | 38.6 / no run | 61.6 / no run | 62.7 / no run | –* / no run | 74.7 / no run | 87.3 / no run | \
89.4 / no run | –* / no run |

* out of memory in the paper"""


def test_the_rho_table_renders_the_papers_numbers_in_the_papers_layout():
    table = paper.load_definitions().table(RHO)
    assert tables.markdown(fill(table, [], "paper")) == EXPECTED_RHO_PAPER


def test_every_reference_line_fills_exactly_one_cell_of_a_defined_table():
    defs = paper.load_definitions()
    assert {(r.paper, r.table) for r in defs.references} == {(t.paper, t.name) for t in defs.tables}
    used: dict[paper.Reference, int] = {}
    for t in defs.tables:
        for i in range(len(t.rows)):
            for j in range(len(t.columns)):
                ref = defs.reference(t, i, j)
                if ref is not None:
                    used[ref] = used.get(ref, 0) + 1
        for ref in defs.references:
            if (ref.paper, ref.table) == (t.paper, t.name):
                assert used.get(ref) == 1, f"{t.id}: {dict(ref.keys)} fills {used.get(ref, 0)} cells"


def test_reference_numbers_agree_with_the_papers_prose():
    """Cells the papers' text states (see docs/paper-tables.md for the sources)."""
    defs = paper.load_definitions()
    rho = defs.table(RHO)
    value = {(rho.rows[i].label, rho.columns[j].group, rho.columns[j].label): defs.reference(rho, i, j).value
             for i in range(4) for j in range(8)}
    assert value[("ρSimCLR", "K400 linear", "ρ=1")] == 36.1 and value[("ρSwAV", "K400 linear", "ρ=1")] == 38.6
    assert value[("ρMoCo", "K400 linear", "ρ=2")] == 65.8 and value[("ρBYOL", "K400 linear", "ρ=4")] == 68.9
    assert value[("ρBYOL", "UCF101 fine-tune", "ρ=4")] == 93.8 and value[("ρSwAV", "UCF101 fine-tune", "ρ=2")] == 87.3
    assert value[("ρSimCLR", "K400 linear", "ρ=4")] is None  # out of memory in the paper


def _record(of: str, exp: paper.Experiment, value: float, seed: int = 0, **changes) -> dict:
    """A record exactly as `bench run` writes it for `exp` (identity, code versions), with one metric."""
    cfg = load_config(of, list(exp.sets), method=exp.method, protocol=exp.protocol, seed=seed)
    _, _, _, versions = paper.expected(of, exp)
    rec = {"id": f"r-{exp.method}-{seed}-{value}", "profile": of, "method": exp.method, "protocol": exp.protocol,
           "seed": seed, "identity": {"encoder": cfg.encoder_identity(cfg.pretrains), "protocol": cfg.protocol_identity()},
           "code_version": dict(versions), "pretrain": {"seconds": 60.0}, "costs": {"protocol_seconds": 30.0},
           "results": [{"task": exp.task, "metrics": {"top1": value}, "ci95": {"top1": [value - 5, value + 5]}}]}
    rec.update(changes)
    return rec


def _cell(rendered, row: str, column: str) -> Cell:
    return next(c for line in rendered.cells for c in line if c.row == row and f"{c.group} {c.column}" == column)


def test_only_the_cells_own_experiment_fills_it():
    defs = paper.load_definitions()
    table = defs.table(RHO)
    exp = paper.experiment(defs, table, 1, 1, "embedded")  # ρBYOL, K400 linear, ρ = 2
    assert exp == paper.Experiment("rho_byol", "linear-cached", ("methods.rho_byol.rho=2",), "digits-appearance", "top1")
    good = [_record("embedded", exp, 40.0, 0), _record("embedded", exp, 50.0, 1), _record("embedded", exp, 60.0, 2)]
    other_profile = _record("embedded", exp, 99.0, 3, profile="ci")
    stale = _record("embedded", exp, 99.0, 4, code_version={"pretrain": "0.1", "protocol": "1.2"})
    other_rho = _record("embedded", paper.Experiment("rho_byol", "linear-cached", ("methods.rho_byol.rho=3",),
                                                     "digits-appearance", "top1"), 99.0, 5)
    r = fill(table, [*good, other_profile, stale, other_rho], "embedded")
    cell = _cell(r, "ρBYOL", "K400 linear ρ=2")
    assert cell.ours.values == [40.0, 50.0, 60.0] and cell.ours.std == pytest.approx(10.0)
    assert cell.ours.ci == pytest.approx((50 - 24.8414, 50 + 24.8414), abs=1e-3) and cell.ours.ci_kind == "seeds"
    assert _cell(r, "ρBYOL", "K400 linear ρ=1").status == "no run"
    assert "65.8 / 50.0 ± 10.0 [25.2, 74.8] (n=3) |" in tables.markdown(r)  # no difference: stand-in data
    # a record of another profile never fills a paper table
    paper_table = fill(table, [{**g, "profile": "embedded"} for g in good], "paper")
    assert all(c.ours is None for line in paper_table.cells for c in line)


def test_paper_profile_cells_show_the_difference_and_one_seed_shows_its_bootstrap_interval():
    defs = paper.load_definitions()
    table = defs.table(RHO)
    exp = paper.experiment(defs, table, 0, 1, "paper")  # ρMoCo, K400 linear, ρ = 2
    assert exp.task == "k400" and exp.protocol == "linear"
    r = fill(table, [_record("paper", exp, 64.8)], "paper")
    assert "| ρMoCo | 61.0 / no run | 65.8 / 64.8 [59.8, 69.8] (n=1) / -1.0 |" in tables.markdown(r)
    rows = list(csv.DictReader(tables.csv_text(r).splitlines()))
    hit = next(x for x in rows if x["row"] == "ρMoCo" and x["column"] == "ρ=2" and x["group"] == "K400 linear")
    assert hit["difference"] == "-1.000" and hit["ci_kind"] == "bootstrap" and hit["records"] == "r-rho_moco-0-64.8"
    assert "--set methods.rho_moco.rho=2 --profile paper" in hit["command"]
    assert r"\multicolumn{4}{c}{K400 linear}" in tables.tex(r) and "href=\"runs/r-rho_moco-0-64.8.json\"" in \
        tables.html_table(r)


def test_cells_the_harness_cannot_run_say_why():
    defs = paper.load_definitions()
    r = fill(defs.table("feichtenhofer2021/supervised"), [], "embedded")
    assert _cell(r, "ρMoCo", " AVA (mAP)").status.startswith("n/a: no task for ava")
    assert _cell(r, "ρMoCo (IG-Curated-1M)", " UCF101").status == "n/a: no stand-in for pre-training on ig_curated_1m"
    scratch = paper.experiment(defs, defs.table("feichtenhofer2021/supervised"), 0, 0, "paper")
    assert scratch.method == "random_init" and scratch.protocol == "finetune"  # from scratch = fine-tune a random init
    sota = defs.table("feichtenhofer2021/sota")
    assert "no adapter for coclr" in paper.experiment(defs, sota, 4, 0, "paper").reason
    assert "stands for slow_r50 8f only" in paper.experiment(defs, sota, 9, 0, "embedded").reason


def test_suite_plan_merges_tasks_orders_by_encoder_and_filters():
    jobs, cannot = suite.plan("rho", "embedded", 2, suite.parse_only(["rho=1,2"]))
    assert len(jobs) == 4 * 2 * 2 * 2 and not cannot  # methods x rho x protocols x seeds
    assert [j.seed for j in jobs[:16]] == [0] * 16
    first = jobs[0]
    assert (first.method, first.sets, first.tasks) == ("rho_moco", ("methods.rho_moco.rho=1",), ["digits-appearance"])
    assert jobs[1].sets == first.sets and jobs[1].protocol != first.protocol  # one encoder's protocols together
    assert 'protocols.finetune.tasks=["digits-appearance"]' in jobs[0].overrides()
    with pytest.raises(paper.ConfigError, match="unknown suite"):
        suite.plan("nope", "embedded", 1)
    with pytest.raises(paper.ConfigError, match="SELECTOR=V1,V2"):
        suite.parse_only(["flavour=2"])


def test_suite_skips_recorded_cells_and_goes_on_after_a_failure():
    jobs, _ = suite.plan("rho", "embedded", 1, suite.parse_only(["rho=1", "method=rho_byol,rho_moco"]))
    recorded = [_record("embedded", e, 10.0) for e in jobs[0].experiments]  # the first job is done already
    ran = []

    def runner(cfg, progress):
        if cfg.method == "rho_byol" and cfg.protocol == "finetune":
            raise RuntimeError("boom")
        ran.append((cfg.method, cfg.protocol, cfg.method_cfg.rho))
        return {}, f"/runs/{len(ran)}.json"

    out = suite.run_suite(jobs, "embedded", lambda: recorded, runner=runner, log=lambda m: None)
    status = {(o.job.method, o.job.protocol): o.status for o in out}
    assert status[(jobs[0].method, jobs[0].protocol)] == "recorded"
    assert status[("rho_byol", "finetune")] == "failed" and list(status.values()).count("ran") == 2
    assert "1 failed" in suite.report(out) and "boom" in suite.report(out)
    listed = []
    suite.run_suite(jobs, "embedded", lambda: recorded, dry_run=True, log=listed.append)
    assert listed[-1].startswith("3 runs to do, 1 already recorded")
    assert "pre-training train ~" in listed[0] or "pre-training reuse" in listed[0]


def test_suite_estimates_scoring_from_records_of_the_same_backbone():
    cnn = suite.Job("random_init", "finetune", (), ["digits-appearance"], 0)
    transformer = suite.Job("random_init", "finetune", ("backbone.name=vimpac",), ["digits-appearance"], 0)
    exp = paper.Experiment("random_init", "finetune", (), "digits-appearance", "top1")
    small = _record("embedded", exp, 50.0, backbone="small3d", costs={"protocol_seconds": 8.0})
    big = _record("embedded", exp, 50.0, backbone="vimpac", costs={"protocol_seconds": 300.0})
    assert suite.estimate(transformer, [small, big], "embedded")[2] == 300.0
    assert suite.estimate(cnn, [small, big], "embedded")[2] == 8.0
    assert suite.estimate(transformer, [small], "embedded")[2] == 8.0  # no record of its backbone: any


def test_leaderboard_groups_tasks_by_emphasis_shows_costs_and_links_records(tmp_path):
    defs = paper.load_definitions()
    exp = paper.experiment(defs, defs.table(RHO), 1, 1, "embedded")
    motion = paper.Experiment(exp.method, exp.protocol, exp.sets, "digits-motion", "top1")
    recs = [_record("embedded", exp, 40.0), _record("embedded", motion, 70.0)]
    recs[1]["id"] = "r-motion"
    board = leaderboard(recs)
    assert list(board.mean.columns) == ["linear-cached:digits-motion", "linear-cached:digits-appearance"]
    md = format_table(board)
    assert "[T] linear-cached:digits-motion | [S] linear-cached:digits-appearance" in md and "| 1.0 |" in md
    html = page(board)
    assert 'href="runs/r-motion.json"' in html and "temporally-heavy tasks" in html and "th.dataset.col" in html


@pytest.mark.e2e
def test_suite_runs_for_real_then_skips_and_fills_its_table(ci_manifest, cache_dir, tmp_path, capsys):
    from harness.cli import main

    base = ["--profile", "ci", "--results-dir", str(tmp_path), "--only", "method=rho_simclr", "--only", "rho=1"]
    config = tmp_path / "bench.toml"
    config.write_text(f"[run]\ncache_dir = {json.dumps(str(cache_dir))}\n")
    assert main(["suite", "rho", *base, "--config", str(config), "-q"]) == 0
    assert "2 ran" in capsys.readouterr().out
    assert main(["suite", "rho", *base, "--config", str(config), "-q"]) == 0
    assert "0 ran" in capsys.readouterr().out
    assert main(["tables", "--table", "rho", "--profile", "ci", "--results-dir", str(tmp_path), "--config", str(config),
                 "--out", str(tmp_path / "tables")]) == 0
    text = capsys.readouterr().out
    assert "| ρSimCLR | 36.1 / " in text and "(n=1) | 60.5 / no run" in text
    assert (tmp_path / "tables" / "ci" / "feichtenhofer2021-rho-acc-vs-rho-k400-linear.png").stat().st_size > 1000
    assert (tmp_path / "tables" / "ci" / "index.html").exists()


def test_only_keeps_the_rows_and_columns_that_hold_matching_cells():
    table = paper.restrict(paper.load_definitions().table(RHO), suite.parse_only(["rho=1,2", "method=rho_byol"]))
    assert [r.label for r in table.rows] == ["ρBYOL"]
    assert [f"{c.group} {c.label}" for c in table.columns] == ["K400 linear ρ=1", "K400 linear ρ=2",
                                                              "UCF101 fine-tune ρ=1", "UCF101 fine-tune ρ=2"]
    with pytest.raises(paper.ConfigError, match="leaves no cell"):
        paper.restrict(table, {"rho": {"7"}})


def test_released_checkpoints_scored_here_appear_as_extra_rows():
    defs = paper.load_definitions()
    table = paper.restrict(defs.table(RHO), suite.parse_only(["rho=2"]))
    exp = paper.experiment(defs, table, 0, 0, "embedded")  # K400 linear -> linear-cached on appearance
    rec = _record("embedded", exp, 33.0)
    rec.update(method="pretrained", config={"methods": {"pretrained": {"path": "/w/SLOW_8x8_R50_BYOL.pyth"}}})
    rec["identity"]["encoder"] = {"methods.pretrained.sha256": "ab12cd34ef", "methods.pretrained.format": "slowfast"}
    other = {**rec, "profile": "paper"}
    r = fill(table, [rec, other], "embedded")
    assert r.released[0][0] == "SLOW_8x8_R50_BYOL.pyth (ab12cd34)" and len(r.released) == 1
    assert r.released[0][1][0].mean == 33.0 and r.released[0][1][1] is None  # scored by the probe only
    assert "| released: SLOW_8x8_R50_BYOL.pyth (ab12cd34) | – / 33.0 [28.0, 38.0] (n=1) |  |" in tables.markdown(r)


def _with_outputs(runs_dir, rec: dict, task: str, hits) -> dict:
    """`rec` with per-video outputs (one hit or miss per video) written beside it, as `bench run` does."""
    from harness.report.outputs import write_outputs

    out = {task: {"ids": [f"v{i}" for i in range(len(hits))], "label": [0] * len(hits),
                  "views": {"all": {"pred": [0 if x else 1 for x in hits], "true_rank": [1 if x else 2 for x in hits],
                                    "true_score": [0.5] * len(hits)}}}}
    rec["tasks"] = [task]
    rec["per_video"] = {"file": write_outputs(runs_dir, rec["id"], out), "version": 1}
    return rec


def _column_records(runs_dir, rates: dict[int, float], seeds: int = 3, videos: int = 60, seed_sd: float = 0.0):
    """Records of the ρ = 2 linear column (row index: hit rate), each seed's rate moved by `seed_sd`."""
    import numpy as np

    defs = paper.load_definitions()
    table = defs.table(RHO)
    rng, records = np.random.default_rng(0), []
    for row, p in rates.items():
        exp = paper.experiment(defs, table, row, 1, "embedded")
        for seed in range(seeds):
            h = (rng.random(videos) < p + rng.normal(0, seed_sd)).astype(int)
            records.append(_with_outputs(runs_dir, _record("embedded", exp, 100 * h.mean(), seed), exp.task, h))
    return table, records


def test_paper_table_cells_are_ranked_with_ties_in_their_column(tmp_path):
    """ρ = 2 linear column: ρMoCo ~90% and ρSimCLR ~88% per video (3 seeds, 60 videos) share rank 1, ρBYOL
    (~20%) is rank 3; markdown, CSV and HTML show it and the table states the test under it."""
    table, records = _column_records(tmp_path, {0: 0.9, 2: 0.88, 1: 0.2})
    r = fill(table, records, "embedded", runs_dir=tmp_path)
    assert [r.rank(i, 1) for i in range(4)] == [1, 3, 1, None]
    assert r.rank(0, 0) is None  # an empty column is not ranked
    md = tables.markdown(r)
    assert "| ρBYOL | 60.6 / no run | 65.8 / #3 " in md and "share rank 1" in md
    rows = list(csv.DictReader(tables.csv_text(r).splitlines()))
    assert {x["row"]: x["rank"] for x in rows if x["column"] == "ρ=2" and x["group"] == "K400 linear"} == \
        {"ρMoCo": "1", "ρBYOL": "3", "ρSimCLR": "1", "ρSwAV": ""}
    assert "#1 <b" in tables.html_table(r)
    unranked = fill(table, records, "embedded")  # no runs folder given: no ranks, no note
    assert not unranked.ranked and "#1" not in tables.markdown(unranked) and "share rank" not in tables.markdown(unranked)


def test_suite_dry_run_says_how_many_seeds_a_difference_needs(tmp_path):
    """The plan reads the variance of paired differences from the recorded rows of each column: the median
    over pairs of rows, turned into seeds by the same power formula `bench compare --plan` uses."""
    from harness.report import compare as cmp

    jobs, _ = suite.plan("rho", "embedded", 3, {"rho": {"2"}})
    assert "unknown; run --seeds 2 first" in suite.seeds_plan(jobs, [], "embedded", tmp_path, 5.0, 3)[0]
    _, records = _column_records(tmp_path, {0: 0.5, 1: 0.45, 2: 0.3}, seeds=3, videos=200, seed_sd=0.04)
    lines = suite.seeds_plan(jobs, records, "embedded", tmp_path, 5.0, 3)
    line = next(x for x in lines if x.startswith("seeds plan, linear-cached on digits-appearance (top1)"))
    by = {m: [r for r in records if r["method"] == m] for m in ("rho_moco", "rho_byol", "rho_simclr")}
    pairs = [cmp.compare(cmp.pair(by[a], by[b], "digits-appearance", "top1", tmp_path), "digits-appearance", "top1")
             for a, b in (("rho_moco", "rho_byol"), ("rho_moco", "rho_simclr"), ("rho_byol", "rho_simclr"))]
    var = sorted(c.per_seed_var for c in pairs)[1]
    assert "median of 3 pairs of rows" in line and f"sd {var ** 0.5:.1f} points" in line
    assert f"5 points needs {cmp.seeds_for(var, 5.0)} seeds" in line and f"detect {cmp.detectable(var, 3):.1f}" in line
    with pytest.raises(paper.ConfigError, match="--detect"):
        suite.seeds_plan(jobs, records, "embedded", tmp_path, 0.0, 3)


def _find(table, label: str, column: str) -> tuple[int, int]:
    i = next(k for k, r in enumerate(table.rows) if r.label == label)
    j = next(k for k, c in enumerate(table.columns) if f"{c.group} {c.label}".strip() == column)
    return i, j


def test_every_cell_of_every_table_is_an_experiment_or_says_why_not():
    defs = paper.load_definitions()
    for profile in ("embedded", "paper"):
        for t in defs.tables:
            for i in range(len(t.rows)):
                for j in range(len(t.columns)):
                    exp = paper.experiment(defs, t, i, j, profile)
                    assert isinstance(exp, paper.Experiment) or exp.reason, (profile, t.id, i, j)


def test_vimpac_ablation_rows_map_to_settings_and_pretraining_columns_read_the_record(tmp_path):
    """An ablation row's terms become --set overrides ([variants.tan2021vimpac]); a pre-training column (mask
    accuracy) is filled from any run of that encoder, from its record's logged terms."""
    defs = paper.load_definitions()
    table = defs.table("tan2021vimpac/masking_ratio")
    i, j = _find(table, "mask=iid, blocks=, ratio=14.5%, contrastive=False", "UCF101 top-1")
    exp = paper.experiment(defs, table, i, j, "embedded")
    assert exp == paper.Experiment("vimpac", "finetune", ("methods.vimpac.masking='iid'", "methods.vimpac.mask_ratio=0.145",
                                                         "methods.vimpac.contrastive_weight=0"), "digits-appearance", "top1")
    _, acc = _find(table, "mask=iid, blocks=, ratio=14.5%, contrastive=False", "mask acc.")
    pre = paper.experiment(defs, table, i, acc, "embedded")
    assert pre.reads == "pretrain" and pre.sets == exp.sets and pre.protocol == "linear-cached"
    rec = _record("embedded", exp, 70.0)
    rec["pretrain"] = {"seconds": 60.0, "clips_per_s": 500.0, "term_curves": {"mask_acc": [[10, 0.2], [20, 0.31]]}}
    scored_by_probe = {**_record("embedded", dataclasses.replace(exp, protocol="linear-cached"), 20.0, seed=1),
                       "pretrain": {"term_curves": {"mask_acc": [[20, 0.29]]}}}
    r = fill(table, [rec, scored_by_probe], "embedded")
    assert r.cells[i][j].ours.values == [70.0]
    assert r.cells[i][acc].ours.values == pytest.approx([31.0, 29.0])  # %, one per seed, whichever protocol scored it
    speed = paper.experiment(defs, defs.table("tan2021vimpac/attention_layout"), 0, 1, "embedded")
    assert speed.metric == "speed" and paper.pretrain_value(rec, "speed") == 500.0
    # terms that cannot stand in say why; the row with neither objective is the untrained transformer
    res = defs.table("tan2021vimpac/masking_strategy")
    assert "no crop stands for 128 vs 256 px" in paper.experiment(defs, res, 0, 1, "embedded").reason
    assert paper.experiment(defs, res, 0, 1, "paper").reason == "no dataset howto100m"
    obj = defs.table("tan2021vimpac/objectives")
    none = paper.experiment(defs, obj, 0, 2, "embedded")
    assert (none.method, none.sets) == ("random_init", ("backbone.name='vimpac'",))


def test_vatt_sizes_are_aliases_of_the_vatt_method():
    defs = paper.load_definitions()
    table = defs.table("akbari2021vatt/k400")
    base = paper.experiment(defs, table, *_find(table, "vatt_base", "top-1"), "embedded")
    assert (base.method, base.protocol, base.sets, base.task) == ("vatt", "finetune", (), "digits-appearance")
    ma = paper.experiment(defs, table, *_find(table, "vatt_ma_medium", "top-1"), "embedded")
    assert ma.sets == ("methods.vatt.towers='shared'",)
    assert "stands for VATT-Base only" in paper.experiment(defs, table, *_find(table, "vatt_large", "top-1"), "embedded").reason
    assert paper.experiment(defs, table, *_find(table, "i3d", "top-1"), "embedded").reason == "no adapter for i3d"


def test_plots_keep_one_colour_per_method_and_one_protocol_per_axis(tmp_path):
    """ρSimCLR has no paper number at ρ = 4 and ρMoCo no run of ours: each method's colour is still the same
    in the paper's panel, ours and the cost plot; the cost plot gives each column group its own panel, and
    our axis names the protocol and task that stand in for the paper's column."""
    from harness.report import plots

    defs = paper.load_definitions()
    table = defs.table(RHO)
    records = []
    for row in (1, 2, 3):  # ρBYOL, ρSimCLR, ρSwAV at ρ = 2, linear and fine-tuning
        for col in (1, 5):
            exp = paper.experiment(defs, table, row, col, "embedded")
            records.append(_record("embedded", exp, 40.0 + row + col, seed=0))
    r = fill(table, records, "embedded")
    colours = plots.row_colours(r)
    assert colours == {"ρMoCo": "C0", "ρBYOL": "C1", "ρSimCLR": "C2", "ρSwAV": "C3"}
    fig = plots.selector_figure(r, "K400 linear")
    ax_paper, ax_ours = fig.axes
    for ax in (ax_paper, ax_ours):
        for artist in [*ax.lines, *ax.containers]:
            label = artist.get_label()
            line = artist if hasattr(artist, "get_color") else artist.lines[0]
            if label in colours:
                assert line.get_color() == colours[label], (label, line.get_color())
    assert ax_ours.get_ylabel() == "linear-cached on digits-appearance, top-1 (%)"
    assert ax_ours.get_legend().get_title().get_text() == "linear-cached on digits-appearance\n(stands for K400 linear)"
    assert ax_paper.get_legend().get_title().get_text() == ""  # the paper's own numbers need no note
    cost = plots.cost_figure(r)
    assert [ax.get_title() for ax in cost.axes] == ["K400 linear", "UCF101 fine-tune"]
    assert cost.axes[1].get_ylabel() == "finetune on digits-appearance, top-1 (%)"
    assert "`linear` columns are scored with `linear-cached`" in tables.markdown(r)
