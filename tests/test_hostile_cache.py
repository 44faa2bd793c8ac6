"""Cached artifacts are verified before reuse: a damaged encoder, pre-training report, feature extraction,
fine-tuned model, fit report or tokenizer (bit-flipped with its size kept, truncated, zeroed) is named in one
line, set aside and built again, and the run's numbers are those of the clean run — never a silent reuse,
never a traceback."""
from __future__ import annotations

import json

import pytest
import torch

from harness.config import load_config
from harness.runner import run
from harness.storage import atomic_save, digest_path, read_verified


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _zero(path):
    path.write_bytes(bytes(path.stat().st_size))


DAMAGE = {"flip": _flip, "truncate": _truncate, "zero": _zero}


def test_read_verified_sets_a_damaged_file_aside_and_adopts_one_written_before_checksums(tmp_path):
    lines = []
    path = tmp_path / "x.pt"
    atomic_save({"a": torch.arange(4)}, path)

    def read(p):
        return torch.load(p, weights_only=True)

    assert torch.equal(read_verified(path, read, "thing", lines.append)["a"], torch.arange(4)) and not lines
    for name, damage in DAMAGE.items():
        atomic_save({"a": torch.arange(4)}, path)
        damage(path)
        assert read_verified(path, read, "thing", lines.append) is None, name
        assert not path.exists() and (tmp_path / "x.pt.corrupt").exists() and not digest_path(path).exists()
        assert lines[-1].startswith(f"thing {path}: ") and lines[-1].endswith("moved to x.pt.corrupt, building it again")
    assert "do not match the checksum" in lines[0]
    legacy = tmp_path / "old.pt"
    torch.save({"a": torch.ones(2)}, legacy)  # no checksum beside it: read, then its checksum kept
    assert read_verified(legacy, read, "thing", lines.append) is not None and digest_path(legacy).exists()
    legacy.write_bytes(b"not a torch file")
    digest_path(legacy).unlink()
    assert read_verified(legacy, read, "thing", lines.append) is None and "cannot be read" in lines[-1]
    assert read_verified(tmp_path / "missing.pt", read, "thing", lines.append) is None


@pytest.fixture(scope="module")
def clean(ci_manifest, cache_dir, tmp_path_factory):
    """One linear-cached and one fine-tuning run of a small ρSimCLR, in their own cache; their numbers."""
    cache = tmp_path_factory.mktemp("hostile-cache")
    for sub in ("datasets",):  # share the generated ci videos, not the cached artifacts
        (cache / sub).symlink_to(cache_dir / sub)
    out = {}
    for protocol in ("linear-cached", "finetune"):
        cfg = _cfg(cache, tmp_path_factory.mktemp("runs"), protocol)
        record, _ = run(cfg, progress=False)
        out[protocol] = {t["task"]: t["metrics"] for t in record["results"]}
    return cache, out


def _cfg(cache, runs, protocol):
    return load_config("ci", [f"run.cache_dir={str(cache)!r}", f"run.results_dir={str(runs)!r}", "pretrain.epochs=2",
                              f"protocols.{protocol}.tasks=['digits-motion']"], method="rho_simclr", protocol=protocol)


def _artifact(cache, which: str):
    pattern = {"encoder": "checkpoints/rho_simclr-*/encoder.pt", "pretrain report": "checkpoints/rho_simclr-*/pretrain.json",
               "features": "features/*.pt", "fine-tuned model": "protocols/finetune-*/model.pt",
               "fit report": "protocols/finetune-*/fit.json"}[which]
    found = sorted(cache.glob(pattern))
    assert len(found) == 1, (which, found)
    return found[0]


CASES = [("encoder", "flip"), ("encoder", "truncate"), ("encoder", "zero"), ("pretrain report", "flip"),
         ("features", "flip"), ("features", "truncate"), ("fine-tuned model", "flip"), ("fine-tuned model", "zero"),
         ("fit report", "truncate")]


@pytest.mark.e2e
@pytest.mark.parametrize("which,damage", CASES)
def test_a_damaged_cache_entry_is_named_rebuilt_and_gives_the_clean_numbers(clean, which, damage, tmp_path, capsys):
    cache, numbers = clean
    path = _artifact(cache, which)
    DAMAGE[damage](path)
    protocol = "finetune" if which in ("fine-tuned model", "fit report") else "linear-cached"
    capsys.readouterr()
    record, _ = run(_cfg(cache, tmp_path, protocol), progress=False)
    err = capsys.readouterr().err
    assert f"{path}: " in err and "building it again" in err
    assert {t["task"]: t["metrics"] for t in record["results"]} == numbers[protocol]
    assert _artifact(cache, which).exists() and digest_path(_artifact(cache, which)).exists()  # rebuilt, with its checksum


def test_a_damaged_text_tokenizer_is_trained_again_the_same(tmp_path):
    from harness.models.text import tokenizer_for
    from methods.configs import TextConfig

    cfg = TextConfig(kind="word", vocab_size=64, max_len=8)
    captions = ["a red 3 moves up.", "the digit two shrinks.", "we see a seven that turns clockwise."]
    lines = []
    first, _ = tokenizer_for(cfg, captions, {"name": "t"}, tmp_path, log=lines.append)
    path = next(tmp_path.glob("text-tokenizers/*.json"))
    body = json.loads(path.read_text())
    vocab = body["model"]["vocab"]
    a, b = list(vocab)[:2]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # swapped ids: still a valid tokenizer file
    path.write_text(json.dumps(body))
    again, _ = tokenizer_for(cfg, captions, {"name": "t"}, tmp_path, log=lines.append)
    assert any("cached text tokenizer" in x and "do not match" in x for x in lines)
    assert torch.equal(again.encode(captions)[0], first.encode(captions)[0])


@pytest.mark.e2e
def test_an_encoder_trained_on_another_copy_of_the_data_is_not_reused(clean, tmp_path, capsys):
    from harness.storage import atomic_json

    cache, numbers = clean
    report = _artifact(cache, "pretrain report")
    body = json.loads(report.read_text())
    body["data"]["checksum"] = "0" * 16  # as if the copy changed after training (a repair, a regeneration)
    atomic_json(report, body, digest=True)
    capsys.readouterr()
    record, _ = run(_cfg(cache, tmp_path, "linear-cached"), progress=False)
    assert "was trained on another copy of moving-digits" in capsys.readouterr().err and not record["pretrain"]["reused"]
    assert {t["task"]: t["metrics"] for t in record["results"]} == numbers["linear-cached"]
