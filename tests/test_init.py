"""Staged initialisation (`pretrain.init`): a part of an encoder starts from another run's encoder or from a
file, loaded exactly; the parent's key is part of the child's, so the child is trained again whenever its
parent changes; partial, foreign and circular sources are refused with what differs named."""
from __future__ import annotations

import pytest
import torch

from harness import pretraining as pt
from harness.builders import build_parts
from harness.config import load_config
from harness.errors import ConfigError

PARENT = "run:rho_simclr;pretrain.epochs=1"


def _cfg(cache_dir, tmp_path, *sets: str, method: str = "rho_byol"):
    return load_config("ci", [f"run.cache_dir={str(cache_dir)!r}", f"run.results_dir={str(tmp_path / 'runs')!r}",
                              "pretrain.epochs=1", *sets], method=method)


def _key(cfg) -> str:
    return pt.preflight(cfg).key


def test_a_chained_run_starts_from_exactly_its_parents_weights_and_its_key_follows_the_parent(
        ci_manifest, cache_dir, tmp_path):
    child = _cfg(cache_dir, tmp_path, f"pretrain.init.encoder={PARENT!r}")
    sources = pt.init_sources(child, "cpu")
    assert sources["encoder"]["method"] == "rho_simclr" and sources["encoder"]["run"] == PARENT
    parent = pt.parent_config(child, PARENT)
    assert sources["encoder"]["key"] == _key(parent) and parent.run == child.run

    # the parent is pre-trained on first use, then the child's encoder holds exactly its weights
    torch.manual_seed(123)
    encoder, _, _ = build_parts(child)
    before = torch.random.get_rng_state()
    pt.apply_init(child, encoder, sources, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)  # the parent's training left the child's stream alone
    saved = torch.load(pt.preflight(parent).checkpoint_dir / "encoder.pt", weights_only=True)
    mine = encoder.state_dict()
    assert saved.keys() == mine.keys() and all(torch.equal(saved[k], mine[k]) for k in saved)

    # the child's key: not the plain run's, and it moves when the parent's settings do
    plain = _key(_cfg(cache_dir, tmp_path))
    other_parent = _key(_cfg(cache_dir, tmp_path, "pretrain.init.encoder='run:rho_simclr;pretrain.epochs=2'"))
    assert len({_key(child), plain, other_parent}) == 3
    assert "pretrain.init.encoder" in child.encoder_identity(True)  # the leaderboard's label names the chain


def test_a_part_starts_from_a_file_holding_the_whole_encoder_or_the_part(cache_dir, tmp_path):
    cfg = _cfg(cache_dir, tmp_path)
    donor, _, _ = build_parts(cfg)
    whole, part_only = tmp_path / "whole.pt", tmp_path / "part.pt"
    torch.save({"encoder": donor.state_dict()}, whole)
    stem = donor.trunk[0] if isinstance(donor.trunk, torch.nn.Sequential) else next(donor.trunk.children())
    torch.save(stem.state_dict(), part_only)
    name = next(n for n, m in donor.named_modules() if m is stem)
    for path in (whole, part_only):
        child = _cfg(cache_dir, tmp_path, f'pretrain.init={{"{name}" = "{path}"}}')  # a dotted part: a TOML table
        torch.manual_seed(7)
        encoder, _, _ = build_parts(child)
        sources = pt.init_sources(child, "cpu")
        assert sources[name]["sha256"] and sources[name]["file"] == str(path)
        pt.apply_init(child, encoder, sources, progress=False)
        got, want = encoder.get_submodule(name).state_dict(), stem.state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want)
        rest = [k for k in encoder.state_dict() if not k.startswith(name + ".")]
        assert any(not torch.equal(encoder.state_dict()[k], donor.state_dict()[k]) for k in rest)  # only the part


def test_partial_foreign_and_missing_sources_are_refused_with_what_differs(cache_dir, tmp_path):
    cfg = _cfg(cache_dir, tmp_path)
    donor, _, _ = build_parts(cfg)
    state = donor.state_dict()
    partial = tmp_path / "partial.pt"
    torch.save({k: v for i, (k, v) in enumerate(state.items()) if i % 2}, partial)
    foreign = tmp_path / "foreign.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, foreign)
    for path, msg in ((partial, r"weights missing \(e\.g\. \['trunk"), (foreign, r"1 unexpected \(e\.g\. \['fc.weight'\]")):
        child = _cfg(cache_dir, tmp_path, f"pretrain.init.encoder={str(path)!r}")
        with pytest.raises(ConfigError, match=msg):
            pt.apply_init(child, build_parts(child)[0], pt.init_sources(child, "cpu"), progress=False)
    child = _cfg(cache_dir, tmp_path, f"pretrain.init.head={str(partial)!r}")
    with pytest.raises(ConfigError, match="has no part 'head' .*its parts: trunk"):
        pt.apply_init(child, build_parts(child)[0], pt.init_sources(child, "cpu"), progress=False)
    with pytest.raises(ConfigError, match="is not a file"):
        pt.init_sources(_cfg(cache_dir, tmp_path, "pretrain.init.encoder='/no/such.pt'"), "cpu")
    with pytest.raises(ConfigError, match="name a method that pre-trains"):
        pt.init_sources(_cfg(cache_dir, tmp_path, "pretrain.init.encoder='run:random_init'"), "cpu")
    with pytest.raises(ConfigError, match="run:nope.: method: unknown name .nope."):
        pt.init_sources(_cfg(cache_dir, tmp_path, "pretrain.init.encoder='run:nope'"), "cpu")
    with pytest.raises(ConfigError, match="not a part of an encoder"):
        _cfg(cache_dir, tmp_path, "pretrain.init.'a b'='x.pt'")


def test_a_run_that_starts_from_itself_is_refused(tmp_path):
    """A user file whose every rho_byol run starts from a rho_byol run: the chain never ends."""
    user = tmp_path / "bench.toml"
    user.write_text('[by_method.rho_byol]\npretrain.init.encoder = "run:rho_byol;pretrain.epochs=1"\n')
    cfg = load_config("ci", method="rho_byol", path=user)
    with pytest.raises(ConfigError, match="chain of more than 8 runs"):
        pt.init_sources(cfg, "cpu")


def test_a_chained_runs_record_names_its_parent_and_its_row_label_shows_the_chain(ci_manifest, cache_dir, tmp_path):
    from harness.report.leaderboard import variant_labels
    from harness.runner import run

    child = load_config("ci", [f"run.cache_dir={str(cache_dir)!r}", f"run.results_dir={str(tmp_path / 'runs')!r}",
                               "pretrain.epochs=1", f"pretrain.init.encoder={PARENT!r}",
                               "protocols.linear-cached.tasks=['digits-motion']"], method="rho_byol",
                        protocol="linear-cached")
    record, _ = run(child, progress=False)
    parent_key = _key(pt.parent_config(child, PARENT))
    assert record["pretrain"]["init"]["encoder"] == {"run": PARENT, "method": "rho_simclr", "key": parent_key}
    plain, _ = run(_cfg(cache_dir, tmp_path, "protocols.linear-cached.tasks=['digits-motion']"), progress=False)
    assert variant_labels([record, plain]) == [f"rho=4, pretrain.init.encoder={PARENT}", "rho=4"]
