"""The embedded dataset and the video data path: real files, decoding, samplers, broken files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import load_config
from harness.data import digits_video as dv
from harness.data import moving_digits as md
from harness.data import sampling
from harness.data.datasets import BadVideos, DataError, LabelledViews, PretrainClips, VideoSet
from harness.data.sampling import EpochBatches, ViewLayout
from harness.data.video import VideoDecodeError, decode_frames, probe, read_audio


@pytest.fixture(scope="module")
def manifest(ci_manifest):
    return json.loads(ci_manifest.read_text()), ci_manifest.parent


def test_generated_files_round_trip(manifest):
    body, root = manifest
    cfg = load_config("ci").datasets["moving-digits"]
    counts = cfg.counts()
    by_split = {s: [v for v in body["videos"] if v["split"] == s] for s in md.SPLITS}
    assert [len(by_split[s]) for s in md.SPLITS] == [counts.pretrain_videos, counts.train_clips, counts.test_clips]
    for v in (by_split["pretrain"][0], by_split["test"][-1]):
        path = root / v["path"]
        info = probe(path)
        assert (info.num_frames, info.width, info.height, info.has_audio) == (v["frames"], 40, 32, True)
        frames = decode_frames(path)
        assert frames.shape == (v["frames"], 32, 40, 3) and frames.dtype == np.uint8
        audio, rate = read_audio(path)
        assert rate == cfg.audio_rate and abs(len(audio) / rate - v["frames"] / cfg.fps) < 0.2
        assert np.abs(audio).max() > 0.05  # a real tone, not silence
        assert md.sha256_file(path) == v["sha256"]
        assert v["caption"] and v["caption"].endswith(".")
    assert by_split["pretrain"][0]["frames"] == cfg.pretrain_segments * cfg.segment_frames
    assert "labels" not in by_split["pretrain"][0]  # pre-training videos are unlabelled


def test_decoded_frames_match_rendered(manifest):
    """The codec keeps the picture: decoded frames are close to what the generator rendered."""
    body, root = manifest
    cfg = load_config("ci").datasets["moving-digits"]
    v = next(x for x in body["videos"] if x["split"] == "train")
    images, labels = dv._digit_images()
    pools = dv.split_images(labels, cfg.seed, cfg.test_image_fraction)
    rendered, _, meta = dv.make_video(cfg, "train", 0, pools["train"], images, labels,
                                      (v["labels"]["digit"], v["labels"]["motion"]))
    assert meta["digit"] == v["labels"]["digit"] and meta["image_id"] == v["image_id"]
    decoded = decode_frames(root / v["path"])
    assert np.abs(decoded.astype(int) - rendered).mean() < 12


def test_labels_balanced_and_test_images_disjoint(manifest):
    body, _ = manifest
    train = [v for v in body["videos"] if v["split"] == "train"]
    test = [v for v in body["videos"] if v["split"] == "test"]
    assert np.bincount([v["labels"]["digit"] for v in train], minlength=10).min() == len(train) // 10
    assert np.bincount([v["labels"]["motion"] for v in train], minlength=10).min() == len(train) // 10
    test_imgs = {v["image_id"] for v in test}
    other = {v["image_id"] for v in body["videos"] if v["split"] != "test"}
    assert test_imgs and not (test_imgs & other)


def test_generation_is_deterministic():
    cfg = load_config("ci").datasets["moving-digits"]
    images, labels = dv._digit_images()
    pool = dv.split_images(labels, cfg.seed, cfg.test_image_fraction)["pretrain"]
    a = dv.make_video(cfg, "pretrain", 3, pool, images, labels, None)
    b = dv.make_video(cfg, "pretrain", 3, pool, images, labels, None)
    c = dv.make_video(cfg, "pretrain", 4, pool, images, labels, None)
    assert np.array_equal(a[0], b[0]) and a[2] == b[2] and not np.array_equal(a[0], c[0])
    # ρ clips of one pre-training video share the digit but not the look: colours/backgrounds change
    segs = np.split(a[0], cfg.pretrain_segments)
    assert not np.array_equal(segs[0][0], segs[1][0])


@pytest.mark.parametrize("motion", range(len(dv.MOTIONS)))
def test_time_reversal_swaps_motion_pairs(motion):
    """Playing a digits-motion clip backwards gives exactly the clip of its paired class."""
    cfg = load_config("ci").datasets["moving-digits"]
    images, _ = dv._digit_images()
    rng = np.random.default_rng(motion)
    seg = dv._random_segment(rng, cfg, motion, cfg.labelled_frames, 22.0)
    fwd, _ = dv.render_segment(images[5], seg, cfg.height, cfg.width)
    seg.motion = dv.REVERSED[motion]
    back, _ = dv.render_segment(images[5], seg, cfg.height, cfg.width)
    assert dv.REVERSED[dv.REVERSED[motion]] == motion and dv.REVERSED[motion] != motion
    assert np.array_equal(fwd[::-1], back)
    assert not np.array_equal(fwd, back)  # and the pair is not the same clip: one frame can't tell,
    assert {fwd[0].tobytes(), fwd[-1].tobytes()} == {back[0].tobytes(), back[-1].tobytes()}  # the order can


def test_union_decode_equals_full_decode(manifest):
    body, root = manifest
    path = root / body["videos"][0]["path"]
    full = decode_frames(path)
    rng = np.random.default_rng(0)
    for gap in (4, 32):
        for _ in range(5):
            idx = rng.integers(0, len(full) + 5, size=int(rng.integers(1, 20)))
            assert np.array_equal(decode_frames(path, idx, seek_gap=gap), full[np.minimum(idx, len(full) - 1)])


def test_batched_colour_conversion_is_bit_identical_to_per_frame(manifest, tmp_path):
    """`to_rgb` converts a video's yuv420p frames in one swscale call: same bytes as frame by frame,
    on the generated videos; other pixel formats take the per-frame path."""
    import av

    from harness.data.video import to_rgb

    body, root = manifest
    for path in [root / v["path"] for v in body["videos"][:12]]:
        with av.open(str(path)) as c:
            frames = list(c.decode(video=0))
        expected = np.stack([f.to_ndarray(format="rgb24") for f in frames])
        assert np.array_equal(to_rgb(frames), expected), path
        assert np.array_equal(decode_frames(path), expected)
    other = [f.reformat(format="yuv444p") for f in frames]
    assert np.array_equal(to_rgb(other), np.stack([f.to_ndarray(format="rgb24") for f in other]))


def test_view_layout_places_clips_uniformly_and_the_single_view_at_the_centre():
    """10 clips of 8x2 (a 15-frame span): on a 300-frame video centred in ten equal segments of the
    free range 0..285; on a 10-frame video (shorter than one clip) all at 0, the clip repeating
    its last frame. The single view starts where the centre clip does for K = 1, 2, 3 and 10."""
    lay = sampling.ViewLayout(10, 3)
    assert lay.starts(300, 8, 2)[:10] == [14, 43, 71, 100, 128, 157, 185, 214, 242, 271]
    assert lay.starts(10, 8, 2) == [0] * 11
    assert sampling.clip_indices(0, 8, 2, 10).tolist() == [0, 2, 4, 6, 8, 9, 9, 9]
    for k in (1, 2, 3, 10):
        lay = sampling.ViewLayout(k, 3)
        starts = lay.starts(300, 8, 2)
        clip = lay.centre // 3 if lay.centre < lay.grid else len(starts) - 1
        assert starts[clip] == 142 and (lay.centre == lay.grid or lay.centre % 3 == 1), k
        assert lay.count == 3 * k + (k % 2 == 0)


def test_three_crops_cover_left_centre_right_or_top_centre_bottom():
    from harness.data.transforms import spatial_crops

    wide = torch.arange(20).repeat(2, 3, 16, 1)  # (T, C, 16, 20): the value is the column
    left, mid, right = spatial_crops(wide, 16, 3)
    assert (left[0, 0, 0, 0], mid[0, 0, 0, 0], right[0, 0, 0, -1]) == (0, 2, 19)
    tall = torch.arange(20).view(20, 1).repeat(2, 3, 1, 16)  # (T, C, 20, 16): the value is the row
    top, mid, bottom = spatial_crops(tall, 16, 3)
    assert (top[0, 0, 0, 0], mid[0, 0, 0, 0], bottom[0, 0, -1, 0]) == (0, 2, 19)
    (centre,) = spatial_crops(wide, 16, 1)
    assert centre[0, 0, 0, 0] == 2


def test_each_video_is_decoded_once_for_all_its_views(manifest, monkeypatch):
    """31 views (10 clips x 3 crops + the centre clip) of a video come from one decoder call."""
    from harness.data import datasets

    body, root = manifest
    calls = []
    real = datasets.decode_frames
    monkeypatch.setattr(datasets, "decode_frames", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    tests = [v for v in body["videos"] if v["split"] == "test"][:3]
    ds = LabelledViews(VideoSet(root, tests, cache_frames=False), load_config("ci").backbone.clip,
                       ViewLayout(10, 3), ["digit"])
    assert all(ds[i]["views"].shape[0] == 31 for i in range(3))
    assert len(calls) == 3 and len(set(calls)) == 3


def test_clip_samplers():
    assert sampling.clip_span(8, 8) == 57
    assert sampling.clip_indices(10, 4, 2, 100).tolist() == [10, 12, 14, 16]
    assert sampling.clip_indices(10, 4, 2, 14).tolist() == [10, 12, 13, 13]  # clamped to the last frame
    assert sampling.uniform_clip_starts(64, 8, 2, 1) == [24]  # centre clip of the free range 0..49
    starts = sampling.uniform_clip_starts(300, 8, 8, 10)
    assert len(starts) == 10 and starts == sorted(starts) and starts[0] > 0 and starts[-1] <= 300 - 57
    rng = np.random.default_rng(0)
    s = sampling.random_clip_starts(64, 8, 2, 1000, rng)
    assert min(s) == 0 and max(s) == 64 - 15  # uniform over the whole video, clip fully inside
    assert sampling.random_clip_starts(5, 8, 2, 3, rng) == [0, 0, 0]


def test_pretrain_clips_are_deterministic_per_key(manifest):
    body, root = manifest
    cfg = load_config("ci")
    vids = VideoSet(root, [v for v in body["videos"] if v["split"] == "pretrain"], cache_frames=False)
    ds = PretrainClips(vids, cfg.backbone.clip, cfg.augment, rho=2, seed=0)
    a, b, c = (ds.collate([ds[k]])["clips"][0] for k in [(0, 3), (0, 3), (1, 3)])
    k = cfg.backbone.clip.crop_size
    assert a.shape == (2, 3, 8, k, k) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])
    batch = ds.collate([ds[(0, 5)], ds[(0, 3)]])  # a clip's augmentation does not depend on its batch
    assert torch.allclose(batch["clips"][1], a, atol=1e-6) and batch["index"].tolist() == [5, 3]
    ds1 = PretrainClips(vids, cfg.backbone.clip, cfg.augment, rho=1, seed=0)
    assert ds1[(0, 3)]["clips"].shape[0] == 2  # ρ=1: two augmentations of one clip


def test_clip_geometry_draws_like_random_resized_crop():
    """Crops respect the area and ratio ranges, fit the frame, and hit every frame of a clip alike."""
    from dataclasses import replace

    from torchvision.transforms.v2 import functional as TF

    from harness.data.transforms import ClipGeometry

    cfg = load_config("embedded")
    aug = replace(cfg.augment, crop_scale=[0.3, 0.9], crop_ratio=[0.75, 1.333], flip_p=0.5)
    geo = ClipGeometry(aug, cfg.backbone.clip)
    rng = np.random.default_rng(0)
    draws = [geo.draw(rng, 32, 40) for _ in range(500)]
    for top, left, h, w, _ in draws:
        assert 0 <= top <= 32 - h and 0 <= left <= 40 - w
        assert 0.3 - 0.05 <= h * w / 1280 <= 0.9 + 0.05 and 0.75 - 0.1 <= w / h <= 1.333 + 0.1
    assert 0.4 < np.mean([d[4] for d in draws]) < 0.6
    assert len({d[:4] for d in draws}) > 200  # not one crop over and over
    # nothing fits (ratio range far from the frame's): the clamped centre crop, as torchvision
    wide = ClipGeometry(replace(aug, crop_scale=[1.0, 1.0], crop_ratio=[2.0, 3.0], flip_p=0.0), cfg.backbone.clip)
    assert wide.draw(rng, 32, 40) == (6, 0, 20, 40, False)
    video = torch.randint(0, 256, (4, 3, 32, 40), dtype=torch.uint8)
    params = (3, 5, 20, 24, True)
    out = geo(video, params)
    k = cfg.backbone.clip.crop_size
    assert out.shape == (4, 3, k, k)
    for t in range(4):
        ref = TF.horizontal_flip(TF.resized_crop(video[t], 3, 5, 20, 24, [k, k], antialias=True))
        assert torch.equal(out[t], ref)


def test_batched_colour_augment_matches_torchvision():
    """The batched colour jitter / grayscale / blur equals torchvision's per-clip functional ops."""
    from torchvision.transforms.v2 import functional as TF

    from harness.data.transforms import ColourAugment

    cfg = load_config("embedded")
    aug = ColourAugment(cfg.augment, cfg.backbone.clip)
    torch.manual_seed(0)
    clips = torch.randint(0, 256, (6, 4, 3, 16, 16), dtype=torch.uint8)
    clips[0, :, :, :4, :4] = 128  # grey pixels: hue undefined, must pass through
    rng = np.random.default_rng(0)
    params = torch.stack([aug.draw(rng) for _ in range(6)])
    params[0] = torch.tensor([1.3, 0.7, 1.5, 0.1, 3, 1, 0, 2, 1, 0.8])  # every op, in a shuffled order
    params[1] = torch.tensor([0.6, 1.4, 0.5, -0.12, 0, 1, 2, 3, 0, 0.0])
    params[2] = torch.tensor([1.0, 1.0, 1.0, 0.0, 0, 1, 2, 3, 0, 0.0])  # identity
    out = aug(clips, params)
    for n in range(6):
        x, p = clips[n].float() / 255, params[n].tolist()
        ops = [lambda y, p=p: TF.adjust_brightness(y, p[0]), lambda y, p=p: TF.adjust_contrast(y, p[1]),
               lambda y, p=p: TF.adjust_saturation(y, p[2]), lambda y, p=p: TF.adjust_hue(y, p[3])]
        for k in p[4:8]:
            x = ops[int(k)](x)
        if p[8]:
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        if p[9]:
            x = TF.gaussian_blur(x, [aug.kernel, aug.kernel], [p[9], p[9]])
        torch.testing.assert_close(out[n], x, atol=1e-5, rtol=0, msg=f"clip {n} with {p}")
    assert torch.equal(out[2], clips[2].float() / 255)


def test_labelled_views_shape(manifest):
    body, root = manifest
    cfg = load_config("ci")
    vids = VideoSet(root, [v for v in body["videos"] if v["split"] == "test"], cache_frames=True)
    item = LabelledViews(vids, cfg.backbone.clip, ViewLayout(3, 3), ["digit", "motion"])[0]
    k = cfg.backbone.clip.crop_size
    assert item["views"].shape == (9, 8, 3, k, k) and item["views"].dtype == torch.uint8  # (V, T, C, H, W)
    assert item["labels"] == body["videos"][[v["split"] for v in body["videos"]].index("test")]["labels"]
    views = item["views"]
    assert not torch.equal(views[0], views[1])  # left vs centre crop of a 40-wide frame


def test_uint8_views_normalised_on_the_device_equal_float_views_exactly(manifest):
    """Cropping uint8 frames and normalising later gives the float views of normalising first, bit for bit
    (tolerance 0): crops and per-pixel normalisation commute. Also through `chunked`, as the protocols read."""
    from protocols.multiview import chunked

    body, root = manifest
    cfg = load_config("ci", ["backbone.clip.test_short_side=20"])  # a resize on the way, too
    vids = VideoSet(root, [v for v in body["videos"] if v["split"] == "test"][:4], cache_frames=True)
    new = LabelledViews(vids, cfg.backbone.clip, ViewLayout(2, 3), ["digit"])
    old = LabelledViews(vids, cfg.backbone.clip, ViewLayout(2, 3), ["digit"], uint8=False)
    for i in range(4):
        a, b = new[i]["views"], old[i]["views"]
        assert a.dtype == torch.uint8 and b.dtype == torch.float32
        assert torch.equal(new.normalize(a), b)
    batch = torch.stack([new[i]["views"] for i in range(2)])
    ref = torch.stack([old[i]["views"] for i in range(2)])
    flat = chunked(torch.nn.Flatten(), batch, torch.device("cpu"), clip_batch=5, bf16=False, normalize=new.normalize)
    assert torch.equal(flat, ref.flatten(2))


def test_epoch_batches_resume_matches():
    full = list(EpochBatches(50, 8, 3, seed=1))
    assert len(full) == 3 * 6 and all(len(b) == 8 for b in full)
    assert list(EpochBatches(50, 8, 3, seed=1, start_step=7)) == full[7:]
    assert {i for _, i in full[0]} != {i for _, i in full[6]}  # reshuffled every epoch
    with pytest.raises(DataError, match="fewer than one batch"):
        EpochBatches(4, 8, 1, seed=0)


def test_broken_video_is_skipped_and_counted(manifest, tmp_path):
    body, root = manifest
    cfg = load_config("ci")
    entries = [dict(v) for v in body["videos"] if v["split"] == "test"][:4]
    (tmp_path / "test").mkdir()
    for e in entries:
        (tmp_path / e["path"]).write_bytes((root / e["path"]).read_bytes())
    (tmp_path / entries[1]["path"]).write_bytes(b"\x00not a video" * 50)
    with pytest.raises(VideoDecodeError, match=entries[1]["path"].split("/")[-1]):
        decode_frames(tmp_path / entries[1]["path"])
    ds = LabelledViews(VideoSet(tmp_path, entries, cache_frames=False), cfg.backbone.clip, ViewLayout(1, 1), ["digit"])
    assert "bad" in ds[1] and "views" in ds[0]
    cached = VideoSet(tmp_path, entries, cache_frames=True)
    cached.preload("decode", progress=False)  # decoded up front; the broken file is remembered, not fatal
    assert sorted(cached._cache) == [0, 2, 3]
    assert "bad" in LabelledViews(cached, cfg.backbone.clip, ViewLayout(1, 1), ["digit"])[1]
    bad = BadVideos(total=4, max_fraction=0.3)
    with pytest.warns(UserWarning, match="skipping unreadable video"):
        bad.add(ds[1]["bad"], ds[1]["error"])
    assert len(bad.failed) == 1
    with pytest.raises(DataError, match="2 of 4 videos could not be decoded"):
        bad.add("other.mp4", "boom")


# ----------------------------------------------------------------------------- manifests and repair


def _private_copy(ci_manifest, tmp_path):
    """A copy of the ci data in its own cache (the shared one must stay intact for other tests)."""
    import shutil

    cfg = load_config("ci").datasets["moving-digits"]
    dst = md.dataset_dir(cfg, tmp_path)
    shutil.copytree(ci_manifest.parent, dst)
    return cfg, dst


def test_prepare_finds_and_regenerates_damaged_and_missing_files(ci_manifest, tmp_path):
    cfg, root = _private_copy(ci_manifest, tmp_path)
    body = json.loads((root / "manifest.json").read_text())
    train = [v for v in body["videos"] if v["split"] == "train"]
    damaged, wrong, gone = root / train[0]["path"], root / train[1]["path"], root / train[2]["path"]
    originals = {p: p.read_bytes() for p in (damaged, wrong, gone)}
    damaged.write_bytes(originals[damaged][:-100])  # truncated
    wrong.write_bytes((root / train[3]["path"]).read_bytes())  # a valid video, but the wrong one
    gone.unlink()
    check = md.repair(cfg, tmp_path, progress=False)
    assert sorted(check.bad) == sorted(str(p.relative_to(root)) for p in (damaged, wrong, gone))
    assert check.missing == [train[2]["path"]]
    for p, data in originals.items():
        assert p.read_bytes() == data  # regenerated byte for byte
    assert md.repair(cfg, tmp_path, progress=False).bad == []


def test_a_damaged_manifest_is_an_error_that_says_so(ci_manifest, tmp_path):
    cfg, root = _private_copy(ci_manifest, tmp_path)
    manifest = root / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"manifest.json: manifest is damaged \(.*\); remove it and run"):
        md.MovingDigits.split(cfg, tmp_path, "train")
    body = json.loads(text)
    body["videos"][0]["sha256"] = "0" * 64  # valid JSON, edited entries: the checksum catches it
    manifest.write_text(json.dumps(body))
    with pytest.raises(DataError, match="do not match its checksum"):
        md.repair(cfg, tmp_path, progress=False)


def test_split_warns_about_missing_files_and_names_the_repair(ci_manifest, tmp_path):
    cfg, root = _private_copy(ci_manifest, tmp_path)
    body = json.loads((root / "manifest.json").read_text())
    (root / body["videos"][0]["path"]).unlink()
    with pytest.warns(UserWarning, match=r"1 missing and 0 damaged of 64 files .*`bench data prepare moving-digits`"):
        md.MovingDigits.split(cfg, tmp_path, "pretrain")


def test_the_copy_is_named_by_its_content():
    from harness.data.manifest import content_checksum

    a = [{"id": "a", "sha256": "1"}, {"id": "b", "sha256": "2"}]
    assert content_checksum(a) == content_checksum(a[::-1]) != content_checksum([a[0], {"id": "b", "sha256": "3"}])


def test_concurrent_generations_are_byte_identical(tmp_path):
    """Four generations of the ci data at once, each with its own worker pool, write the same bytes.
    (x264's MB-tree made 7 of 25 differ under load; docs/embedded-dataset.md.)"""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from harness.config import load_config; "
            "from harness.data import digits_video as dv, moving_digits as md; "
            "print(md.prepare(load_config('ci').datasets['moving-digits'], Path(sys.argv[1]), progress=False))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"g{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for i in range(4)]
    manifests = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    sums = [{v["id"]: v["sha256"] for v in json.loads(open(m).read())["videos"]} for m in manifests]
    assert len(sums[0]) == 224 and all(s == sums[0] for s in sums[1:])


def test_encoding_does_not_depend_on_uninitialised_memory(tmp_path):
    """The cause of the differing generations, made deterministic: aligned allocations are filled with a
    chosen pattern (an LD_PRELOAD shim); with x264's MB-tree on, 0xFFFF changed every file on an AVX-512
    machine. The encoder must write the same bytes whatever the heap holds."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("gcc") is None:
        pytest.skip("no C compiler for the allocation shim")
    shim = tmp_path / "libfill.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim),
                    str(Path(__file__).parent / "fixtures" / "fill_alloc.c"), "-ldl"], check=True)
    code = ("import sys; from pathlib import Path; from harness.config import load_config; "
            "from harness.data import digits_video as dv, moving_digits as md; "
            "cfg = load_config('ci').datasets['moving-digits']; "
            "images, labels = dv._digit_images(); pool = dv.split_images(labels, 0, cfg.test_image_fraction)['pretrain']; "
            "out = Path(sys.argv[1]); out.mkdir(); "
            "[dv.write_mp4(out / f'{i}.mp4', *dv.make_video(cfg, 'pretrain', i, pool, images, labels, None)[:2], "
            "cfg.fps, cfg.audio_rate, cfg.keyframe_interval, cfg.crf) for i in range(4)]")
    digests = []
    for pattern in ("0000", "ffff", "ffe0"):
        out = tmp_path / pattern
        env = {**os.environ, "LD_PRELOAD": str(shim), "FILL16": pattern}
        subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True, timeout=300)
        digests.append([md.sha256_file(out / f"{i}.mp4") for i in range(4)])
    assert digests[0] == digests[1] == digests[2]


def test_colour_augmentation_on_the_device_equals_the_loaders(ci_manifest):
    """`data.augment_on = "device"`: the loader hands over uint8 clips and their colour parameters, and
    `finish` gives the batch the loader would have given (here both on the CPU)."""
    import json

    import torch

    from harness.config import load_config
    from harness.data.datasets import PretrainClips, VideoSet

    cfg = load_config("ci", ["augment.jitter_p=1.0", "augment.grayscale_p=0.5", "augment.blur_p=0.5"])
    entries = [v for v in json.loads(ci_manifest.read_text())["videos"] if v["split"] == "pretrain"][:6]
    videos = VideoSet(ci_manifest.parent, entries, False)
    keys = [(0, i) for i in range(6)]
    here = PretrainClips(videos, cfg.backbone.clip, cfg.augment, 2, 0)
    later = PretrainClips(videos, cfg.backbone.clip, cfg.augment, 2, 0, on_device=True)
    a = here.collate([here[k] for k in keys])
    raw = later.collate([later[k] for k in keys])
    assert raw["clips"].dtype == torch.uint8 and "colour" in raw
    b = later.finish(raw)
    assert torch.allclose(a["clips"], b["clips"]) and "colour" not in b


@pytest.mark.parametrize("n", [30, 57, 300])
def test_segment_sampler_takes_one_frame_of_each_segment_of_the_whole_video(n):
    """PySlowFast's SSv2 sampling (`get_seq_frames`): 8 segments of (n - 1) / 8 frames; training draws a frame
    uniform within each (bounds included), the test view takes (start + end) // 2."""
    from harness.data.sampling import ViewLayout, segment_indices

    seg = (n - 1) / 8
    bounds = [(int(np.round(seg * i)), int(np.round(seg * (i + 1)))) for i in range(8)]
    test = segment_indices(n, 8)
    assert test.tolist() == [(a + b) // 2 for a, b in bounds]
    rng = np.random.default_rng(0)
    draws = np.stack([segment_indices(n, 8, rng) for _ in range(400)])
    for i, (a, b) in enumerate(bounds):
        assert draws[:, i].min() == a and draws[:, i].max() == b  # every frame of the segment, and only those
    assert draws.max() <= n - 1 and test[-1] < n
    layout = ViewLayout(1, 1, sampler="segments")
    (view,) = layout.frame_indices(n, 8, stride=8)
    assert np.array_equal(view, test)  # the test view ignores the clip stride: it spans the whole video
    if n == 300:
        assert test.tolist() == [18, 56, 93, 131, 168, 205, 243, 280]  # by hand, NumPy's round-half-even


def test_protocols_train_and_test_on_segments_when_asked(tmp_path):
    from harness.data.sampling import ViewLayout, segment_indices

    cfg = load_config("ci")
    c = cfg.backbone.clip
    entries = [{"id": "a", "path": "a.mp4", "frames": 300, "labels": {"digit": 1}}]
    videos = VideoSet(tmp_path, entries, cache_frames=False)
    seen = []
    videos.frames = lambda i, idx: (seen.append(np.asarray(idx)), np.zeros((len(idx), 8, 8, 3), np.uint8))[1]
    PretrainClips(videos, c, cfg.augment, 1, 0, views=1, sampler="segments")[(0, 0)]
    assert len(seen[-1]) == c.frames and seen[-1][-1] > 200  # spread over the whole video
    LabelledViews(videos, c, ViewLayout(1, 1, sampler="segments"), ["digit"])[0]
    assert np.array_equal(seen[-1], segment_indices(300, c.frames))
    with pytest.raises(ValueError, match="segments"):
        PretrainClips(videos, c, cfg.augment, 2, 0, sampler="segments")



def test_vgg_scale_jitter_crops_a_square_of_the_frame_rescaled_to_a_short_side_in_range():
    """`crop_mode = "scale"` (the ρ paper's default augmentation): short side to s ~ U[256, 320], then a 224
    square; in frame pixels the square's side is 224 * min(h, w) / s."""
    from dataclasses import replace

    from harness.data.transforms import ClipGeometry

    cfg = load_config("paper")
    aug = replace(cfg.augment, crop_mode="scale", jitter_scales=[256, 320])
    geo = ClipGeometry(aug, cfg.backbone.clip)
    rng = np.random.default_rng(0)
    sides = []
    for _ in range(300):
        top, left, ch, cw, _ = geo.draw(rng, 240, 320)
        assert ch == cw and 0 <= top <= 240 - ch and 0 <= left <= 320 - cw
        sides.append(ch)
    assert min(sides) == round(224 * 240 / 320) and max(sides) == round(224 * 240 / 256)  # s = 320 .. 256


def test_captions_name_the_digit_and_its_motion_and_the_colour_only_as_often_as_asked():
    """Every sentence carries the class words of both tasks (the digit as numeral or word, the motion's
    phrase); colour words appear in about `caption_colour_p` of them. The frames never change with it, and
    at the default (1.0) the captions and the copy's fingerprint are the ones made before the option."""
    from dataclasses import replace

    colours = tuple(dv.COLOURS)
    for p in (1.0, 0.1):
        rng, named = np.random.default_rng(0), 0
        for k in range(2000):
            digit, motion, colour = k % 10, (k // 10) % len(dv.MOTIONS), colours[k % len(colours)]
            text = dv.caption(rng, digit, colour, motion, p)
            assert (f" {digit} " in f" {text} " or dv.DIGIT_WORDS[digit] in text) and dv.PHRASES[dv.MOTIONS[motion]] in text
            named += colour in text
        assert named / 2000 == pytest.approx(p, abs=0.03)
    legacy, rng = np.random.default_rng(5), np.random.default_rng(5)  # at 1.0: one draw per sentence, as before
    assert all(dv.caption(rng, 3, "red", 0) == dv.COLOUR_TEMPLATES[int(legacy.integers(5))].format(
        c="red", d=3, w="three", p="moves to the left") for _ in range(20))
    cfg = load_config("ci").datasets["moving-digits"]
    rare = replace(cfg, caption_colour_p=0.1)
    assert cfg.fingerprint() == md.MovingDigitsConfig.fingerprint(replace(cfg)) and "caption_colour_p" not in cfg.identity()
    assert rare.fingerprint() != cfg.fingerprint() and rare.identity()["caption_colour_p"] == 0.1
    images, labels = dv._digit_images()
    pool = dv.split_images(labels, cfg.seed, cfg.test_image_fraction)["pretrain"]
    a, b = (dv.make_video(c, "pretrain", 3, pool, images, labels, None) for c in (cfg, rare))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2]["caption"] != b[2]["caption"]


def test_a_size_prepared_under_another_profiles_settings_names_its_own_size(tmp_path):
    """`bench data prepare --size ci` from the embedded profile: the manifest says ci throughout."""
    cfg = load_config("embedded").datasets["moving-digits"]
    body = json.loads(md.prepare(cfg, tmp_path, size="ci", progress=False).read_text())
    assert body["size"] == body["config"]["size"] == "ci" and body["config"]["counts"]["pretrain_videos"] == 64


def test_a_video_changed_in_place_is_caught_before_a_run_reads_it(ci_manifest, tmp_path):
    """A pre-training video with one byte flipped (size kept) is caught by the split a run reads, named with
    the repair, and counted as unreadable, never read; files hashed once are not hashed again until they
    change; the repaired copy is whole again."""
    import time

    from harness.data import manifest as mf

    cfg, root = _private_copy(ci_manifest, tmp_path)
    _, entries = md.MovingDigits.split(cfg, tmp_path, "pretrain")  # hashed once, remembered
    hashed = []
    real = mf.sha256_file
    try:
        mf.sha256_file = lambda p: hashed.append(p) or real(p)
        md.MovingDigits.split(cfg, tmp_path, "pretrain")
        assert hashed == []  # nothing changed since: a stat per file
        victim = root / entries[5]["path"]
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        time.sleep(0.01)
        victim.write_bytes(bytes(data))
        with pytest.warns(UserWarning, match=r"0 missing and 1 damaged of 64 files .*`bench data prepare moving-digits`"):
            root_, marked = md.MovingDigits.split(cfg, tmp_path, "pretrain")
        assert hashed == [victim]  # only the changed file was read again
        videos = VideoSet(root_, marked, cache_frames=True)
        videos.preload("decoding", progress=False)  # the changed file is never decoded: it is unreadable
        with pytest.raises(VideoDecodeError, match="bytes differ from the manifest's checksum"):
            videos.frames(5, np.arange(4))
    finally:
        mf.sha256_file = real
    md.repair(cfg, tmp_path, progress=False)
    assert not any("damaged" in e for e in md.MovingDigits.split(cfg, tmp_path, "pretrain")[1])


def test_keyframe_exact_seeks_decode_the_fewest_frames(manifest):
    """A video with a keyframe every 8 frames: each wanted frame is reached from the nearest keyframe at or
    before it (frames 3 and 20: 0..3, then a seek to 16..20 = 9 frames; the seek-gap pass decoded 0..20 = 21),
    never decoding a frame twice, and the frames are those of a full decode."""
    from harness.data.video import decode_frames

    body, root = manifest
    e = next(v for v in body["videos"] if v["split"] == "test")
    full = decode_frames(root / e["path"])
    for wanted, fewest in (([3, 20], 4 + 5), ([3, 5, 9], 6 + 2), ([17], 2), ([0, 23], 1 + 8), ([10, 12], 5)):
        stats = {}
        got = decode_frames(root / e["path"], wanted, gop=8, stats=stats)
        assert np.array_equal(got, full[wanted]) and stats["decoded"] == fewest, (wanted, stats)
    old = {}
    decode_frames(root / e["path"], [3, 20], seek_gap=32, stats=old)
    assert old["decoded"] == 21


def test_perf_data_measures_a_users_files_side_by_side(manifest, capsys):
    """`bench perf --data`: one line per file with the decode limit, a pre-training sample, test views; the
    fewest frames a pass needs counts from the keyframe at or before each wanted frame."""
    from harness.cli import main
    from harness.data.throughput import fewest_frames, keyframes

    body, root = manifest
    e = next(v for v in body["videos"] if v["split"] == "test")
    assert keyframes(root / e["path"]) == [0, 8, 16]
    assert fewest_frames([3, 20], [0, 8, 16]) == 9 and fewest_frames([3, 5, 9], [0, 8, 16]) == 8
    assert main(["perf", "--data", str(root / e["path"]), "-p", "ci", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert f"| {Path(e['path']).name} | 40x32 | 24 | 8 |" in out and "decoded / fewest" in out


def test_edited_labels_are_caught_or_name_another_copy(ci_manifest, tmp_path):
    """A manifest records the checksum of its labels and captions: an edited label is a damaged manifest.
    A copy made before that checksum existed names its labels in the dataset identity (records, encoders),
    so edited labels read as another copy, and cached features and fits are keyed by them."""
    from harness.data.manifest import labels_checksum

    cfg, root = _private_copy(ci_manifest, tmp_path)
    manifest = root / "manifest.json"
    body = json.loads(manifest.read_text())
    body["labels_checksum"] = labels_checksum(body["videos"])
    manifest.write_text(json.dumps(body))
    before = md.MovingDigits.identity(cfg, tmp_path)
    test = next(v for v in body["videos"] if v["split"] == "test")
    test["labels"]["digit"] = (test["labels"]["digit"] + 1) % 10
    manifest.write_text(json.dumps(body))
    with pytest.raises(DataError, match="labels or captions do not match their checksum"):
        md.MovingDigits.split(cfg, tmp_path, "test")
    del body["labels_checksum"]  # a copy from before the labels' checksum
    manifest.write_text(json.dumps(body))
    after = md.MovingDigits.identity(cfg, tmp_path)
    assert after["checksum"] == before["checksum"] and after["labels"] != before["labels"]
