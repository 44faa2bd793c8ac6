"""The real-dataset readers on miniatures of the official layouts (`bench data synth`): every split loads,
classes come in the official index order, specific files carry the labels the annotation files give,
clips decode from each container, and the index is built once and reused."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from harness import catalog
from harness.config import load_config
from harness.data import synth
from harness.data.datasets import LabelledViews, VideoSet
from harness.data.sampling import ViewLayout
from harness.errors import ConfigError


@pytest.fixture(scope="module")
def minis(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("minis")
    return {f: synth.synth(f, base / f) for f in synth.FORMATS}


def _load(name: str, root: Path, cache: Path, *extra: str):
    cfg = load_config("ci", [f"datasets.{name}.root={str(root)!r}", f"run.cache_dir={str(cache)!r}", *extra])
    return catalog.DATASETS.get(name), cfg.datasets[name]


def _decodes(videos_dir: Path, entries: list[dict]) -> None:
    """One clip x 3 crops of the first readable entry decodes to frames of the ci clip shape."""
    clip = load_config("ci").backbone.clip
    e = next(e for e in entries if e["frames"] > 0)
    item = LabelledViews(VideoSet(videos_dir, [e], cache_frames=False), clip, ViewLayout(1, 3), ["class"])[0]
    assert item["views"].shape == (3, 3, clip.frames, clip.test_short_side, clip.test_short_side)
    assert item["labels"]["class"] == e["labels"]["class"] and float(item["views"].std()) > 0


def test_k400(minis, tmp_path):
    ds, cfg = _load("k400", minis["k400"], tmp_path)
    assert ds.classes(cfg, tmp_path) == tuple(synth.K400_CLASSES) == tuple(sorted(synth.K400_CLASSES))
    for split, rows_file in (("train", "train.csv"), ("val", "val.csv")):
        videos, entries = ds.split(cfg, tmp_path, split, progress=False)
        with open(minis["k400"] / "annotations" / rows_file, newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(entries) == len(rows)
        for r, e in zip(rows, entries):  # every row's label, as an index into the sorted classes
            assert e["id"] == f"{r['youtube_id']}_{int(r['time_start']):06d}_{int(r['time_end']):06d}"
            assert e["labels"]["class"] == synth.K400_CLASSES.index(r["label"])
        _decodes(videos, entries)
    with pytest.warns(UserWarning, match="1 of 20 annotated videos are missing or unreadable"):
        _, train = ds.split(cfg, tmp_path, "train", progress=False)
    assert sum(e["frames"] == 0 for e in train) == 1  # the one missing clip stays listed, with no frames
    assert any("(" in c for c in ds.classes(cfg, tmp_path)) and any("'" in c for c in ds.classes(cfg, tmp_path))


@pytest.mark.parametrize("split_id", ["1", "2", "3"])
def test_ucf101(minis, tmp_path, split_id):
    ds, cfg = _load("ucf101", minis["ucf101"], tmp_path, f"datasets.ucf101.split='{split_id}'")
    assert ds.classes(cfg, tmp_path) == tuple(synth.UCF101_CLASSES)
    _, train = ds.split(cfg, tmp_path, "train", progress=False)
    videos, test = ds.split(cfg, tmp_path, "test", progress=False)
    assert len(train) + len(test) == 6 * len(synth.UCF101_CLASSES) and not {e["id"] for e in train} & {
        e["id"] for e in test}
    k = int(split_id)
    tested = {f"g{2 * k - 1:02d}", f"g{2 * k:02d}"}
    assert all(e["id"].split("_")[-2] in tested for e in test)
    hand = [e for e in test if e["path"].startswith("HandstandPushups/v_HandStandPushups_")]
    assert hand and all(e["labels"]["class"] == synth.UCF101_CLASSES.index("HandstandPushups") for e in hand)
    assert all(e["frames"] > 0 for e in train + test)
    _decodes(videos, test)


def test_hmdb51(minis, tmp_path):
    ds, cfg = _load("hmdb51", minis["hmdb51"], tmp_path)
    assert ds.classes(cfg, tmp_path) == tuple(synth.HMDB51_CLASSES)
    videos, train = ds.split(cfg, tmp_path, "train", progress=False)
    _, test = ds.split(cfg, tmp_path, "test", progress=False)
    assert len(train) == 3 * 4 and len(test) == 2 * 4
    odd = [e for e in train + test if "[" in e["path"] or "&" in e["path"]]
    assert odd and all((videos / e["path"]).exists() and e["frames"] > 0 for e in odd)
    for e in train + test:
        assert e["labels"]["class"] == synth.HMDB51_CLASSES.index(e["path"].split("/")[0])
    _decodes(videos, odd)


def test_ssv2(minis, tmp_path):
    ds, cfg = _load("ssv2", minis["ssv2"], tmp_path)
    assert ds.classes(cfg, tmp_path) == tuple(synth.SSV2_CLASSES)
    videos, val = ds.split(cfg, tmp_path, "validation", progress=False)
    raw = json.loads((minis["ssv2"] / "something-something-v2-validation.json").read_text())
    for r, e in zip(raw, val):  # the class is the template without brackets, not the caption
        assert e["id"] == r["id"] and e["labels"]["class"] == synth.SSV2_CLASSES.index(
            r["template"].replace("[", "").replace("]", ""))
    assert any(r["template"].startswith("[Something]") for r in raw)
    _decodes(videos, val)


def test_diving48(minis, tmp_path):
    ds, cfg = _load("diving48", minis["diving48"], tmp_path)
    classes = ds.classes(cfg, tmp_path)
    assert len(classes) == 48 and classes[30] == "Forward+Dive+NoTwis+STR"
    videos, test = ds.split(cfg, tmp_path, "test", progress=False)
    raw = json.loads((minis["diving48"] / "Diving48_V2_test.json").read_text())
    assert [(e["id"], e["labels"]["class"], e["frames"]) for e in test] == [
        (r["vid_name"], r["label"], r["end_frame"]) for r in raw]
    _decodes(videos, test)


def test_the_index_is_built_once_and_rebuilt_when_the_copy_changes(minis, tmp_path):
    ds, cfg = _load("diving48", minis["diving48"], tmp_path)
    ds.split(cfg, tmp_path, "train", progress=False)
    (index,) = (tmp_path / "indexes").glob("diving48-*.json")
    stamp = index.stat().st_mtime_ns
    ds.split(cfg, tmp_path, "test", progress=False)
    assert [p.stat().st_mtime_ns for p in (tmp_path / "indexes").glob("*.json")] == [stamp]


def test_a_missing_root_or_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets.ucf101.root: set the folder"):
        load_config("ci", ["protocol.tasks=['ucf101']"])
    with pytest.raises(ConfigError, match="is not a folder"):
        load_config("ci", ["protocol.tasks=['ucf101']", f"datasets.ucf101.root='{tmp_path / 'nope'}'"])
    with pytest.raises(ConfigError, match="split: 1, 2 or 3"):
        load_config("ci", ["protocol.tasks=['hmdb51']", f"datasets.hmdb51.root='{tmp_path}'",
                           "datasets.hmdb51.split='4'"])


def test_paths_outside_the_root_are_left_out(minis, tmp_path):
    import shutil

    root = tmp_path / "ucf"
    shutil.copytree(minis["ucf101"], root)
    lst = root / "ucfTrainTestlist" / "testlist01.txt"
    lst.write_bytes(lst.read_bytes() + b"ApplyEyeMakeup/../../../etc/passwd\r\n")
    ds, cfg = _load("ucf101", root, tmp_path)
    with pytest.warns(UserWarning, match="lead outside"):
        _, test = ds.split(cfg, tmp_path, "test", progress=False)
    assert not any("passwd" in e["path"] for e in test)
    assert np.all([e["frames"] > 0 for e in test])


@pytest.mark.e2e
def test_pretrain_on_the_k400_miniature_and_probe_it(minis, tmp_path):
    """`bench run --profile ci` pre-training ρBYOL on the K400-format miniature and scoring it with the
    linear probe on its val split: the missing clip is skipped and counted in the record."""
    from harness.cli import main

    results = tmp_path / "results"
    argv = ["run", "--method", "rho_byol", "--protocol", "linear-cached", "--profile", "ci", "-q",
            "--results-dir", str(results), "--set", f"run.cache_dir='{tmp_path / 'cache'}'",
            "--set", f"datasets.k400.root='{minis['k400']}'", "--set", "pretrain.dataset='k400'",
            "--set", "protocol.tasks=['k400']", "--set", "data.max_bad_fraction=0.1"]
    assert main(argv) == 0
    (path,) = (results / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    pre = rec["pretrain"]
    assert pre["steps"] == pre["total_steps"] == 3 and len(pre["bad_videos"]) == 1
    assert rec["datasets"]["k400"]["classes"] == len(synth.K400_CLASSES)
    (r,) = rec["results"]
    assert r["task"] == "k400" and r["counts"]["test_videos"] == 2 * len(synth.K400_CLASSES)
    assert len(rec["unreadable_videos"]) == 1 and "_000" in rec["unreadable_videos"][0]


@pytest.mark.e2e
def test_finetune_on_the_ucf101_miniature(minis, tmp_path):
    from harness.cli import main

    results = tmp_path / "results"
    argv = ["run", "--method", "random_init", "--protocol", "finetune", "--profile", "ci", "-q",
            "--results-dir", str(results), "--set", f"run.cache_dir='{tmp_path / 'cache'}'",
            "--set", f"datasets.ucf101.root='{minis['ucf101']}'", "--set", "protocol.tasks=['ucf101']"]
    assert main(argv) == 0
    (path,) = (results / "runs").glob("*.json")
    (r,) = json.loads(path.read_text())["results"]
    assert r["task"] == "ucf101" and r["counts"]["train_videos"] == 16 and r["counts"]["test_videos"] == 8
    assert 0 <= r["metrics"]["top1"] <= 100 and r["extra"]["fit"]["steps"] == 2
