"""The import structure: light modules stay light, and nothing imports what registers in it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_losses_imports_no_dataset_protocol_or_backbone():
    mods = _modules_after("import methods.losses")
    ours = sorted(m for m in mods if m.split(".")[0] in ("harness", "methods", "protocols"))
    # the collective helpers are the losses' only dependency inside the project (torch.distributed only)
    assert ours == ["harness", "harness.distributed", "methods", "methods.losses"], ours


@pytest.mark.parametrize("code", [
    "import harness.config as c; c.load_config('paper')",
    "import harness.cli",
    "from harness import catalog; [catalog.TASKS.get(t) for t in catalog.TASKS.names()]",
])
def test_configuration_and_cli_need_no_torch(code):
    mods = _modules_after(code)
    assert "torch" not in mods and "pandas" not in mods


def test_registry_imports_nothing_that_registers_in_it():
    mods = _modules_after("import harness.registry")
    assert sorted(m for m in mods if m.split(".")[0] in ("harness", "methods", "protocols")) == [
        "harness", "harness.errors", "harness.registry"]


def test_bench_list_and_config_show_do_not_import_torch(tmp_path):
    code = ("import sys\nfrom harness.cli import main\n"
            "for args in (['list', 'methods'], ['config', 'show', '--profile', 'ci'], ['--help'], ['--version']):\n"
            "    assert main(args) == 0\n")
    mods = _modules_after(code)
    assert "torch" not in mods


def test_needs_pretraining_comes_from_the_schema(tmp_path):
    import torch

    from harness import catalog
    from harness.builders import build_encoder
    from harness.config import load_config

    cfg = load_config("ci")
    torch.save(build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip).state_dict(), tmp_path / "e.pt")
    for name in catalog.METHODS.names():
        cfg = load_config("ci", [f"methods.pretrained.path='{tmp_path / 'e.pt'}'"], method=name)
        enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
        assert catalog.METHODS.get(name)(enc, cfg.method_cfg).needs_pretraining == cfg.pretrains
