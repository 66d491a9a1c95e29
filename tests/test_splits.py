"""wh.splits: file-level splits that cannot overlap, reproducible and saved as manifests."""

import dataclasses
import shutil
from collections import Counter

import pytest

import woofhelpers as wh
from woofhelpers import recipes
from woofhelpers.splits import PARTS


def every_file(root):
    """Every image of a dataset, relative POSIX path, found independently of wh.splits."""
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/*.JPEG"))


def all_parts(split):
    return [p for part in PARTS for p in split.parts[part]]


@pytest.fixture(scope="module", params=wh.splits.SPLIT_NAMES)
def built(request, small_dataset):
    return getattr(wh.splits, request.param)(small_dataset)


def test_a_split_covers_every_file_exactly_once(built, small_dataset):
    counted = Counter(all_parts(built))
    assert set(counted.values()) == {1}
    assert sorted(counted) == every_file(small_dataset)


def test_every_part_is_non_empty_and_labels_follow_the_class_folder(built):
    for part in PARTS:
        assert built.sizes()[part] > 0
        labels = built.labels(part)
        assert labels.dtype.name == "int64"
        folders = [p.split("/")[1] for p in built.parts[part]]
        assert [wh.labels.WNIDS[i] for i in labels] == folders
        assert [p.relative_to(built.root).as_posix() for p in built.paths(part)] == list(built.parts[part])
        assert all(p.is_file() for p in built.paths(part))


def test_building_a_split_twice_gives_the_same_fingerprint(built, small_dataset):
    again = getattr(wh.splits, built.name)(small_dataset)
    assert again.fingerprint() == built.fingerprint()
    assert again.parts == built.parts


def test_splits_with_different_files_have_different_fingerprints(small_dataset):
    official = wh.splits.official(small_dataset)
    assert official.fingerprint() != wh.splits.official(small_dataset, seed=1).fingerprint()
    assert official.fingerprint() != wh.splits.pooled(small_dataset).fingerprint()


def test_official_trains_on_train_and_divides_val_by_class(small_dataset):
    split = wh.splits.official(small_dataset, test_fraction=0.5)
    assert sorted(split.parts["train"]) == [p for p in every_file(small_dataset) if p.startswith("train/")]
    held = split.parts["validation"] + split.parts["test"]
    assert sorted(held) == [p for p in every_file(small_dataset) if p.startswith("val/")]
    # Stratified: every class is in both halves, in nearly equal numbers.
    per_class = [Counter(split.labels(part).tolist()) for part in ("validation", "test")]
    for label in range(10):
        assert abs(per_class[0][label] - per_class[1][label]) <= 1


def test_pooled_holds_out_int_of_20_percent_of_train_plus_val(small_dataset):
    n = len(every_file(small_dataset))
    split = wh.splits.pooled(small_dataset)
    assert split.parts == wh.splits.pooled(small_dataset, seed=123).parts  # 123 is the default
    held = split.sizes()["validation"] + split.sizes()["test"]
    assert held == int(0.2 * n)
    assert split.sizes()["train"] == n - int(0.2 * n)
    assert split.sizes()["test"] == int(0.2 * held)


def test_pooled_really_pools_and_depends_on_the_seed(small_dataset):
    split = wh.splits.pooled(small_dataset)
    held = split.parts["validation"] + split.parts["test"]
    assert any(p.startswith("train/") for p in held) and any(p.startswith("val/") for p in held)
    assert wh.splits.pooled(small_dataset, seed=124).parts != split.parts


# --- the pooled splits against Keras itself ----------------------------------------------------


def pool_like_the_original(root, folder, keep=lambda path: True):
    """Copy every file of ``root`` that ``keep`` accepts into ``folder/<wnid>/<file name>``, as
    the original trial 4 built ``./Data/imagewoof_all/``; return {Keras' path: our relative path}."""
    back = {}
    for path in every_file(root):
        if keep(path):
            target = folder / path.split("/")[1] / path.split("/")[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / path, target)
            back[str(target)] = path
    return back


def keras_division(folder, back):
    """The (training, validation) files, as our relative paths in Keras' order, that the
    original's call of image_dataset_from_directory picks from ``folder``."""
    import keras

    training, validation = keras.utils.image_dataset_from_directory(
        folder, validation_split=0.2, subset="both", seed=123, image_size=(32, 32), batch_size=8, verbose=False
    )
    assert training.class_names == list(wh.labels.WNIDS)  # sorted wnids, as the original printed
    return [back[p] for p in training.file_paths], [back[p] for p in validation.file_paths]


@pytest.mark.parametrize("dataset", ["small_dataset", "v2_dataset"])
def test_pooled_picks_the_files_keras_picked_for_the_original(dataset, request, tmp_path, tf):
    root = request.getfixturevalue(dataset)
    back = pool_like_the_original(root, tmp_path / "imagewoof_all")
    keras_train, keras_held = keras_division(tmp_path / "imagewoof_all", back)
    split = wh.splits.pooled(root)
    assert list(split.parts["train"]) == keras_train  # same files, same order
    # The test part is the first fifth of Keras' validation files, the validation part the rest.
    assert list(split.parts["test"] + split.parts["validation"]) == keras_held
    assert len(split.parts["test"]) == int(0.2 * len(keras_held))


@pytest.mark.parametrize("dataset", ["small_dataset", "v2_dataset"])
def test_pooled_leakage_free_divides_the_rest_as_keras_would(dataset, request, tmp_path, tf):
    root = request.getfixturevalue(dataset)
    seen_by_imagenet = lambda path: not wh.catalog.is_imagenet_val(path)  # noqa: E731
    back = pool_like_the_original(root, tmp_path / "imagewoof_all", keep=seen_by_imagenet)
    keras_train, keras_validation = keras_division(tmp_path / "imagewoof_all", back)
    split = wh.splits.pooled_leakage_free(root)
    assert list(split.parts["train"]) == keras_train
    assert list(split.parts["validation"]) == keras_validation
    ilsvrc = [p for p in every_file(root) if wh.catalog.is_imagenet_val(p)]
    assert sorted(split.parts["test"]) == ilsvrc
    assert wh.splits.leakage_free_test(split) == tuple(split.parts["test"])  # its own test is the honest one


def test_pooled_folder_order_is_class_by_class_then_by_file_name():
    paths = [
        "train/n02087394/n02087394_2.JPEG",
        "train/n02086240/n02086240_15154.JPEG",
        "val/n02086240/ILSVRC2012_val_00000293.JPEG",
        "train/n02086240/n02086240_1357.JPEG",
    ]
    assert wh.splits.pooled_folder_order(paths) == [
        "val/n02086240/ILSVRC2012_val_00000293.JPEG",  # "I" sorts before "n", as in os.walk + sorted
        "train/n02086240/n02086240_1357.JPEG",  # names sort as strings, not as numbers
        "train/n02086240/n02086240_15154.JPEG",
        "train/n02087394/n02087394_2.JPEG",
    ]


def test_pooling_two_files_of_one_class_with_the_same_name_is_refused(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    first = sorted((root / "train" / "n02086240").iterdir())[0]
    shutil.copyfile(first, root / "val" / "n02086240" / first.name)
    with pytest.raises(ValueError, match=first.name):
        wh.splits.pooled(root)


def test_split_sizes_on_imagewoof_v1_counts(monkeypatch, tmp_path):
    """Names shaped like v1's (12,454 train, 500 val, 50 per class): the sizes the chapters quote."""
    train = [f"train/{w}/{w}_{i}.JPEG" for i in range(1246) for w in wh.labels.WNIDS][:12_454]
    val = [f"val/{w}/ILSVRC2012_val_{1000 * k + i:08d}.JPEG" for k, w in enumerate(wh.labels.WNIDS) for i in range(50)]
    monkeypatch.setattr(wh.splits, "_files", lambda root, folder: {"train": train, "val": val}[folder])
    assert wh.splits.pooled(tmp_path).sizes() == {"train": 10_364, "validation": 2_072, "test": 518}
    assert wh.splits.pooled_leakage_free(tmp_path).sizes() == {"train": 9_964, "validation": 2_490, "test": 500}
    assert wh.splits.official(tmp_path).sizes() == {"train": 12_454, "validation": 400, "test": 100}


@pytest.mark.parametrize("fraction", [0, 1])
def test_pooled_refuses_a_fraction_outside_0_to_1(small_dataset, fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        wh.splits.pooled(small_dataset, validation_fraction=fraction)
    with pytest.raises(ValueError, match="test_fraction"):
        wh.splits.pooled(small_dataset, test_fraction=fraction)


def test_the_honest_trials_differ_from_the_faithful_ones_only_in_their_split():
    for name in ("trial4", "trial5"):
        faithful, honest = recipes.get(name), recipes.get(f"{name}_honest")
        assert faithful.split == "pooled" and honest.split == "pooled_leakage_free"
        same = dataclasses.replace(honest, name=name, split="pooled", description=faithful.description)
        assert same == faithful


def test_leakage_free_test_is_exactly_the_imagenet_validation_files(v2_dataset):
    split = wh.splits.leakage_free(v2_dataset)
    ilsvrc = sorted(p for p in every_file(v2_dataset) if p.split("/")[-1].startswith("ILSVRC2012_val_"))
    assert ilsvrc, "the v2 fixture should mix ImageNet validation files into both folders"
    assert any(p.startswith("train/") for p in ilsvrc)
    assert sorted(split.parts["test"]) == ilsvrc
    trained_or_validated = split.parts["train"] + split.parts["validation"]
    assert not any("ILSVRC2012_val_" in p for p in trained_or_validated)


def test_leakage_free_on_v1_tests_on_the_whole_val_folder(small_dataset):
    split = wh.splits.leakage_free(small_dataset)
    assert sorted(split.parts["test"]) == [p for p in every_file(small_dataset) if p.startswith("val/")]


def test_leakage_free_without_imagenet_validation_files_raises(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    for path in (root / "val").rglob("ILSVRC2012_val_*.JPEG"):
        path.rename(path.with_name(f"{path.parent.name}_9{path.stem[-5:]}.JPEG"))
    with pytest.raises(ValueError, match="ILSVRC2012_val_"):
        wh.splits.leakage_free(root)


@pytest.mark.parametrize("name", wh.splits.SPLIT_NAMES)
def test_leakage_free_test_of_any_split_avoids_its_train_and_validation(name, v2_dataset):
    split = getattr(wh.splits, name)(v2_dataset)
    honest = wh.splits.leakage_free_test(split)
    if name != "pooled":  # pooled may train or validate on all of them
        assert honest
    used = set(split.parts["train"]) | set(split.parts["validation"])
    assert not used & set(honest)
    assert all(p.split("/")[-1].startswith("ILSVRC2012_val_") for p in honest)
    # ...and it is every ImageNet validation file the split does not train or validate on.
    ilsvrc = {p for p in every_file(v2_dataset) if "ILSVRC2012_val_" in p}
    assert set(honest) == ilsvrc - used


def test_leakage_free_test_leaves_out_excluded_files(v2_dataset):
    split = wh.splits.leakage_free(v2_dataset)
    dropped = split.parts["test"][0]
    assert dropped not in wh.splits.leakage_free_test(split.without([dropped]))


def test_manifest_round_trips_with_the_same_fingerprint(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    for name in wh.splits.SPLIT_NAMES:
        split = wh.splits.make(name, root)
        path = root / "splits" / f"{name}.csv"
        assert path.is_file()
        loaded = wh.splits.load_manifest(path)
        assert loaded.fingerprint() == split.fingerprint()
        assert (loaded.name, loaded.root, loaded.parts) == (split.name, split.root, split.parts)
    assert sorted(p.name for p in (root / "splits").iterdir()) == sorted(f"{n}.csv" for n in wh.splits.SPLIT_NAMES)


def test_manifest_rows_carry_part_path_label_and_wnid(small_dataset):
    split = wh.splits.official(small_dataset)
    lines = split.manifest().splitlines()
    assert lines[0] == "part,path,label,wnid"
    assert len(lines) == 1 + len(all_parts(split))
    part, path, label, wnid = lines[1].split(",")
    assert part == "train" and path.split("/")[1] == wnid and int(label) == wh.labels.WNIDS.index(wnid)


def test_load_manifest_with_another_root(small_dataset, copy_dataset, tmp_path):
    root = copy_dataset(small_dataset)
    path = wh.splits.official(root).save()
    loaded = wh.splits.load_manifest(path, root=tmp_path / "elsewhere")
    assert loaded.root == tmp_path / "elsewhere"


def test_load_manifest_refuses_an_unknown_part(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("part,path,label,wnid\nholdout,val/n02086240/a.JPEG,0,n02086240\n")
    with pytest.raises(ValueError, match="holdout"):
        wh.splits.load_manifest(path)


def test_make_with_an_unknown_name_lists_the_split_names(small_dataset):
    with pytest.raises(ValueError) as excinfo:
        wh.splits.make("random", small_dataset)
    assert "random" in str(excinfo.value)
    for name in wh.splits.SPLIT_NAMES:
        assert name in str(excinfo.value)


def test_a_split_with_a_file_in_two_parts_raises_naming_it(small_dataset):
    file = "val/n02086240/x.JPEG"
    with pytest.raises(ValueError, match=file):
        wh.splits.Split("mine", small_dataset, {"train": (file,), "validation": (), "test": (file,)})


def test_a_split_with_a_file_twice_in_one_part_raises(small_dataset):
    file = "train/n02086240/x.JPEG"
    with pytest.raises(ValueError, match=file):
        wh.splits.Split("mine", small_dataset, {"train": (file, file), "validation": (), "test": ()})


def test_a_split_needs_exactly_the_three_parts(small_dataset):
    with pytest.raises(ValueError, match="validation"):
        wh.splits.Split("mine", small_dataset, {"train": (), "test": ()})


def test_an_unknown_part_name_is_refused(small_dataset):
    with pytest.raises(ValueError, match="valid"):
        wh.splits.official(small_dataset).paths("valid")


def test_without_removes_files_everywhere_and_records_them(small_dataset):
    split = wh.splits.official(small_dataset)
    drop = [split.parts["train"][0], split.parts["test"][0]]
    smaller = split.without(drop)
    assert smaller.excluded == tuple(sorted(drop))
    assert not set(drop) & set(all_parts(smaller))
    assert len(all_parts(smaller)) == len(all_parts(split)) - 2
    assert split.sizes() != smaller.sizes()  # the original is unchanged


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_a_fraction_outside_0_to_1_is_refused(small_dataset, fraction):
    with pytest.raises(ValueError, match="fraction"):
        wh.splits.official(small_dataset, test_fraction=fraction)


# --- a dataset folder that is read only ----------------------------------------------------


def refuse_writes(monkeypatch, number):
    """Make the writer fail as a read-only (EROFS, EACCES) or full (ENOSPC) folder would. As
    root, permissions do not stop a write, so this stands in for a read-only mount."""
    import os

    def refuse(path, text):
        raise OSError(number, os.strerror(number), str(path))

    monkeypatch.setattr(wh.splits, "write_text_atomically", refuse)


def test_make_writes_nothing_when_the_manifest_is_there_already(small_dataset, copy_dataset, monkeypatch):
    import errno

    root = copy_dataset(small_dataset)
    first = wh.splits.make("official", root)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    refuse_writes(monkeypatch, errno.EROFS)
    assert wh.splits.make("official", root).fingerprint() == first.fingerprint()
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize("number", ["EROFS", "EACCES"])
def test_make_reads_a_dataset_it_cannot_write_to(small_dataset, copy_dataset, monkeypatch, number):
    import errno

    root = copy_dataset(small_dataset)
    refuse_writes(monkeypatch, getattr(errno, number))
    split = wh.splits.make("leakage_free", root)
    assert split.fingerprint() == wh.splits.leakage_free(root).fingerprint()
    assert not (root / "splits" / "leakage_free.csv").exists()
    with pytest.raises(OSError):  # asked for explicitly, the manifest still says it cannot be written
        split.save()


def test_make_does_not_hide_a_full_disk(small_dataset, copy_dataset, monkeypatch):
    import errno

    root = copy_dataset(small_dataset)
    refuse_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as excinfo:
        wh.splits.make("official", root)
    assert excinfo.value.errno == errno.ENOSPC


def test_a_manifest_that_differs_is_written_again(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    (root / "splits").mkdir()
    (root / "splits" / "official.csv").write_text("part,path,label,wnid\n")
    split = wh.splits.make("official", root)
    assert (root / "splits" / "official.csv").read_text() == split.manifest()


@pytest.mark.parametrize("name", ["official", "leakage_free"])
def test_too_few_files_per_class_names_the_split_and_the_fix(name, tmp_path):
    # 3 train and 1 val image per class: official cannot put one of each class in both its
    # validation and test parts, leakage_free cannot hold out 10% of the train images per class.
    root = wh.synthetic.generate(tmp_path / "tiny", train_per_class=3, val_per_class=1, shortest_side_px=16)
    with pytest.raises(ValueError) as excinfo:
        wh.splits.make(name, root)
    message = str(excinfo.value)
    assert f"split {name!r} cannot be built from {root}" in message and "more images per class" in message
