"""The dataset miniatures of `harness.data.synth` keep the official layouts' traps, byte for byte.

The readers are tested against these miniatures, so a miniature that drifted from the real format
(LF instead of CRLF, a label left unquoted, an index written as a number) would make those tests
pass on files no real copy looks like. Each format is generated once per module.
"""
from __future__ import annotations

import csv
import io
import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from harness.data import synth as S
from harness.data.encoding import PALETTE

EXPECTED_VIDEO = {  # codec, container (PyAV's format name contains it), frame rates, sizes, extension
    "k400": ("h264", "mp4", {Fraction(30000, 1001), Fraction(25)}, {(340, 256)}, ".mp4"),
    "ucf101": ("mpeg4", "avi", {Fraction(25)}, {(320, 240)}, ".avi"),
    "hmdb51": ("mpeg4", "avi", {Fraction(30)}, {(320, 240), (352, 240)}, ".avi"),
    "ssv2": ("vp9", "webm", {Fraction(12)}, {(320, 240), (426, 240)}, ".webm"),
    "diving48": ("h264", "mp4", {Fraction(30)}, {(320, 240)}, ".mp4"),
}
VIDEO_COUNTS = {"k400": 4 * (5 + 2 + 1) - 1, "ucf101": 4 * 6, "hmdb51": 4 * 6, "ssv2": 4 * 7, "diving48": 4 * 6}
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    return {f: S.synth(f, tmp_path_factory.mktemp(f) / "root") for f in S.FORMATS}


def _videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi", ".webm"))


def _probe(path: Path) -> tuple[str, str, Fraction, tuple[int, int], int, np.ndarray]:
    """codec, container, frame rate, (width, height), decoded frame count, first frame."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return (s.codec_context.name, c.format.name, Fraction(s.average_rate), (s.width, s.height),
                len(frames), frames[0])


# ----------------------------------------------------------------------------- the API


def test_unknown_format_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="k400, ucf101, hmdb51, ssv2, diving48"):
        S.synth("kinetics", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        S.synth("ucf101", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_class_constants_are_in_official_order():
    assert S.K400_CLASSES == sorted(S.K400_CLASSES) and len(S.K400_CLASSES) == 4
    assert S.HMDB51_CLASSES == sorted(S.HMDB51_CLASSES)
    assert S.UCF101_CLASSES[2] == "HandstandPushups"
    assert len(S.DIVING48_VOCAB) == 48 and len({tuple(v) for v in S.DIVING48_VOCAB}) == 48
    assert all(len(v) == 4 for v in S.DIVING48_VOCAB)
    assert S.DIVING48_VOCAB[30] == ["Forward", "Dive", "NoTwis", "STR"]


# ----------------------------------------------------------------------------- videos


@pytest.mark.parametrize("fmt", S.FORMATS)
def test_videos_are_real_files_in_the_datasets_container_and_codec(made, fmt):
    codec, container, rates, sizes, ext = EXPECTED_VIDEO[fmt]
    videos = _videos(made[fmt])
    assert len(videos) == VIDEO_COUNTS[fmt]
    assert not [p for p in made[fmt].rglob("*") if ".tmp" in p.name]  # every rename happened
    seen_rates, seen_sizes = set(), set()
    for p in videos:
        c, fmt_name, rate, size, n, _ = _probe(p)
        assert p.suffix == ext and c == codec and container in fmt_name, (p, c, fmt_name)
        assert n >= 24, p
        seen_rates.add(rate)
        seen_sizes.add(size)
    assert seen_rates == rates and seen_sizes == sizes


def test_videos_show_their_class(made):
    """The background colour is the class's (UCF101: class = folder), so a classifier can learn it."""
    for i, cls in enumerate(S.UCF101_CLASSES):
        for p in sorted((made["ucf101"] / "UCF-101" / cls).iterdir()):
            first = _probe(p)[5].reshape(-1, 3).astype(np.float32)
            median = np.median(first, axis=0)
            nearest = int(np.argmin(np.abs(PALETTE - median).sum(axis=1)))
            assert nearest == i, (p, median)


def test_same_seed_same_bytes_other_seed_other_videos(made, tmp_path):
    a, b, c = (S.synth("ucf101", tmp_path / n, seed=s) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes() == (made["ucf101"] / rel).read_bytes(), rel
    assert all((a / rel).read_bytes() != (c / rel).read_bytes() for rel in files if rel.suffix == ".avi")


# ----------------------------------------------------------------------------- Kinetics-400


def test_k400_csvs(made):
    root = made["k400"]
    ids = []
    for split, per_class in (("train", 5), ("val", 2), ("test", 1)):
        raw = (root / "annotations" / f"{split}.csv").read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n")
        lines = raw.decode().splitlines()
        assert lines[0] == "label,youtube_id,time_start,time_end,split,is_cc"
        for line in lines[1:]:
            label = next(csv.reader([line]))[0]
            assert (" " in label) == line.startswith('"'), line  # labels with spaces quoted, as CVDF's are
        rows = list(csv.DictReader(io.StringIO(raw.decode())))
        assert sorted({r["label"] for r in rows}) == S.K400_CLASSES
        assert all(sum(r["label"] == c for r in rows) == per_class for c in S.K400_CLASSES)
        assert {r["split"] for r in rows} == {split}
        assert all(int(r["time_end"]) - int(r["time_start"]) == 10 for r in rows)
        assert all(YOUTUBE_ID.match(r["youtube_id"]) for r in rows)
        if split == "train":
            assert {r["is_cc"] for r in rows} == {"0", "1"}
        ids += [r["youtube_id"] for r in rows]
        missing = [r for r in rows if not (root / split / f"{r['youtube_id']}_{int(r['time_start']):06d}_"
                                                       f"{int(r['time_end']):06d}.mp4").exists()]
        assert len(missing) == (1 if split == "train" else 0)
    assert len(set(ids)) == len(ids)
    assert any(i.startswith("-") for i in ids) and any(i.startswith("_") for i in ids)
    assert b'"air drumming",' in (root / "annotations" / "val.csv").read_bytes()
    assert b"\"passing American football (in game)\"," in (root / "annotations" / "train.csv").read_bytes()


# ----------------------------------------------------------------------------- UCF101


def test_ucf101_lists(made):
    root = made["ucf101"]
    ann = root / "ucfTrainTestlist"
    names = ["classInd.txt"] + [f"{k}list0{i}.txt" for k in ("train", "test") for i in (1, 2, 3)]
    assert sorted(p.name for p in ann.iterdir()) == sorted(names)
    for n in names:
        raw = (ann / n).read_bytes()
        assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n"), n  # CRLF, even the last line
    assert (ann / "classInd.txt").read_text().splitlines() == [f"{i + 1} {c}" for i, c in enumerate(S.UCF101_CLASSES)]
    everything = {str(p.relative_to(root / "UCF-101")) for p in _videos(root)}
    assert any("/v_HandStandPushups_g" in p and p.startswith("HandstandPushups/") for p in everything)
    for k in (1, 2, 3):
        train = [line.split() for line in (ann / f"trainlist0{k}.txt").read_text().splitlines()]
        test = (ann / f"testlist0{k}.txt").read_text().splitlines()
        assert all(len(t) == 2 and S.UCF101_CLASSES[int(t[1]) - 1] == t[0].split("/")[0] for t in train)
        assert all(" " not in t for t in test)  # test lists carry no label
        assert {int(re.search(r"_g(\d\d)_c01\.avi$", t)[1]) for t in test} == {2 * k - 1, 2 * k}
        assert {t[0] for t in train} | set(test) == everything and not {t[0] for t in train} & set(test)


# ----------------------------------------------------------------------------- HMDB51


def test_hmdb51_splits(made):
    root = made["hmdb51"]
    ann = root / "testTrainMulti_7030_splits"
    assert len(list(ann.iterdir())) == 3 * len(S.HMDB51_CLASSES)
    names = [p.name for p in _videos(root)]
    assert all(re.match(r"^.+_[a-z_]+_[a-z]_[a-z]{2}_np\d_[a-z]{2}_[a-z]{3}_\d+\.avi$", n) for n in names)
    for ch in "[]!&()":
        assert any(ch in n for n in names), ch
    for cls in S.HMDB51_CLASSES:
        per_split = []
        for k in (1, 2, 3):
            raw = (ann / f"{cls}_test_split{k}.txt").read_bytes()
            lines = raw.split(b"\n")
            assert lines[-1] == b"" and all(line.endswith(b" ") for line in lines[:-1])  # "<name> <code> \n"
            codes = dict(line.decode().split() for line in lines[:-1])
            assert sorted(codes.values()) == ["0", "1", "1", "1", "2", "2"]
            assert sorted(codes) == sorted(p.name for p in (root / "hmdb51_org" / cls).iterdir())
            per_split.append(codes)
        assert per_split[0] != per_split[1] != per_split[2] != per_split[0]


# ----------------------------------------------------------------------------- Something-Something v2


def test_ssv2_jsons(made):
    root = made["ssv2"]
    labels_raw = (root / "something-something-v2-labels.json").read_text()
    labels = json.loads(labels_raw)
    assert labels == {c: str(i) for i, c in enumerate(S.SSV2_CLASSES)}
    assert all(isinstance(v, str) for v in labels.values())
    ids: dict[str, list[str]] = {}
    placeholders = set()
    for split, per_class in (("train", 4), ("validation", 2)):
        text = (root / f"something-something-v2-{split}.json").read_text()
        assert text.startswith('[{"id":"') and text.endswith("}]") and "},\n{" in text and '": ' not in text
        entries = json.loads(text)
        assert len(text.splitlines()) == len(entries)  # one compact object per line
        for e in entries:
            assert set(e) == {"id", "label", "template", "placeholders"} and isinstance(e["id"], str)
            assert "[" in e["template"] and e["template"].lower().count("[something]") == len(e["placeholders"])
            cls = e["template"].replace("[", "").replace("]", "")
            assert cls in S.SSV2_CLASSES and e["label"] != cls
            assert all(p in e["label"] for p in e["placeholders"])
            placeholders.add(len(e["placeholders"]))
        counts = [sum(e["template"].replace("[", "").replace("]", "") == c for e in entries) for c in S.SSV2_CLASSES]
        assert counts == [per_class] * 4
        assert any(e["template"] == "[Something] falling like a rock" for e in entries)
        ids[split] = [e["id"] for e in entries]
    assert {1, 2} <= placeholders
    test = json.loads((root / "something-something-v2-test.json").read_text())
    assert all(set(e) == {"id"} for e in test) and len(test) == 4
    ids["test"] = [e["id"] for e in test]
    answers = [line.split(";") for line in (root / "test-answers.csv").read_text().splitlines()]
    assert [a[0] for a in answers] == ids["test"] and sorted(a[1] for a in answers) == S.SSV2_CLASSES
    every = [i for v in ids.values() for i in v]
    assert len(set(every)) == len(every) and all(i.isdigit() for i in every)
    assert sorted(every, key=int) == [str(i) for i in range(1, len(every) + 1)]
    assert any(sorted(map(int, v)) != list(range(min(map(int, v)), max(map(int, v)) + 1)) for v in ids.values())
    assert sorted(p.name for p in _videos(root)) == sorted(f"{i}.webm" for i in every)


# ----------------------------------------------------------------------------- Diving48


def test_diving48_jsons(made):
    root = made["diving48"]
    assert json.loads((root / "Diving48_vocab.json").read_text()) == S.DIVING48_VOCAB
    names = []
    for split, per_class in (("train", 4), ("test", 2)):
        raw = (root / f"Diving48_V2_{split}.json").read_text()
        entries = json.loads(raw)
        assert raw == json.dumps(entries, indent=2) and raw.startswith('[\n  {\n    "vid_name": ')
        assert sorted({e["label"] for e in entries}) == [0, 1, 2, 3]
        assert all(sum(e["label"] == c for e in entries) == per_class for c in range(4))
        for e in entries:
            assert set(e) == {"vid_name", "label", "start_frame", "end_frame"} and e["start_frame"] == 0
            assert re.match(r"^[A-Za-z0-9_-]{11}_\d{5}$", e["vid_name"])
            assert _probe(root / "rgb" / f"{e['vid_name']}.mp4")[4] == e["end_frame"]
        names += [e["vid_name"] for e in entries]
    assert any(n.startswith("-") for n in names) and any(n.startswith("_") for n in names)
    assert sorted(p.stem for p in _videos(root)) == sorted(names)
