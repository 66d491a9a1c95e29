"""wh.synthetic: the generated, Imagewoof-shaped dataset of the smoke profile."""

import re
import tarfile

import numpy as np
import pytest
from PIL import Image

import woofhelpers as wh

TRAIN_NAME = re.compile(r"^(n\d{8})_(\d+)\.JPEG$")
VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")
FOXHOUND = "n02089973"


def all_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_layout_is_train_and_val_with_the_ten_wnid_folders(small_dataset):
    for split in ("train", "val"):
        folders = sorted(p.name for p in (small_dataset / split).iterdir())
        assert folders == sorted(wh.labels.WNIDS)


def test_counts_per_class_are_as_requested_and_recorded(small_dataset, small_settings):
    counts = wh.data.count_images(small_dataset)
    assert set(counts["train"].values()) == {small_settings["train_per_class"]}
    assert set(counts["val"].values()) == {small_settings["val_per_class"]}
    assert wh.synthetic.expected_counts(small_dataset) == {
        "train": 10 * small_settings["train_per_class"],
        "val": 10 * small_settings["val_per_class"],
    }


def test_v1_file_names_follow_imagenet_train_and_val_naming(small_dataset):
    for path in (small_dataset / "train").rglob("*.JPEG"):
        match = TRAIN_NAME.match(path.name)
        assert match, path
        assert match.group(1) == path.parent.name
    for path in (small_dataset / "val").rglob("*.JPEG"):
        assert VAL_NAME.match(path.name), path


def test_imagenet_val_names_belong_to_the_class_of_their_folder(small_dataset, v2_dataset):
    checked = 0
    for root in (small_dataset, v2_dataset):
        for path in root.rglob("ILSVRC2012_val_*.JPEG"):
            assert wh.labels.imagenet_val_class(path.name) == wh.labels.breed(path.parent.name).imagenet_index
            checked += 1
    assert checked >= 20


def test_file_names_are_unique_across_the_dataset(small_dataset):
    names = [p.name for p in small_dataset.rglob("*.JPEG")]
    assert len(names) == len(set(names))


def test_every_image_has_the_requested_shortest_side_and_aspect(small_dataset, small_settings):
    for path in small_dataset.rglob("*.JPEG"):
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert min(image.size) == small_settings["shortest_side_px"], path
            assert max(image.size) <= round(small_settings["shortest_side_px"] * 1.6)


def test_sizes_vary_in_both_orientations(small_dataset):
    sizes = set()
    for path in small_dataset.rglob("*.JPEG"):
        with Image.open(path) as image:
            sizes.add(image.size)
    assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)


def test_grayscale_files_exist_when_asked_for_and_not_otherwise(small_dataset, tmp_path):
    modes = [Image.open(p).mode for p in small_dataset.rglob("*.JPEG")]
    assert "L" in modes and "RGB" in modes
    no_gray = wh.synthetic.generate(
        tmp_path / "colour", train_per_class=2, val_per_class=1, shortest_side_px=16, grayscale_fraction=0.0
    )
    assert {Image.open(p).mode for p in no_gray.rglob("*.JPEG")} == {"RGB"}


def test_same_seed_gives_byte_identical_files(tmp_path):
    settings = dict(train_per_class=2, val_per_class=2, shortest_side_px=24, grayscale_fraction=0.3, seed=5)
    a = wh.synthetic.generate(tmp_path / "a", **settings)
    b = wh.synthetic.generate(tmp_path / "b", **settings)
    files_a, files_b = all_files(a), all_files(b)
    assert [p.relative_to(a) for p in files_a] == [p.relative_to(b) for p in files_b]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(files_a, files_b, strict=True))


def test_another_seed_gives_other_files(tmp_path):
    settings = dict(train_per_class=2, val_per_class=2, shortest_side_px=24)
    a = wh.synthetic.generate(tmp_path / "a", seed=1, **settings)
    b = wh.synthetic.generate(tmp_path / "b", seed=2, **settings)
    names_a = {p.relative_to(a) for p in a.rglob("*.JPEG")}
    names_b = {p.relative_to(b) for p in b.rglob("*.JPEG")}
    assert names_a != names_b
    pixels_a = [np.asarray(Image.open(p)) for p in sorted((a / "train" / wh.labels.WNIDS[0]).iterdir())]
    pixels_b = [np.asarray(Image.open(p)) for p in sorted((b / "train" / wh.labels.WNIDS[0]).iterdir())]
    assert not any(x.shape == y.shape and np.array_equal(x, y) for x in pixels_a for y in pixels_b)


def test_v2_has_fewer_english_foxhounds_and_a_noisy_labels_csv(v2_dataset):
    counts = wh.data.count_images(v2_dataset)
    for split in ("train", "val"):
        others = [n for w, n in counts[split].items() if w != FOXHOUND]
        assert counts[split][FOXHOUND] < min(others)
        assert 0.5 < counts[split][FOXHOUND] / min(others) < 0.75  # v2: about 580 / 930
    csv = (v2_dataset / "noisy_imagewoof.csv").read_text().splitlines()
    assert csv[0] == "path,noisy_labels_0,noisy_labels_1,noisy_labels_5,noisy_labels_25,noisy_labels_50,is_valid"
    listed = {line.split(",")[0] for line in csv[1:]}
    assert listed == {p.relative_to(v2_dataset).as_posix() for p in v2_dataset.rglob("*.JPEG")}
    for line in csv[1:]:
        path, *noisy, is_valid = line.split(",")
        assert set(noisy) == {path.split("/")[1]}
        assert is_valid == str(path.startswith("val/"))


def test_v2_mixes_imagenet_validation_files_into_train(v2_dataset):
    train_names = [p.name for p in (v2_dataset / "train").rglob("*.JPEG")]
    assert any(VAL_NAME.match(n) for n in train_names)
    assert any(TRAIN_NAME.match(n) for n in train_names)


def test_v1_has_no_noisy_labels_csv(small_dataset):
    assert not (small_dataset / "noisy_imagewoof.csv").exists()


def test_pack_produces_an_archive_laid_out_like_imagewoof_320(small_dataset, small_archive):
    with tarfile.open(small_archive) as tar:
        names = tar.getnames()
    assert names, "empty archive"
    assert names[0] == "imagewoof-320"  # the top folder's own entry first, as `tar czf imagewoof-320.tgz imagewoof-320`
    assert all(n.startswith(("imagewoof-320/train", "imagewoof-320/val")) for n in names[1:])
    images = {n for n in names if n.endswith(".JPEG")}
    expected = {f"imagewoof-320/{p.relative_to(small_dataset).as_posix()}" for p in small_dataset.rglob("*.JPEG")}
    assert images == expected


def test_pack_includes_the_noisy_labels_csv_of_v2(v2_dataset, tmp_path):
    archive = wh.synthetic.pack(v2_dataset, tmp_path / "imagewoof2-320.tgz", top_folder="imagewoof2-320")
    with tarfile.open(archive) as tar:
        assert "imagewoof2-320/noisy_imagewoof.csv" in tar.getnames()


def test_generating_again_with_the_same_settings_leaves_the_files_untouched(small_dataset, small_settings):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in all_files(small_dataset)}
    assert wh.synthetic.generate(small_dataset, **small_settings) == small_dataset
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in all_files(small_dataset)} == before


def test_generating_with_other_settings_into_an_existing_dataset_raises(small_dataset, small_settings):
    with pytest.raises(FileExistsError, match=str(small_dataset)):
        wh.synthetic.generate(small_dataset, **{**small_settings, "seed": small_settings["seed"] + 1})


def test_generating_into_a_folder_with_other_files_raises(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine"):
        wh.synthetic.generate(tmp_path / "mine", train_per_class=1, val_per_class=1, shortest_side_px=16)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_generating_into_an_existing_empty_folder_works(tmp_path):
    (tmp_path / "empty").mkdir()
    root = wh.synthetic.generate(tmp_path / "empty", train_per_class=1, val_per_class=1, shortest_side_px=16)
    assert wh.synthetic.expected_counts(root) == {"train": 10, "val": 10}


def test_an_interrupted_generation_leaves_no_folder_behind(tmp_path, monkeypatch):
    real_pattern = wh.synthetic._pattern
    calls = []

    def pattern_that_fails_midway(*args, **kwargs):
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt("simulated Ctrl-C while generating")
        return real_pattern(*args, **kwargs)

    monkeypatch.setattr(wh.synthetic, "_pattern", pattern_that_fails_midway)
    with pytest.raises(KeyboardInterrupt):
        wh.synthetic.generate(tmp_path / "woof", train_per_class=2, val_per_class=1, shortest_side_px=16)
    assert len(calls) == 15  # it did fail midway, after writing files
    assert not (tmp_path / "woof").exists()
    assert not list(tmp_path.glob(".woof-building-*"))
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(wh.synthetic, "_pattern", real_pattern)
    root = wh.synthetic.generate(tmp_path / "woof", train_per_class=2, val_per_class=1, shortest_side_px=16)
    assert wh.synthetic.expected_counts(root) == {"train": 20, "val": 10}


@pytest.mark.parametrize(
    "bad, word",
    [
        (dict(shortest_side_px=4), "shortest_side_px"),
        (dict(train_per_class=0), "train_per_class"),
        (dict(val_per_class=0), "val_per_class"),
        (dict(version="v3"), "v3"),
        (dict(val_per_class=51), "50"),  # ImageNet has only 50 validation images per breed
    ],
)
def test_invalid_settings_raise_value_error_and_leave_nothing(tmp_path, bad, word):
    settings = dict(train_per_class=1, val_per_class=1, shortest_side_px=16) | bad
    with pytest.raises(ValueError, match=word):
        wh.synthetic.generate(tmp_path / "woof", **settings)
    assert list(tmp_path.iterdir()) == []


def test_expected_counts_of_a_folder_not_made_by_generate_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate"):
        wh.synthetic.expected_counts(tmp_path)


# --- the classes can be learned ---------------------------------------------------------------


@pytest.fixture(scope="module")
def learnable_set(tmp_path_factory):
    """A slightly bigger set (150 train / 100 held-out images) for the learnability checks."""
    root = wh.synthetic.generate(
        tmp_path_factory.mktemp("learn") / "woof", train_per_class=15, val_per_class=10, shortest_side_px=40, seed=3
    )
    return wh.data.list_images(root)


def _held_out_accuracy(files, features):
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def xy(split):
        pairs = [(features(p), label) for label, w in enumerate(wh.labels.WNIDS) for p in files[split][w]]
        return np.array([x for x, _ in pairs]), np.array([y for _, y in pairs])

    model = make_pipeline(StandardScaler(), NearestCentroid()).fit(*xy("train"))
    return model.score(*xy("val"))


def _colour_features(path):
    rgb = np.asarray(Image.open(path).convert("RGB").resize((32, 32)), np.float32) / 255
    return np.r_[rgb.mean(axis=(0, 1)), rgb.std(axis=(0, 1))]


def _grayscale_stripe_features(path):
    # Magnitude of the 2-D spectrum: stripe orientation and width, whatever the phase.
    gray = np.asarray(Image.open(path).convert("L").resize((32, 32)), np.float32) / 255
    return np.abs(np.fft.fft2(gray - gray.mean()))[:16, :16].ravel()


def test_classes_are_learnable_from_colour(learnable_set):
    # Chance is 10%; nearest centroid on six colour statistics gets about 75%.
    assert _held_out_accuracy(learnable_set, _colour_features) >= 0.4


def test_classes_are_learnable_without_colour(learnable_set):
    # Grayscale images must still carry the class, in the stripes; about 70% here.
    assert _held_out_accuracy(learnable_set, _grayscale_stripe_features) >= 0.4


def test_a_dataset_another_process_finishes_first_is_kept_and_ours_discarded(tmp_path, monkeypatch):
    root = tmp_path / "imagewoof"
    settings = dict(train_per_class=2, val_per_class=1, shortest_side_px=16, seed=5)
    original_mkdtemp = wh.synthetic.tempfile.mkdtemp
    calls = []

    def mkdtemp_while_another_process_generates(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:  # the "other process" builds and publishes the same dataset now
            wh.synthetic.generate(root, **settings)
        return original_mkdtemp(**kwargs)

    monkeypatch.setattr(wh.synthetic.tempfile, "mkdtemp", mkdtemp_while_another_process_generates)
    assert wh.synthetic.generate(root, **settings) == root
    assert len(calls) == 2  # both built; ours found theirs in place when it renamed
    assert wh.synthetic.expected_counts(root) == {"train": 20, "val": 10}
    assert [p.name for p in tmp_path.iterdir()] == ["imagewoof"]  # no half-built folder left


@pytest.mark.parametrize("version", ["imagewoof-320", "imagewoof2-320"])
def test_a_replica_has_the_real_archives_shape_class_by_class(tmp_path, version):
    """The rehearsal's data: every class of every split holds as many images, and as many
    ImageNet validation images, as the real archive, under real-style names."""
    spec = wh.catalog.VERSIONS[version]
    root = wh.synthetic.replica(tmp_path / version, version, shortest_side_px=16)
    found = wh.data.verify(root, spec.counts)
    for split, by_class in spec.class_counts.items():
        for wnid, (total, imagenet_val) in by_class.items():
            files = list((root / split / wnid).iterdir())
            assert found[split][wnid] == total == len(files)
            assert sum(wh.catalog.is_imagenet_val(p) for p in files) == imagenet_val
            assert all(p.name.startswith((f"{wnid}_", "ILSVRC2012_val_")) for p in files)
    assert (root / "noisy_imagewoof.csv").is_file() == (version == "imagewoof2-320")
    with pytest.raises(FileExistsError):
        wh.synthetic.replica(root, version)
