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


def _bench_run(tmp_path: Path, method: str, protocol: str, *sets: str) -> dict:
    """`bench run --profile ci` in process with the given `--set`s; returns its one record."""
    from harness.cli import main

    results = tmp_path / "results"
    argv = ["run", "--method", method, "--protocol", protocol, "--profile", "ci", "-q", "--results-dir",
            str(results), "--set", f"run.cache_dir='{tmp_path / 'cache'}'"]
    assert main([*argv, *(x for kv in sets for x in ("--set", kv))]) == 0
    (path,) = (results / "runs").glob("*.json")
    return json.loads(path.read_text())


def _decodes(videos_dir: Path, entries: list[dict]) -> None:
    """One clip x 3 crops of the first readable entry decodes to frames of the ci clip shape."""
    clip = load_config("ci").backbone.clip
    e = next(e for e in entries if e["frames"] > 0)
    item = LabelledViews(VideoSet(videos_dir, [e], cache_frames=False), clip, ViewLayout(1, 3), ["class"])[0]
    assert item["views"].shape == (3, clip.frames, 3, clip.test_short_side, clip.test_short_side)  # uint8 (V, T, C, H, W)
    assert item["labels"]["class"] == e["labels"]["class"] and float(item["views"].float().std()) > 0


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


def test_a_missing_root_or_split_is_a_config_error_before_any_work(tmp_path, capsys):
    from harness.cli import main

    run = ["run", "-m", "rho_byol", "-p", "ci", "-q", "--set", "protocol.tasks=['ucf101']", "--set",
           f"run.cache_dir='{tmp_path}'", "--results-dir", str(tmp_path / "r")]
    assert main(run) == 2 and "datasets.ucf101.root: set the folder" in capsys.readouterr().err
    assert main([*run, "--set", f"datasets.ucf101.root='{tmp_path / 'nope'}'"]) == 2
    assert "is not a folder" in capsys.readouterr().err and not (tmp_path / "checkpoints").exists()
    with pytest.raises(ConfigError, match="split: 1, 2, 3 or all"):
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
    rec = _bench_run(tmp_path, "rho_byol", "linear-cached", f"datasets.k400.root='{minis['k400']}'",
                     "pretrain.dataset='k400'", "protocol.tasks=['k400']", "data.max_bad_fraction=0.1")
    pre = rec["pretrain"]
    assert pre["steps"] == pre["total_steps"] == 3 and len(pre["bad_videos"]) == 1
    assert rec["datasets"]["k400"]["classes"] == len(synth.K400_CLASSES)
    (r,) = rec["results"]
    assert r["task"] == "k400" and r["counts"]["test_videos"] == 2 * len(synth.K400_CLASSES)
    assert len(rec["unreadable_videos"]) == 1 and "_000" in rec["unreadable_videos"][0]


@pytest.mark.e2e
def test_finetune_on_the_ucf101_miniature(minis, tmp_path):
    rec = _bench_run(tmp_path, "random_init", "finetune", f"datasets.ucf101.root='{minis['ucf101']}'",
                     "protocol.tasks=['ucf101']",
                     "backbone.clip.stride=8")  # 8x8 clips span 57 frames: the 50-frame videos are short
    (r,) = rec["results"]
    assert r["task"] == "ucf101" and r["counts"]["train_videos"] == 16 and r["counts"]["test_videos"] == 8
    assert 0 <= r["metrics"]["top1"] <= 100 and r["extra"]["fit"]["steps"] == 2
    assert rec["protocol_card"]["tasks"]["ucf101"]["short_videos"] == {"train": 16, "test": 8}


def _audio_only(path: Path) -> None:
    """An AVI with one audio stream and no video stream, under a video's name."""
    import av

    with av.open(str(path), "w", format="avi") as out:
        s = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for pkt in [*s.encode(frame), *s.encode()]:
            out.mux(pkt)


@pytest.fixture()
def faulty_ucf(minis, tmp_path) -> Path:
    """The UCF101 miniature with one of each fault a real copy can have (all in split 1's training set)."""
    import shutil

    root = tmp_path / "ucf"
    shutil.copytree(minis["ucf101"], root)
    v = root / "UCF-101"
    (v / "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi").unlink()  # missing
    (v / "Basketball/v_Basketball_g03_c01.avi").write_bytes(b"")  # zero bytes
    cut = v / "YoYo/v_YoYo_g03_c01.avi"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 5])  # truncated
    _audio_only(v / "HandstandPushups/v_HandStandPushups_g04_c01.avi")  # no video stream
    shutil.copy(v / "YoYo/v_YoYo_g05_c01.avi", v / "YoYo/v_YoYo_g99_c01.avi")  # on disk, in no list
    lst = root / "ucfTrainTestlist/trainlist01.txt"
    lst.write_bytes(lst.read_bytes() + b"YoYo/../../../outside.avi 4\r\nJuggling/v_Juggling_g01_c01.avi 5\r\n")
    return root


def test_verify_names_every_planted_fault_and_a_run_skips_them(faulty_ucf, tmp_path, capsys):
    from harness.cli import main

    args = ["data", "verify", "ucf101", "-p", "ci", "-q", "--set", f"datasets.ucf101.root='{faulty_ucf}'",
            "--set", f"run.cache_dir='{tmp_path / 'cache'}'"]
    assert main(args) == 3  # 5 of 17 training lines bad: more than data.max_bad_fraction
    out = capsys.readouterr().out
    expected = {"missing": "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi: no such file",
                "empty": "Basketball/v_Basketball_g03_c01.avi: zero-byte file",
                "unannotated": "YoYo/v_YoYo_g99_c01.avi: a video file no annotation lists",
                "outside root": "YoYo/../../../outside.avi: the annotated path leads outside",
                "annotation": "trainlist01.txt: Juggling/v_Juggling_g01_c01.avi: unknown class 'Juggling'"}
    for kind, text in expected.items():
        assert any(line.split()[0] == kind.split()[0] and text in line for line in out.splitlines()), (kind, out)
    lines = {line.split()[0]: line for line in out.splitlines() if "v_YoYo_g03_c01" in line or "g04_c01" in line}
    assert lines.get("truncated") or lines.get("unreadable")  # the cut file: either way, named with a reason
    assert any("HandStandPushups_g04_c01.avi" in line and "no video stream" in line for line in out.splitlines())
    assert "NOT usable: split 'train' loses 5 of 17 videos" in out  # 4 unreadable + 1 outside the root
    assert main([*args, "--set", "data.max_bad_fraction=0.5"]) == 0
    # a run on that copy completes, skipping and counting the bad videos
    results = tmp_path / "results"
    run = ["run", "--method", "random_init", "--protocol", "linear-cached", "-p", "ci", "-q", "--results-dir",
           str(results), "--set", f"datasets.ucf101.root='{faulty_ucf}'", "--set", "protocol.tasks=['ucf101']",
           "--set", f"run.cache_dir='{tmp_path / 'cache'}'", "--set", "data.max_bad_fraction=0.5"]
    assert main(run) == 0
    (rec,) = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    assert len(rec["unreadable_videos"]) == 4 and rec["results"][0]["counts"]["train_videos"] == 16 - 4


@pytest.mark.parametrize("cached", [True, False])
def test_a_truncated_file_is_unreadable_not_padded(faulty_ucf, cached):
    """The cut AVI's header promises 50 frames and 2 decode: both decoding paths refuse it, and the
    healthy files of the same copy decode."""
    from harness.errors import VideoDecodeError

    v = faulty_ucf / "UCF-101"
    entries = [{"path": "YoYo/v_YoYo_g03_c01.avi", "frames": 50}, {"path": "YoYo/v_YoYo_g04_c01.avi", "frames": 50}]
    videos = VideoSet(v, entries, cache_frames=cached)
    with pytest.raises(VideoDecodeError, match="truncated"):
        videos.frames(0, np.arange(40, 48))
    assert videos.frames(1, np.arange(40, 48)).shape == (8, 240, 320, 3)


def test_a_file_without_a_video_stream_is_named_as_such_when_decoded(faulty_ucf):
    from harness.data.video import decode_frames
    from harness.errors import VideoDecodeError

    with pytest.raises(VideoDecodeError, match="v_HandStandPushups_g04_c01.avi: no video stream"):
        decode_frames(faulty_ucf / "UCF-101/HandstandPushups/v_HandStandPushups_g04_c01.avi", [0, 1])


def test_resize_keeps_the_layout_and_annotations_and_resumes(minis, tmp_path):
    """`bench data resize`: every video at the new short side with keyframes every `gop` frames, the same
    frame count and container; annotation files copied byte for byte; a second run has nothing to do."""
    import av

    from harness.cli import main

    out = tmp_path / "small"
    args = ["data", "resize", "hmdb51", "-q", "--out", str(out), "--short-side", "120", "--gop", "8",
            "--set", f"datasets.hmdb51.root='{minis['hmdb51']}'"]
    assert main(args) == 0
    splits = sorted((minis["hmdb51"] / "testTrainMulti_7030_splits").iterdir())
    assert all((out / "testTrainMulti_7030_splits" / p.name).read_bytes() == p.read_bytes() for p in splits)
    for src in (minis["hmdb51"] / "hmdb51_org").rglob("*.avi"):
        dst = out / src.relative_to(minis["hmdb51"])
        with av.open(str(src)) as a, av.open(str(dst)) as b:
            sa, sb = a.streams.video[0], b.streams.video[0]
            assert sb.codec_context.name == "mpeg4" and sb.codec_context.height == 120
            assert sb.codec_context.width == round(sa.codec_context.width * 120 / sa.codec_context.height / 2) * 2
            keys = [i for i, p in enumerate(b.demux(sb)) if p.is_keyframe]
        assert keys[:3] == [0, 8, 16]
    ds, cfg = _load("hmdb51", out, tmp_path)
    _, train = ds.split(cfg, tmp_path, "train", progress=False)
    assert len(train) == 12 and all(e["frames"] == 60 for e in train)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.avi")}
    assert main(args) == 0 and {p: p.stat().st_mtime_ns for p in out.rglob("*.avi")} == stamp


def test_clips_are_cut_in_time_at_the_encoders_rate(minis, tmp_path):
    """With backbone.clip.fps = 30, an 8x8 clip lasts 56/30 s in the K400 miniature's 25 fps and 29.97 fps
    files alike: each target frame maps to the source frame on screen at that moment."""
    ds, cfg = _load("k400", minis["k400"], tmp_path)
    videos_dir, entries = ds.split(cfg, tmp_path, "val", progress=False)
    by_rate = {round(e["fps"]): e for e in entries}
    assert set(by_rate) == {25, 30}
    for e in by_rate.values():
        videos = VideoSet(videos_dir, [e], cache_frames=False, fps=30)
        src = e["fps"]
        assert videos.num_frames(0) == int(e["frames"] * 30 / src)
        idx = np.arange(0, 57, 8)  # an 8x8 clip's target-rate indices
        got = videos.frames(0, idx)
        expected = VideoSet(videos_dir, [e], cache_frames=False).frames(0, (idx * src / 30).astype(int))
        assert np.array_equal(got, expected)
        assert (idx[-1] * src / 30) / src == pytest.approx(56 / 30)  # the same 1.87 s at either rate
    plain = VideoSet(videos_dir, [by_rate[25]], cache_frames=False)  # fps 0: the video's own frames
    assert plain.num_frames(0) == by_rate[25]["frames"]


def test_the_index_records_each_files_keyframe_spacing_and_reads_use_it(minis, tmp_path, monkeypatch):
    """The probe measures the keyframe interval from the container (25 for the UCF101 miniature's AVIs,
    8 after a resize with --gop 8); reads of such a video seek only across more than that many frames."""
    from harness.data import datasets
    from harness.data.resize import resize_video
    from harness.data.video import keyframe_interval

    ds, cfg = _load("ucf101", minis["ucf101"], tmp_path)
    _, train = ds.split(cfg, tmp_path, "train", progress=False)
    assert {e["gop"] for e in train} == {25}
    src = minis["ucf101"] / "UCF-101" / train[0]["path"]
    resize_video(str(src), str(tmp_path / "small.avi"), 120, 8)
    assert keyframe_interval(tmp_path / "small.avi") == 8
    seen = []
    monkeypatch.setattr(datasets, "decode_frames", lambda *a, **k: seen.append(k["seek_gap"]) or np.zeros((1, 1, 1, 3)))
    VideoSet(tmp_path, [{"path": "x.avi", "frames": 50, "gop": 100}], cache_frames=False).frames(0, np.arange(3))
    assert seen == [100]


def test_loader_workers_read_the_preloaded_cache_and_add_nothing_to_it(minis, tmp_path, monkeypatch):
    """Frames cached before the DataLoader's workers start are shared with them; a worker decodes what is
    not cached for the sample alone, so caches never multiply with the workers."""
    from harness.data import datasets

    ds, cfg = _load("ucf101", minis["ucf101"], tmp_path)
    root, train = ds.split(cfg, tmp_path, "train", progress=False)
    videos = VideoSet(root, train[:2], cache_frames=True)
    videos.preload("", progress=False)
    videos._cache.pop(1)
    monkeypatch.setattr(datasets, "get_worker_info", lambda: object())  # as inside a worker process
    a, b = videos.frames(0, np.arange(4)), videos.frames(1, np.arange(4))
    assert a.shape == b.shape == (4, 240, 320, 3) and list(videos._cache) == [0]


@pytest.mark.e2e
def test_split_all_scores_the_three_official_splits_and_reports_their_mean(minis, tmp_path):
    from harness.cli import main

    rec = _bench_run(tmp_path, "random_init", "knn", f"datasets.ucf101.root='{minis['ucf101']}'",
                     "datasets.ucf101.split='all'", "protocol.tasks=['ucf101', 'digits-motion']")
    by = {r["task"]: r for r in rec["results"]}
    assert sorted(by) == ["digits-motion", "ucf101", "ucf101@split1", "ucf101@split2", "ucf101@split3"]
    mean = np.mean([by[f"ucf101@split{k}"]["metrics"]["top1"] for k in (1, 2, 3)])
    assert by["ucf101"]["metrics"]["top1"] == pytest.approx(mean) and "top1" in by["ucf101"]["extra"]["split_std"]
    assert rec["datasets"]["ucf101"]["split"] == "all" and rec["config"]["datasets"]["ucf101"]["split"] == "all"
    assert main(["data", "verify", "ucf101", "-q", "--set", f"datasets.ucf101.root='{minis['ucf101']}'",
                 "--set", "datasets.ucf101.split='all'", "--set", f"run.cache_dir='{tmp_path / 'cache'}'"]) == 0


def test_k400_also_reads_path_label_lists(minis, tmp_path):
    """PySlowFast / mmaction2 style `path label` lists (a path with a space in it included) instead of the CSVs."""
    import shutil

    root = tmp_path / "k400"
    shutil.copytree(minis["k400"], root, ignore=shutil.ignore_patterns("annotations"))
    vids = sorted(p.relative_to(root).as_posix() for p in (root / "val").glob("*.mp4"))
    (root / "val" / "with space.mp4").write_bytes((root / vids[0]).read_bytes())
    (root / "annotations").mkdir()
    (root / "annotations/train.csv").write_text("".join(f"{v} {i % 3}\n" for i, v in enumerate(vids)))
    (root / "annotations/val.csv").write_text(f"val/with space.mp4 2\n{vids[1]} 0\n")
    ds, cfg = _load("k400", root, tmp_path)
    assert ds.classes(cfg, tmp_path) == ("0", "1", "2")
    videos, val = ds.split(cfg, tmp_path, "val", progress=False)
    assert [(e["path"], e["labels"]["class"]) for e in val] == [("val/with space.mp4", 2), (vids[1], 0)]
    assert all(e["frames"] > 0 for e in val)


@pytest.mark.e2e
def test_a_tasks_own_protocol_settings_apply_to_it_alone(minis, tmp_path):
    """`task_overrides.ucf101.finetune` changes UCF101's fit only; the other task keeps the section's settings,
    and the override names the run's variant."""
    rec = _bench_run(tmp_path, "random_init", "finetune", f"datasets.ucf101.root='{minis['ucf101']}'",
                     "protocol.tasks=['ucf101', 'digits-motion']",
                     "task_overrides.ucf101.finetune={epochs=1, lr_steps=[0.5], temporal_views=1}")
    by = {r["task"]: r for r in rec["results"]}
    assert by["ucf101"]["extra"]["fit"]["steps"] == 1 and by["ucf101"]["counts"]["temporal_views"] == 1
    assert by["digits-motion"]["extra"]["fit"]["steps"] == 2 * (100 // 16)
    assert rec["identity"]["protocol"]["task_overrides.ucf101.finetune.epochs"] == 1


def test_verify_resumes_and_rechecks_only_changed_files(faulty_ucf, tmp_path, monkeypatch):
    """A second verify reuses every saved check; a file that changed since is checked again."""
    from harness.data import verify as v

    ds, cfg = _load("ucf101", faulty_ucf, tmp_path)
    first = v.verify("ucf101", ds.listing(cfg), tmp_path, 15, 0.5, progress=False)
    calls = []
    real = v.check_video
    monkeypatch.setattr(v, "check_video", lambda p, n: calls.append(p) or real(p, n))
    again = v.verify("ucf101", ds.listing(cfg), tmp_path, 15, 0.5, progress=False)
    assert calls == [] and again.problems == first.problems
    (faulty_ucf / "UCF-101/Basketball/v_Basketball_g03_c01.avi").write_bytes(
        (faulty_ucf / "UCF-101/Basketball/v_Basketball_g04_c01.avi").read_bytes())  # the empty file repaired
    third = v.verify("ucf101", ds.listing(cfg), tmp_path, 15, 0.5, progress=False)
    assert [Path(p).name for p in calls] == ["v_Basketball_g03_c01.avi"]
    assert len(third.problems) == len(first.problems) - 1
