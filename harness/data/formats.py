"""Readers of the five official annotation formats: Kinetics-400, UCF101, HMDB51, Something-Something v2, Diving48.

Each reader turns a dataset folder, as distributed, into a `Listing`: the classes in their official
index order and, per split, the videos as (path relative to the video folder, class index, id). The
formats' traps are handled here, once (docs/datasets.md lists them with their sources): quoted K400
labels with spaces and parentheses, UCF101's CRLF lists and 1-based classInd with test lists
without labels (the class comes from the folder, never the file name: `v_HandStandPushups_*` sits
in `HandstandPushups/`), HMDB51's trailing spaces, class names with underscores and file names with
glob metacharacters (never globbed), SSv2's string label values and bracketed templates, Diving48's
vocabulary of four-part names. Nothing here decodes video.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv")


@dataclass
class Listing:
    """What the annotation files say: classes in index order, and per split (path, class index, id)."""

    videos_dir: Path  # the folder the paths are relative to
    classes: tuple[str, ...]
    splits: dict[str, list[tuple[str, int, str]]]
    annotation_files: list[Path] = field(default_factory=list)  # what the listing was read from (for the index key)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (annotation line or file, why it was left out)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{what}: {path} does not exist")
    return path


def _first_dir(root: Path, names: tuple[str, ...]) -> Path:
    """The first of `names` under `root` that is a folder, else `root` itself (a layout without the wrapper)."""
    for n in names:
        if (root / n).is_dir():
            return root / n
    return root


def _lines(path: Path) -> list[str]:
    """Non-empty lines with CR, LF and trailing spaces removed (UCF101 lists are CRLF, HMDB51's end in a space)."""
    return [line.rstrip("\r\n ").strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------- Kinetics-400

K400_SPLIT_FILES = {"train": ("train.csv", "kinetics_train.csv"), "val": ("val.csv", "validate.csv", "kinetics_val.csv"),
                    "test": ("test.csv", "kinetics_test.csv")}


def _k400_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_k400(root: Path, annotations: Path | None = None) -> Listing:
    """CVDF / DeepMind CSVs (`label,youtube_id,time_start,time_end,split[,is_cc]`). Classes: the labels of
    the training CSV in alphabetical order (the convention of mmaction2 and pytorchvideo: the files define
    no indices). Files `{youtube_id}_{start:06d}_{end:06d}.<ext>` are found anywhere under the root (flat
    split folders, class folders with raw or sanitised names), once, by a walk of the folder."""
    ann = annotations or _first_dir(root, ("annotations",))
    files = {s: next((ann / n for n in names if (ann / n).exists()), None) for s, names in K400_SPLIT_FILES.items()}
    if files["train"] is None:
        lists = {s: next((ann / n for n in names if (ann / n).exists()), None) for s, names in PATH_LABEL_FILES.items()}
        if lists["train"] is not None:
            return read_path_label_lists(root, {s: p for s, p in lists.items() if p is not None})
        raise ConfigError(f"k400: no train.csv (or kinetics_train.csv, or a `path label` list train.txt) in {ann}; "
                          "set datasets.k400.annotations")
    if files["train"].read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].count(",") < 3:
        return read_path_label_lists(root, {s: p for s, p in files.items() if p is not None})
    rows = {s: _k400_rows(p) for s, p in files.items() if p is not None}
    classes = tuple(sorted({r["label"] for r in rows["train"]}))
    index = {c: i for i, c in enumerate(classes)}
    found: dict[str, str] = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            stem, ext = os.path.splitext(n)
            if ext in VIDEO_EXTENSIONS:
                found.setdefault(stem, os.path.relpath(os.path.join(dirpath, n), root))
    splits, problems = {}, []
    for s, rs in rows.items():
        out = []
        for r in rs:
            if r.get("label") not in index:
                if r.get("label"):  # test CSVs may have no labels at all; a label unknown to training is a fault
                    problems.append((f"{files[s].name}: {r['youtube_id']}", f"unknown class {r['label']!r}"))
                continue
            stem = f"{r['youtube_id']}_{int(r['time_start']):06d}_{int(r['time_end']):06d}"
            out.append((found.get(stem, f"{s}/{stem}.mp4"), index[r["label"]], stem))
        splits[s] = out
    return Listing(root, classes, splits, [p for p in files.values() if p is not None], problems)


PATH_LABEL_FILES = {"train": ("train.txt", "kinetics400_train_list_videos.txt"),
                    "val": ("val.txt", "kinetics400_val_list_videos.txt"), "test": ("test.txt",)}


def read_path_label_lists(root: Path, files: dict[str, Path]) -> Listing:
    """The common `path label` lists (PySlowFast's train.csv, mmaction2's and VideoMAE's lists): one video
    per line, its path relative to the root and an integer label; the path may contain spaces (the label
    is the last field). The lists name no classes: class i is called "i"."""
    splits = {}
    for s, path in files.items():
        out = []
        for line in _lines(path):
            rel, label = line.rsplit(None, 1)
            out.append((rel, int(label), Path(rel).stem))
        splits[s] = out
    n = 1 + max((label for items in splits.values() for _, label, _ in items), default=-1)
    return Listing(root, tuple(str(i) for i in range(n)), splits, list(files.values()))


# ----------------------------------------------------------------------------- UCF101


def read_ucf101(root: Path, annotations: Path | None = None, split: str = "1") -> Listing:
    """`ucfTrainTestlist/`: 1-based `classInd.txt`, `trainlist0K.txt` (`Class/v_..avi label`) and
    `testlist0K.txt` (paths only); the class of every video is its folder's."""
    ann = annotations or _first_dir(root, ("ucfTrainTestlist",))
    class_lines = _lines(_need(ann / "classInd.txt", "ucf101 classInd.txt"))
    pairs = sorted((int(i), name) for i, name in (line.split() for line in class_lines))
    classes = tuple(name for _, name in pairs)
    index = {c: i for i, c in enumerate(classes)}
    files = {"train": ann / f"trainlist0{split}.txt", "test": ann / f"testlist0{split}.txt"}
    splits, problems = {}, []
    for s, path in files.items():
        out = []
        for line in _lines(_need(path, f"ucf101 split {split}")):
            rel = line.split()[0]
            folder = rel.split("/")[0]
            if folder not in index:
                problems.append((f"{path.name}: {rel}", f"unknown class {folder!r} (not in classInd.txt)"))
                continue
            out.append((rel, index[folder], Path(rel).stem))
        splits[s] = out
    return Listing(_first_dir(root, ("UCF-101",)), classes, splits, [ann / "classInd.txt", *files.values()],
                   problems)


# ----------------------------------------------------------------------------- HMDB51

_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


def read_hmdb51(root: Path, annotations: Path | None = None, split: str = "1") -> Listing:
    """`testTrainMulti_7030_splits/<class>_test_split<K>.txt`: `<file> <0|1|2> ` per line (1 train, 2 test,
    0 unused). The class is the file name without `_test_splitK.txt` (class names contain `_`); classes
    in sorted order (mmaction2's classInd)."""
    ann = annotations or _first_dir(root, ("testTrainMulti_7030_splits",))
    per_class = {}
    for n in sorted(os.listdir(_need(ann, "hmdb51 split folder"))):
        m = _HMDB_SPLIT.match(n)
        if m and m["k"] == split:
            per_class[m["cls"]] = ann / n
    if not per_class:
        raise ConfigError(f"hmdb51: no *_test_split{split}.txt files in {ann}")
    classes = tuple(sorted(per_class))
    splits: dict[str, list] = {"train": [], "test": []}
    for i, c in enumerate(classes):
        for line in _lines(per_class[c]):
            name, code = line.rsplit(None, 1)  # names contain spaces? never, but brackets and '!' yes
            if code in ("1", "2"):
                splits["train" if code == "1" else "test"].append((f"{c}/{name}", i, Path(name).stem))
    return Listing(_first_dir(root, ("hmdb51_org",)), classes, splits, list(per_class.values()))


# ----------------------------------------------------------------------------- Something-Something v2


def _ssv2_file(ann: Path, kind: str) -> Path:
    for name in (f"something-something-v2-{kind}.json", f"{kind}.json"):
        if (ann / name).exists():
            return ann / name
    raise ConfigError(f"ssv2: no something-something-v2-{kind}.json (or {kind}.json) in {ann}")


def read_ssv2(root: Path, annotations: Path | None = None) -> Listing:
    """20BN or Qualcomm JSONs: `labels` maps each template to its index as a string; an entry's class is
    its template with the brackets removed (its `label` is the filled caption, not the class)."""
    ann = annotations or _first_dir(root, ("labels",))
    labels = json.loads(_ssv2_file(ann, "labels").read_text(encoding="utf-8"))
    by_index = sorted((int(v), k) for k, v in labels.items())
    classes = tuple(k for _, k in by_index)
    index = {k: i for i, k in enumerate(classes)}
    splits, files, problems = {}, [_ssv2_file(ann, "labels")], []
    for s in ("train", "validation"):
        path = _ssv2_file(ann, s)
        files.append(path)
        out = []
        for e in json.loads(path.read_text(encoding="utf-8")):
            template = e["template"].replace("[", "").replace("]", "")
            if template not in index:
                problems.append((f"{path.name}: {e['id']}", f"unknown class {template!r} (not in the labels file)"))
                continue
            out.append((f"{e['id']}.webm", index[template], str(e["id"])))
        splits[s] = out
    return Listing(_first_dir(root, ("20bn-something-something-v2",)), classes, splits, files, problems)


# ----------------------------------------------------------------------------- Diving48


def read_diving48(root: Path, annotations: Path | None = None) -> Listing:
    """V2 JSONs (`vid_name`, `label`, `start_frame`, `end_frame`) and the vocabulary of 48 four-part names
    (joined with `+` as mmaction2 does); all 48 classes are kept although one never occurs in V2."""
    ann = annotations or root
    vocab_path = _need(ann / "Diving48_vocab.json", "diving48 vocabulary")
    classes = tuple("+".join(v) for v in json.loads(vocab_path.read_text(encoding="utf-8")))
    splits, files, problems = {}, [vocab_path], []
    for s in ("train", "test"):
        path = _need(ann / f"Diving48_V2_{s}.json", f"diving48 {s} split")
        files.append(path)
        splits[s] = []
        for e in json.loads(path.read_text(encoding="utf-8")):
            if not 0 <= int(e["label"]) < len(classes):
                problems.append((f"{path.name}: {e['vid_name']}", f"unknown class {e['label']} (vocabulary has "
                                                                    f"{len(classes)})"))
                continue
            splits[s].append((f"{e['vid_name']}.mp4", int(e["label"]), e["vid_name"]))
    return Listing(_first_dir(root, ("rgb", "videos")), classes, splits, files, problems)


READERS = {"k400": read_k400, "ucf101": read_ucf101, "hmdb51": read_hmdb51, "ssv2": read_ssv2,
           "diving48": read_diving48}
SPLIT_AWARE = ("ucf101", "hmdb51")  # three official train/test splits
