"""The `paper` profile against the papers' settings (results/paper/settings.toml): every setting holds, a
changed one is named, and docs/fidelity.md is the rendering of the file as it is."""
from __future__ import annotations

import os
from collections import Counter

import pytest

from harness.report import fidelity, paper


def test_every_paper_setting_holds_in_the_paper_profile():
    settings = fidelity.load_settings()
    per_paper = Counter(s.paper for s in settings)
    assert per_paper["feichtenhofer2021"] >= 80 and per_paper["tan2021vimpac"] >= 25 and per_paper["akbari2021vatt"] >= 25
    assert all(s.source for s in settings), "every setting names its source"
    assert fidelity.mismatches(settings) == []


@pytest.mark.parametrize(("override", "named"), [
    ('[profiles.paper.by_method.rho_byol]\npretrain = { lr = 4.0 }\n', "pretrain.lr of rho_byol/linear is 4.0"),
    ('[profiles.paper.task_overrides.ssv2]\nfinetune = { sampler = "clip" }\n',
     "protocols.finetune.sampler for task ssv2 of rho_byol/finetune is 'clip'"),
    ('[profiles.paper]\naugment = { jitter = [0.6, 0.6, 0.6, 0.15] }\n', "augment.jitter of rho_byol/linear"),
])
def test_a_changed_profile_value_is_named(tmp_path, monkeypatch, override, named):
    (tmp_path / "bench.toml").write_text(override)
    monkeypatch.chdir(tmp_path)  # a bench.toml in the working directory is merged over the packaged one
    paper._config.cache_clear()
    try:
        bad = fidelity.mismatches()
    finally:
        paper._config.cache_clear()
    assert any(named in line for line in bad), bad


def test_docs_fidelity_md_is_the_rendering_of_the_settings():
    """Regenerate with `python -m harness.report.fidelity --write docs/fidelity.md`."""
    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "fidelity.md")
    with open(doc) as f:
        assert f.read() == fidelity.render()
