"""Miniatures of five official video-dataset layouts: Kinetics-400, UCF101, HMDB51, Something-Something v2, Diving48.

The readers in `harness.data.formats` must survive the real files, whose traps (quoted CSV labels,
CRLF lists, trailing spaces, string indices, glob metacharacters in names, missing clips) are easy to
lose in a hand-written fixture. So each miniature copies its dataset's layout exactly: the folder
names, the annotation files byte for byte in the official formats, and real video files in the
dataset's own container and codec (H.264 mp4, MPEG-4 Part 2 AVI, VP9 WebM) at its frame rates and
sizes. A few classes and a few two-second clips per class keep each format to seconds of work.

The clips carry their class visibly (a background colour and the direction of a moving square, both
chosen by the class index, with small per-clip variations) so a classifier trained on a miniature
learns something and an end-to-end run through a real-format loader means more than "it did not crash".
Everything is a function of the seed: the same seed writes the same bytes (single-threaded encoders,
fixed options, bit-exact muxing).
"""
from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from harness.data.encoding import Clip, encode, render
from harness.errors import ConfigError
from harness.progress import progress_bar

FORMATS = ("k400", "ucf101", "hmdb51", "ssv2", "diving48")

# Classes of each miniature in their official index order (see harness.data.formats for how each is derived).
K400_CLASSES = sorted(["abseiling", "air drumming", "massaging person's head", "passing American football (in game)"])
UCF101_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups", "YoYo"]  # classInd.txt order
HMDB51_CLASSES = sorted(["brush_hair", "climb_stairs", "kiss", "sword_exercise"])
SSV2_CLASSES = ["Approaching something with your camera", "Pushing something from left to right",
                "Putting something and something on the table", "Something falling like a rock"]
# Diving48's classes are four-part dive names; index 30 is the class that never occurs in V2.
_DIVES = """
    Back 15som 05Twis FREE   Back 15som 15Twis FREE   Back 15som 25Twis FREE   Back 15som NoTwis PIKE
    Back 15som NoTwis TUCK   Back 25som 15Twis PIKE   Back 25som 25Twis PIKE   Back 25som NoTwis PIKE
    Back 25som NoTwis TUCK   Back 2som 15Twis FREE   Back 2som 25Twis FREE   Back 35som NoTwis PIKE
    Back 35som NoTwis TUCK   Back 3som NoTwis PIKE   Back 3som NoTwis TUCK   Back Dive NoTwis PIKE
    Back Dive NoTwis TUCK   Forward 15som 1Twis FREE   Forward 15som 2Twis FREE   Forward 15som NoTwis PIKE
    Forward 1som NoTwis PIKE   Forward 25som 1Twis PIKE   Forward 25som 2Twis PIKE   Forward 25som 3Twis PIKE
    Forward 25som NoTwis PIKE   Forward 25som NoTwis TUCK   Forward 35som NoTwis PIKE   Forward 35som NoTwis TUCK
    Forward 45som NoTwis PIKE   Forward 45som NoTwis TUCK   Forward Dive NoTwis STR   Forward Dive NoTwis PIKE
    Inward 15som NoTwis PIKE   Inward 15som NoTwis TUCK   Inward 25som NoTwis PIKE   Inward 25som NoTwis TUCK
    Inward 35som NoTwis TUCK   Inward Dive NoTwis PIKE   Reverse 15som 05Twis FREE   Reverse 15som 15Twis FREE
    Reverse 15som 25Twis FREE   Reverse 15som 35Twis FREE   Reverse 15som NoTwis PIKE   Reverse 25som 15Twis PIKE
    Reverse 25som NoTwis PIKE   Reverse 35som NoTwis TUCK   Reverse Dive NoTwis PIKE   Reverse Dive NoTwis TUCK
""".split()  # four words per dive
DIVING48_VOCAB = [_DIVES[i:i + 4] for i in range(0, len(_DIVES), 4)]
DIVING48_USED = 4  # only labels 0..3 occur in the miniature's splits

CLIP_SECONDS = 2
NTSC = Fraction(30000, 1001)

def _clip_frames(fps: Fraction) -> int:
    return round(CLIP_SECONDS * fps)


# ----------------------------------------------------------------------------- small helpers


def _write(path: Path, text: str, newline: str = "\n") -> None:
    """Write `text` (with `\\n` line ends) as UTF-8 with `newline` line ends, exactly: no platform translation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))


def _youtube_ids(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct 11-character YouTube-style ids; the first starts with `-` and the second with `_`, the
    characters that make naive command lines and sorted listings go wrong."""
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    ids: list[str] = []
    while len(ids) < n:
        s = "".join(rng.choice(alphabet, 11))
        s = {0: "-" + s[1:], 1: "_" + s[1:]}.get(len(ids), s)
        if s not in ids:
            ids.append(s)
    return ids


def _annotation_rng(seed: int, fmt: str) -> np.random.Generator:
    return np.random.default_rng([seed, 1_000_003, FORMATS.index(fmt)])


# ----------------------------------------------------------------------------- Kinetics-400

K400_SPLITS = {"train": 5, "val": 2, "test": 1}  # clips per class
K400_MISSING = 2  # index of the train row whose clip is not written (real copies miss ~2.5%)


def _k400_line(row: list) -> str:
    """One CSV line as in the CVDF files: the label double-quoted when it has a space (the csv module alone
    would quote only labels with commas), every field escaped by the csv module."""
    buf = io.StringIO()
    quoting = csv.QUOTE_ALL if " " in row[0] else csv.QUOTE_MINIMAL
    csv.writer(buf, quoting=quoting, lineterminator=",").writerow(row[:1])
    csv.writer(buf, lineterminator="\n").writerow(row[1:])
    return buf.getvalue()


def _k400(out: Path, seed: int) -> list[Clip]:
    """`annotations/{train,val,test}.csv` and `{split}/{youtube_id}_{start:06d}_{end:06d}.mp4` (H.264, 340x256,
    29.97 or 25 fps), rows sorted by label as in the CVDF files, one train clip missing."""
    rng = _annotation_rng(seed, "k400")
    n = sum(K400_SPLITS.values()) * len(K400_CLASSES)
    ids = _youtube_ids(rng, n)
    clips, k = [], 0
    for split, per_class in K400_SPLITS.items():
        rows = []
        for label, name in enumerate(K400_CLASSES):
            for _ in range(per_class):
                start = int(rng.integers(0, 300))
                rows.append([name, ids[k], start, start + 10, split, int(k % 3 == 0), label])
                k += 1
        rows.sort(key=lambda r: (r[0], r[1]))
        header = "label,youtube_id,time_start,time_end,split,is_cc\n"
        _write(out / "annotations" / f"{split}.csv", header + "".join(_k400_line(r[:6]) for r in rows))
        for i, (_, yid, start, end, _, _, label) in enumerate(rows):
            if split == "train" and i == K400_MISSING:
                continue
            fps = NTSC if len(clips) % 2 == 0 else Fraction(25)
            clips.append(Clip(f"{split}/{yid}_{start:06d}_{end:06d}.mp4", label, "mp4", "libx264", fps, 340, 256,
                              _clip_frames(fps)))
    return clips


# ----------------------------------------------------------------------------- UCF101

UCF_GROUPS = 6


def _ucf_name(cls: str, group: int) -> str:
    """`Class/v_FileClass_gGG_c01.avi`; the HandstandPushups folder holds `v_HandStandPushups_*` files."""
    file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls
    return f"{cls}/v_{file_cls}_g{group:02d}_c01.avi"


def _ucf101(out: Path, seed: int) -> list[Clip]:
    """`UCF-101/<Class>/*.avi` (Xvid AVI, 320x240, 25 fps) and `ucfTrainTestlist/` with its seven CRLF files:
    split k tests groups 2k-1 and 2k and trains on the rest."""
    ann = out / "ucfTrainTestlist"
    _write(ann / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF101_CLASSES)), "\r\n")
    for k in (1, 2, 3):
        test_groups = (2 * k - 1, 2 * k)
        train, test = [], []
        for i, c in enumerate(UCF101_CLASSES):
            for g in range(1, UCF_GROUPS + 1):
                if g in test_groups:
                    test.append(f"{_ucf_name(c, g)}\n")
                else:
                    train.append(f"{_ucf_name(c, g)} {i + 1}\n")
        _write(ann / f"trainlist0{k}.txt", "".join(train), "\r\n")
        _write(ann / f"testlist0{k}.txt", "".join(test), "\r\n")
    fps = Fraction(25)
    return [Clip(f"UCF-101/{_ucf_name(c, g)}", i, "avi", "mpeg4", fps, 320, 240, _clip_frames(fps), "xvid")
            for i, c in enumerate(UCF101_CLASSES) for g in range(1, UCF_GROUPS + 1)]


# ----------------------------------------------------------------------------- HMDB51

# Six real-looking names per class, in the `<source>_<action>_<visible body>_<camera>_<people>_<view>_<quality>_<n>`
# pattern, with the metacharacters ([ ] ! & ( ) and a leading digit) that real names have.
HMDB_NAMES = {
    "brush_hair": [
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
        "April_09_brush_hair_u_nm_np1_ba_goo_1.avi",
        "Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!_brush_hair_h_cm_np1_fr_goo_0.avi",
        "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi",
        "Hair_Care_&_Styling_(Long_Hair)_brush_hair_u_nm_np1_fr_goo_2.avi",
        "brushing_hair_2_brush_hair_h_nm_np1_ba_goo_1.avi",
    ],
    "climb_stairs": [
        "BIG_FISH_climb_stairs_f_nm_np1_fr_med_10.avi",
        "BIG_FISH_climb_stairs_f_nm_np1_fr_med_11.avi",
        "Dudes_climbing_stairs_climb_stairs_f_cm_np2_ba_bad_0.avi",
        "Return_of_the_King_(Minas_Tirith)_climb_stairs_f_cm_np1_le_med_3.avi",
        "stairs_workout!_climb_stairs_l_nm_np1_ri_goo_0.avi",
        "20060723sfjffinalfeliz_climb_stairs_f_cm_np1_fr_med_1.avi",
    ],
    "kiss": [
        "A_Beautiful_Mind_1_kiss_h_cm_np2_fr_goo_0.avi",
        "A_Beautiful_Mind_1_kiss_h_cm_np2_fr_goo_1.avi",
        "Romeo_&_Juliet_[1968]_kiss_h_nm_np2_le_med_5.avi",
        "Titanic_(1997)_kiss_u_cm_np2_ri_goo_2.avi",
        "prelinger_they_grow_up_so_fast_kiss_h_cm_np2_fr_med_0.avi",
        "kissing_scene!!_kiss_h_nm_np2_fr_bad_4.avi",
    ],
    "sword_exercise": [
        "Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_bad_3.avi",
        "Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_bad_4.avi",
        "Katana_Kata_[HD]_sword_exercise_f_nm_np1_fr_goo_0.avi",
        "Tai_Chi_Sword_(Yang_Style)_&_Fan_sword_exercise_f_cm_np1_le_med_1.avi",
        "Sword_Practice!_sword_exercise_u_nm_np1_ba_goo_2.avi",
        "sword_form_2_sword_exercise_f_nm_np1_fr_med_0.avi",
    ],
}
HMDB_CODES = ("1", "1", "1", "2", "2", "0")  # per class and split: 3 train, 2 test, 1 unused (rotated per split)


def _hmdb51(out: Path, seed: int) -> list[Clip]:
    """`hmdb51_org/<class>/<name>.avi` (DivX-era MPEG-4 AVI, 320 or 352 x 240, 30 fps) and
    `testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt` with lines `<name> <code> ` (a space before LF)."""
    ann = out / "testTrainMulti_7030_splits"
    clips = []
    for label, cls in enumerate(HMDB51_CLASSES):
        names = sorted(HMDB_NAMES[cls])
        for k in (1, 2, 3):
            shift = 2 * (k - 1)
            codes = HMDB_CODES[-shift:] + HMDB_CODES[:-shift] if shift else HMDB_CODES
            _write(ann / f"{cls}_test_split{k}.txt", "".join(f"{n} {c} \n" for n, c in zip(names, codes)))
        fps = Fraction(30)
        clips += [Clip(f"hmdb51_org/{cls}/{n}", label, "avi", "mpeg4", fps, (320, 352)[j % 2], 240, _clip_frames(fps))
                  for j, n in enumerate(names)]
    return clips


# ----------------------------------------------------------------------------- Something-Something v2

SSV2_TEMPLATES = ["Approaching [something] with your camera", "Pushing [something] from left to right",
                  "Putting [something] and [something] on the table", "[Something] falling like a rock"]
SSV2_OBJECTS = ["pen", "a cup", "phone", "remote control", "book", "spoon", "key chain", "plastic bottle"]
SSV2_SPLITS = {"train": 4, "validation": 2, "test": 1}  # clips per class
SSV2_WIDTHS = (320, 426)  # height 240, width varies with the source's aspect ratio


def _ssv2_entry(vid: str, label: int, rng: np.random.Generator) -> dict:
    """A train/validation entry: `template` with bracketed placeholders, `label` the filled caption
    (lower-cased first letter, as crowd workers typed them), never the class."""
    template = SSV2_TEMPLATES[label]
    n = template.lower().count("[something]")
    objects = [str(o) for o in rng.choice(SSV2_OBJECTS, n, replace=False)]
    caption = template
    for o in objects:
        caption = caption.replace("[something]", o, 1).replace("[Something]", o, 1)
    return {"id": vid, "label": caption[0].lower() + caption[1:], "template": template, "placeholders": objects}


def _compact_list(items: list[dict]) -> str:
    """A JSON list as 20BN wrote theirs: compact objects, one per line."""
    return "[" + ",\n".join(json.dumps(e, separators=(",", ":")) for e in items) + "]"


def _ssv2(out: Path, seed: int) -> list[Clip]:
    """`something-something-v2-{labels,train,validation,test}.json`, `test-answers.csv` and
    `20bn-something-something-v2/<id>.webm` (VP9 WebM, 12 fps, height 240); ids are decimal strings shuffled
    across the splits so no split's ids are contiguous."""
    assert [t.replace("[", "").replace("]", "") for t in SSV2_TEMPLATES] == SSV2_CLASSES
    rng = _annotation_rng(seed, "ssv2")
    total = sum(SSV2_SPLITS.values()) * len(SSV2_CLASSES)
    ids = iter(str(int(i) + 1) for i in rng.permutation(total))
    _write(out / "something-something-v2-labels.json",
           json.dumps({c: str(i) for i, c in enumerate(SSV2_CLASSES)}, indent=1) + "\n")
    clips, answers = [], []
    fps = Fraction(12)
    for split, per_class in SSV2_SPLITS.items():
        entries = []
        for label in range(len(SSV2_CLASSES)):
            for _ in range(per_class):
                vid = next(ids)
                if split == "test":
                    entries.append({"id": vid})
                    answers.append(f"{vid};{SSV2_CLASSES[label]}\n")
                else:
                    entries.append(_ssv2_entry(vid, label, rng))
                width = SSV2_WIDTHS[len(clips) % len(SSV2_WIDTHS)]
                clips.append(Clip(f"20bn-something-something-v2/{vid}.webm", label, "webm", "libvpx-vp9", fps,
                                  width, 240, _clip_frames(fps)))
        _write(out / f"something-something-v2-{split}.json", _compact_list(entries))
    _write(out / "test-answers.csv", "".join(answers))
    return clips


# ----------------------------------------------------------------------------- Diving48

DIVING48_SPLITS = {"train": 4, "test": 2}  # clips per used class


def _diving48(out: Path, seed: int) -> list[Clip]:
    """`Diving48_vocab.json`, `Diving48_V2_{train,test}.json` (indent 2; `end_frame` is the clip's frame
    count, which varies per clip as in the real data) and `rgb/<vid_name>.mp4` (H.264, 320x240, 30 fps)."""
    assert len(DIVING48_VOCAB) == 48 and len({tuple(v) for v in DIVING48_VOCAB}) == 48
    rng = _annotation_rng(seed, "diving48")
    ids = _youtube_ids(rng, sum(DIVING48_SPLITS.values()) * DIVING48_USED)
    _write(out / "Diving48_vocab.json", json.dumps(DIVING48_VOCAB))
    clips, k = [], 0
    fps = Fraction(30)
    for split, per_class in DIVING48_SPLITS.items():
        entries = []
        for label in range(DIVING48_USED):
            for _ in range(per_class):
                name = f"{ids[k]}_{int(rng.integers(0, 100_000)):05d}"
                frames = int(rng.integers(48, 73))
                entries.append({"vid_name": name, "label": label, "start_frame": 0, "end_frame": frames})
                clips.append(Clip(f"rgb/{name}.mp4", label, "mp4", "libx264", fps, 320, 240, frames))
                k += 1
        _write(out / f"Diving48_V2_{split}.json", json.dumps(entries, indent=2))
    return clips


# ----------------------------------------------------------------------------- entry point

BUILDERS: dict[str, Callable[[Path, int], list[Clip]]] = {
    "k400": _k400, "ucf101": _ucf101, "hmdb51": _hmdb51, "ssv2": _ssv2, "diving48": _diving48}


def synth(fmt: str, out: Path, seed: int = 0, progress: bool = False) -> Path:
    """Write the miniature of `fmt` under `out` (created; must be empty or absent) and return `out`.

    Annotation files first, then the videos in a fixed order, each video's content drawn from a generator
    seeded by (seed, its position), so the same seed gives the same bytes whatever ran before."""
    if fmt not in BUILDERS:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: not an empty folder; the miniature is written into a new or empty one")
    out.mkdir(parents=True, exist_ok=True)
    clips = BUILDERS[fmt](out, seed)
    bar = progress_bar(len(clips), 0, f"synth {fmt}", "video", progress)
    for i, clip in enumerate(clips):
        path = out / clip.path
        path.parent.mkdir(parents=True, exist_ok=True)
        encode(path, render(clip, np.random.default_rng([seed, i])), clip)
        bar.update()
    bar.close()
    return out
