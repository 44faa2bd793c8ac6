"""Code versions: recorded digests match the source, digests see code but not docs, and a version
change keys a new pre-training."""
from __future__ import annotations

import textwrap

from harness import code_version
from harness.config import load_config


def test_recorded_digests_match_the_source():
    """Fails when the training or evaluation path changed without its version being considered: bump
    the component's version in harness/code_versions.json if the change alters what is learned or
    measured, then record the digest with `python -m harness.code_version --update`."""
    stale = code_version.stale()
    assert not stale, "source changed since its code version was recorded: " + ", ".join(
        f"{name} (files {', '.join(str(f.relative_to(code_version.ROOT)) for f in code_version.components()[name])})"
        for name in stale)


def test_every_method_and_protocol_is_versioned():
    names = set(code_version.components())
    assert {"training", "eval", "method:rho_byol", "method:random_init", "protocol:linear"} <= names
    assert names <= set(code_version.recorded())


def test_digest_ignores_docs_and_comments_but_not_code(tmp_path):
    def digest(src: str) -> str:
        f = tmp_path / "m.py"
        f.write_text(textwrap.dedent(src))
        return code_version.source_digest([f])

    base = digest('''
        """Module doc."""
        def f(x):
            """Doc."""
            return x * 2  # double
        ''')
    assert base == digest('''
        def f(x):

            # reworded comment
            return x * 2
        ''')
    assert base != digest('''
        def f(x):
            return x * 3
        ''')


def test_versions_compose_and_unrecorded_modules_get_a_digest(monkeypatch):
    rec = {k: dict(v) for k, v in code_version.recorded().items()}
    rec["training"]["version"], rec["method:rho_byol"]["version"] = 7, 3
    monkeypatch.setattr(code_version, "recorded", lambda: rec)
    assert code_version.pretrain_version("rho_byol") == "7.3"
    del rec["method:rho_byol"]
    assert code_version.pretrain_version("rho_byol").startswith("7.d")


def test_a_code_version_change_changes_the_pretraining_key():
    cfg = load_config("ci")
    assert cfg.pretrain_key("cpu", "fp32", "1.1") != cfg.pretrain_key("cpu", "fp32", "1.2")
