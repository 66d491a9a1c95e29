"""wh.pipeline: decoding by content, scanning out bad files, and the tf.data datasets."""

import hashlib
import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import woofhelpers as wh

SIZE = 32


def jpeg_bytes(mode="RGB", size=(100, 80), fmt="JPEG"):
    """An image with three coloured bands, as bytes. At 80 px it is more than twice
    SIZE, so the pipeline may decode it at reduced scale: that path is exercised too."""
    array = np.zeros((size[1], size[0], 3), np.uint8)
    third = size[0] // 3
    array[:, :third], array[:, third : 2 * third], array[:, 2 * third :] = (200, 30, 30), (30, 200, 30), (30, 30, 200)
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


# The bad and odd files, placed in different classes and both folders. The values
# say whether the file can be decoded.
ODD_FILES = {
    "train/n02086240/truncated.JPEG": (lambda: jpeg_bytes()[: len(jpeg_bytes()) // 2], False),
    "train/n02087394/zero_bytes.JPEG": (lambda: b"", False),
    "val/n02088364/text.JPEG": (lambda: b"this is a note, not a photograph\n", False),
    "val/n02089973/png_inside.JPEG": (lambda: jpeg_bytes(fmt="PNG"), True),
    "train/n02093754/cmyk.JPEG": (lambda: jpeg_bytes(mode="CMYK"), True),
    "val/n02096294/grayscale.JPEG": (lambda: jpeg_bytes(mode="L"), True),
}
UNREADABLE = sorted(p for p, (_, readable) in ODD_FILES.items() if not readable)
READABLE_ODD = sorted(p for p, (_, readable) in ODD_FILES.items() if readable)


@pytest.fixture(scope="module")
def odd_dataset(small_dataset, tmp_path_factory):
    """A copy of the small dataset with every file of ODD_FILES added."""
    root = Path(shutil.copytree(small_dataset, tmp_path_factory.mktemp("odd") / "dataset"))
    for relative, (content, _) in ODD_FILES.items():
        (root / relative).write_bytes(content())
    return root


@pytest.fixture(scope="module")
def odd_split(odd_dataset):
    return wh.splits.official(odd_dataset)


@pytest.fixture(scope="module")
def scanned(odd_split, tf):
    return wh.pipeline.scan(odd_split, verbose=False)


def all_parts(split):
    return [p for part in wh.splits.PARTS for p in split.parts[part]]


def epoch(ds):
    """One pass over a dataset: (images, labels) as NumPy arrays."""
    images, labels = [], []
    for x, y in ds.as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def image_keys(images):
    return [hashlib.sha1(image.tobytes()).hexdigest() for image in images]


# --- bad files ------------------------------------------------------------------------------


def test_the_layout_check_lets_odd_files_through_for_the_scan(odd_dataset, odd_split):
    listed = {
        p.relative_to(odd_dataset).as_posix()
        for by in wh.data.list_images(odd_dataset).values()
        for files in by.values()
        for p in files
    }
    assert set(ODD_FILES) <= listed
    assert set(ODD_FILES) <= set(all_parts(odd_split))


def test_scan_reports_each_unreadable_file_by_path_with_a_reason(scanned, odd_split):
    _, report = scanned
    assert sorted(report.unreadable) == UNREADABLE
    assert report.checked == len(all_parts(odd_split))
    assert report.unreadable["train/n02087394/zero_bytes.JPEG"] == "zero-byte file"
    assert report.unreadable["val/n02088364/text.JPEG"].startswith("not an image")
    assert "truncated" in report.unreadable["train/n02086240/truncated.JPEG"]


def test_scan_excludes_and_counts_the_unreadable_and_keeps_every_readable_file(scanned, odd_split):
    cleaned, report = scanned
    assert cleaned.excluded == tuple(UNREADABLE)
    assert sorted(all_parts(cleaned)) == sorted(set(all_parts(odd_split)) - set(UNREADABLE))
    assert set(READABLE_ODD) <= set(all_parts(cleaned))
    # Each file stays in the part it was in.
    for part in wh.splits.PARTS:
        assert set(cleaned.parts[part]) == set(odd_split.parts[part]) - set(UNREADABLE)
    text = str(report)
    assert f"{report.checked} files" in text and f"{len(UNREADABLE)} unreadable" in text
    for path in UNREADABLE:
        assert path in text


def test_scan_prints_its_report_unless_asked_not_to(odd_split, capsys, tf):
    _, report = wh.pipeline.scan(odd_split)
    printed = capsys.readouterr().out
    assert printed.strip() == str(report)
    assert all(path in printed for path in UNREADABLE)


def test_scan_of_a_clean_split_excludes_nothing(small_dataset, tf):
    split = wh.splits.official(small_dataset)
    cleaned, report = wh.pipeline.scan(split, verbose=False)
    assert report.unreadable == {} and report.checked == len(all_parts(split))
    assert cleaned.parts == split.parts and cleaned.excluded == ()


@pytest.mark.parametrize("relative", READABLE_ODD)
def test_png_cmyk_and_grayscale_files_decode_to_rgb(odd_dataset, relative, tf):
    path = odd_dataset / relative
    image = wh.pipeline.decode(tf.io.read_file(str(path))).numpy()
    with Image.open(path) as original:
        assert image.shape == (original.height, original.width, 3)
    assert image.dtype == np.uint8
    width = image.shape[1]
    left, middle = image[:, width // 6].astype(int), image[:, width // 2].astype(int)
    if relative.endswith("grayscale.JPEG"):
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    else:  # the colours survive: red band on the left, green in the middle
        assert (left[:, 0] > left[:, 1] + 100).all()
        assert (middle[:, 1] > middle[:, 0] + 100).all()


def test_a_full_epoch_over_the_cleaned_split_yields_exactly_the_readable_files(scanned, odd_split):
    cleaned, _ = scanned
    total = 0
    for part in wh.splits.PARTS:
        images, labels = epoch(wh.pipeline.dataset(cleaned, part, image_size_px=SIZE, batch_size=8))
        assert len(images) == len(labels) == cleaned.sizes()[part]
        total += len(images)
    assert total == len(all_parts(odd_split)) - len(UNREADABLE)


def test_without_the_scan_a_truncated_file_stops_the_epoch(odd_split, tf):
    assert "train/n02086240/truncated.JPEG" in odd_split.parts["train"]
    ds = wh.pipeline.dataset(odd_split, "train", image_size_px=SIZE, batch_size=8)
    with pytest.raises(tf.errors.InvalidArgumentError):
        epoch(ds)


def test_an_empty_class_folder_is_refused_naming_it(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    folder = root / "val" / "n02105641"
    for path in folder.iterdir():
        path.unlink()
    for build in (wh.data.list_images, wh.splits.official):
        with pytest.raises(ValueError, match=str(folder)):
            build(root)


def test_an_unknown_folder_is_refused_naming_it(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    (root / "train" / "n99999999").mkdir()
    (root / "train" / "n99999999" / "cat.JPEG").write_bytes(jpeg_bytes())
    for build in (wh.data.list_images, wh.splits.official):
        with pytest.raises(ValueError, match="n99999999") as excinfo:
            build(root)
        assert "n02086240" in str(excinfo.value)  # and says which folders are expected


# --- the dataset ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split(small_dataset):
    return wh.splits.official(small_dataset)


@pytest.fixture(scope="module")
def in_file_order(split, tf):
    """The train part, unshuffled: image i is file i of the split."""
    return epoch(wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, shuffle=False))


def test_batches_have_the_documented_shapes_and_dtypes(split, tf):
    ds = wh.pipeline.dataset(split, "validation", image_size_px=SIZE, batch_size=7)
    batches = list(ds)
    n = split.sizes()["validation"]
    assert [len(y) for _, y in batches] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    for images, labels in batches:
        assert images.dtype == tf.uint8 and labels.dtype == tf.int64
        assert images.shape[1:] == (SIZE, SIZE, 3)
    assert ds.element_spec[0].shape.as_list() == [None, SIZE, SIZE, 3]


def test_a_keras_model_with_float32_input_takes_the_uint8_batches_as_their_float_values(split, tf):
    import keras

    seen = []

    class Record(keras.layers.Layer):
        def call(self, x):
            seen.append(keras.backend.standardize_dtype(x.dtype))
            return keras.ops.mean(x, axis=(1, 2, 3))

    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, Record()(inputs))
    ds = wh.pipeline.dataset(split, "validation", image_size_px=SIZE, batch_size=8, shuffle=False)
    images = np.concatenate([x.numpy() for x, _ in ds])
    means = model.predict(ds.map(lambda x, y: x), verbose=0)
    assert set(seen) == {"float32"}
    np.testing.assert_allclose(means, images.astype(np.float32).mean(axis=(1, 2, 3)), rtol=1e-5)


def test_pixel_values_are_0_to_255_not_rescaled(in_file_order):
    images, _ = in_file_order
    assert images.min() >= 0 and images.max() <= 255
    assert images.max() > 200  # not scaled down to 0-1


def test_unshuffled_labels_are_the_class_folders_in_file_order(split, in_file_order):
    _, labels = in_file_order
    folders = [p.split("/")[1] for p in split.parts["train"]]
    assert [wh.labels.WNIDS[i] for i in labels] == folders


def test_an_image_is_the_resized_file_it_comes_from(split, in_file_order, tf):
    images, _ = in_file_order
    path = split.paths("train")[5]
    with Image.open(path) as original:
        expected = tf.image.resize(np.asarray(original.convert("RGB")), (SIZE, SIZE)).numpy()
    # TensorFlow's JPEG decoder rounds a little differently from Pillow's.
    assert np.abs(images[5] - expected).mean() < 2
    assert np.abs(images[6] - expected).mean() > 10  # another file is far off


def test_train_is_shuffled_by_seed_with_every_file_once_and_its_own_label(split, in_file_order):
    reference = dict(zip(image_keys(in_file_order[0]), in_file_order[1], strict=True))
    assert len(reference) == len(in_file_order[0])  # every image distinct, so keys identify files
    ds = wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, seed=3)
    images, labels = epoch(ds)
    keys = image_keys(images)
    assert sorted(keys) == sorted(reference)  # each file exactly once
    assert [reference[k] for k in keys] == labels.tolist()  # labels travel with their image
    assert keys != image_keys(in_file_order[0])  # and the order is shuffled
    again = epoch(wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, seed=3))
    assert image_keys(again[0]) == keys  # same seed, same first epoch
    other = epoch(wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, seed=4))
    assert image_keys(other[0]) != keys


def test_train_order_changes_from_epoch_to_epoch(split):
    ds = wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, seed=3)
    first, second = image_keys(epoch(ds)[0]), image_keys(epoch(ds)[0])
    assert first != second and sorted(first) == sorted(second)


def test_validation_and_test_are_not_shuffled_by_default(split):
    for part in ("validation", "test"):
        ds = wh.pipeline.dataset(split, part, image_size_px=SIZE, batch_size=16)
        _, labels = epoch(ds)
        assert labels.tolist() == split.labels(part).tolist()
        assert image_keys(epoch(ds)[0]) == image_keys(epoch(ds)[0])


def test_cache_in_memory_reshuffles_each_epoch_over_the_same_images(split, in_file_order):
    reference = dict(zip(image_keys(in_file_order[0]), in_file_order[1], strict=True))
    ds = wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, cache=True, seed=1)
    epochs = [epoch(ds) for _ in range(3)]
    orders = [image_keys(images) for images, _ in epochs]
    assert orders[0] != orders[1] and orders[1] != orders[2]
    for order, (_, labels) in zip(orders, epochs, strict=True):
        assert sorted(order) == sorted(reference)
        assert [reference[k] for k in order] == labels.tolist()


def test_cache_in_a_file_writes_the_cache_and_gives_the_same_images(split, in_file_order, tmp_path):
    ds = wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=16, cache=str(tmp_path / "cache"))
    first, second = image_keys(epoch(ds)[0]), image_keys(epoch(ds)[0])
    assert Counter(first) == Counter(second) == Counter(image_keys(in_file_order[0]))
    assert first != second
    assert any(p.name.startswith("cache") for p in tmp_path.iterdir())


def test_a_file_cache_gives_every_epoch_exactly_what_the_uncached_pipeline_gives(split, tmp_path):
    def epochs(ds, n):
        return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(n)]

    options = dict(image_size_px=SIZE, batch_size=16, shuffle=True, seed=3)
    plain = epochs(wh.pipeline.dataset(split, "train", **options), 3)
    # The first epoch decodes and caches, the next two only read; then a dataset built on
    # the complete cache reads from its first epoch.
    cached = epochs(wh.pipeline.dataset(split, "train", cache=tmp_path / "cache", **options), 3)
    rebuilt = epochs(wh.pipeline.dataset(split, "train", cache=tmp_path / "cache", **options), 1)
    assert len(list((tmp_path / "cache").iterdir())) == split.sizes()["train"]
    for name, other in (("cached", cached), ("rebuilt", rebuilt)):
        for e, (mine, theirs) in enumerate(zip(other, plain, strict=False)):
            assert len(mine) == len(theirs)
            for (xa, ya), (xb, yb) in zip(mine, theirs, strict=True):
                np.testing.assert_array_equal(ya, yb, err_msg=f"{name} epoch {e}")
                np.testing.assert_array_equal(xa, xb, err_msg=f"{name} epoch {e}")
    assert not np.array_equal(plain[0][0][1], plain[1][0][1])  # the order changes between epochs


def test_a_first_epoch_stopped_half_way_leaves_whole_files_and_the_next_dataset_makes_the_rest(split, tmp_path, tf):
    options = dict(image_size_px=SIZE, batch_size=4, cache=tmp_path / "cache")
    first = wh.pipeline.dataset(split, "train", **options)
    for _ in first.take(2):  # stop after two batches, as a killed run would
        pass
    made = sorted((tmp_path / "cache").iterdir())
    assert 0 < len(made) < split.sizes()["train"]
    for path in made:  # each one whole: a (size, size, 3) uint8 image
        assert tf.io.parse_tensor(path.read_bytes(), tf.uint8).shape == (SIZE, SIZE, 3), path.name
    whole = {p.name: p.read_bytes() for p in made}
    again = wh.pipeline.dataset(split, "train", **options)
    images = np.concatenate([x.numpy() for x, _ in again])
    assert len(images) == split.sizes()["train"]
    files = {p.name: p for p in (tmp_path / "cache").iterdir()}
    assert len(files) == split.sizes()["train"] and not any(".tmp-" in name for name in files)
    assert all(files[name].read_bytes() == data for name, data in whole.items())  # reused, not rewritten


def test_augmented_epochs_depend_only_on_the_seed(split, tf):
    """The corrected recipe augments: a resumed run, or a rerun, must see the very images an
    uninterrupted run saw, and another epoch (another seed) other ones."""

    def epoch(seed):
        ds = wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=4, augment=True, seed=seed)
        return np.concatenate([images.numpy() for images, _ in ds])

    first, again, other = epoch(3), epoch(3), epoch(4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    plain = np.concatenate(
        [i.numpy() for i, _ in wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=4, seed=3)]
    )
    assert first.shape == plain.shape and not np.allclose(first, plain)  # it does augment


def test_augmentation_keeps_shapes_and_labels(split, tf):
    ds = wh.pipeline.dataset(split, "test", image_size_px=SIZE, batch_size=4, augment=True)
    images, labels = epoch(ds)
    assert images.shape == (split.sizes()["test"], SIZE, SIZE, 3) and images.dtype == np.float32
    assert labels.tolist() == split.labels("test").tolist()


@pytest.mark.parametrize(
    "options, word",
    [
        (dict(image_size_px=16, batch_size=8), "image_size_px"),
        (dict(image_size_px=SIZE, batch_size=0), "batch_size"),
    ],
)
def test_bad_sizes_are_refused(split, options, word, tf):
    with pytest.raises(ValueError, match=word):
        wh.pipeline.dataset(split, "train", **options)


def test_an_empty_part_is_refused_naming_it(split, tf):
    empty = wh.splits.Split("mine", split.root, {"train": split.parts["train"], "validation": (), "test": ()})
    with pytest.raises(ValueError, match="test"):
        wh.pipeline.dataset(empty, "test", image_size_px=SIZE, batch_size=8)


def test_an_unknown_part_is_refused(split, tf):
    with pytest.raises(ValueError, match="valid"):
        wh.pipeline.dataset(split, "valid", image_size_px=SIZE, batch_size=8)


# --- squash or crop ---------------------------------------------------------------------------


def textured_jpeg_bytes(size=(100, 60), fmt="JPEG", seed=0, cell_px=6):
    """A smooth random colour texture (blobs of about ``cell_px``), so that any shift of a
    crop changes the pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (size[1] // cell_px + 2, size[0] // cell_px + 2, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def resized_uint8(image, tf):
    """What the pipeline does after decoding: bilinear resize to SIZE, round, uint8."""
    resized = tf.image.resize(image, (SIZE, SIZE), method="bilinear")
    return tf.cast(tf.round(tf.clip_by_value(resized, 0, 255)), tf.uint8).numpy().astype(np.float32)


def squash_as_before(path, tf):
    """The pipeline's squash exactly as it was before crops existed (frozen copy)."""
    contents = tf.io.read_file(path)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)
        shortest = tf.minimum(shape[0], shape[1])
        index = tf.add_n([tf.cast(shortest >= r * SIZE, tf.int32) for r in (2, 4, 8)])
        branches = [lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r) for r in (1, 2, 4, 8)]
        return tf.switch_case(index, branches)

    def other():
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    return resized_uint8(tf.cond(tf.io.is_jpeg(contents), jpeg, other), tf)


def colour_shares(image):
    """Shares of the pixels that are clearly red, green or blue."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return {
        "red": ((r > g + 60) & (r > b + 60)).mean(),
        "green": ((g > r + 60) & (g > b + 60)).mean(),
        "blue": ((b > r + 60) & (b > g + 60)).mean(),
    }


@pytest.mark.parametrize("size", [(150, 50), (300, 100)], ids=["full-scale decode", "half-scale decode"])
def test_a_centre_crop_of_a_wide_image_keeps_the_middle_third_and_squash_keeps_all_three(tmp_path, size, tf):
    # Red, green and blue thirds: the centred square of a 3:1 image is the green third.
    path = write(tmp_path, "wide.JPEG", jpeg_bytes(size=size))
    centre = wh.pipeline.load_image(path, SIZE, crop="centre").numpy()
    squashed = wh.pipeline.load_image(path, SIZE, crop="squash").numpy()
    assert centre.shape == squashed.shape == (SIZE, SIZE, 3)
    assert colour_shares(centre)["green"] > 0.9, colour_shares(centre)
    assert all(share > 0.25 for share in colour_shares(squashed).values()), colour_shares(squashed)
    assert colour_shares(squashed)["green"] < 0.4


@pytest.mark.parametrize("size", [(100, 60), (60, 100), (57, 57)], ids=["landscape", "portrait", "square"])
def test_a_centre_crop_is_the_full_decode_cut_to_its_centre_square_and_resized(tmp_path, size, tf):
    path = write(tmp_path, "photo.JPEG", textured_jpeg_bytes(size))
    full = tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()
    height, width = full.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    expected = resized_uint8(full[top : top + side, left : left + side], tf)
    # Below twice the target the JPEG is decoded at full scale, and the cut is exact but for
    # its edges, where libjpeg smooths the (half-resolution) colour from the cut's own pixels.
    centre = wh.pipeline.load_image(path, SIZE, crop="centre").numpy()
    np.testing.assert_array_equal(centre[1:-1, 1:-1], expected[1:-1, 1:-1])
    assert np.abs(centre - expected).mean() < 0.5
    if size[0] != size[1]:
        assert np.abs(wh.pipeline.load_image(path, SIZE).numpy() - expected).mean() > 5  # squash differs


def test_a_centre_crop_of_a_larger_jpeg_is_decoded_at_half_scale_within_a_few_levels(tmp_path, tf):
    # 120 >= 2 x 32: decoded at half scale, which averages pixels where a bilinear resize of
    # the full image samples them (as for squash; see load_image), so the texture is coarse.
    path = write(tmp_path, "large.JPEG", textured_jpeg_bytes((180, 120), cell_px=20))
    full = tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()
    expected = resized_uint8(full[:, 30:150], tf)
    centre = wh.pipeline.load_image(path, SIZE, crop="centre").numpy()
    assert np.abs(centre - expected).mean() < 3
    assert np.abs(wh.pipeline.load_image(path, SIZE).numpy() - expected).mean() > 5


@pytest.mark.parametrize(
    "name, data",
    [
        ("png_inside.JPEG", lambda: textured_jpeg_bytes(fmt="PNG")),
        ("grayscale.JPEG", lambda: jpeg_bytes(mode="L", size=(100, 60))),
        ("cmyk.JPEG", lambda: jpeg_bytes(mode="CMYK", size=(100, 60))),
    ],
)
def test_centre_crops_of_png_grayscale_and_cmyk_files_are_rgb_cuts_of_the_decoded_image(tmp_path, name, data, tf):
    path = write(tmp_path, name, data())
    full = wh.pipeline.decode(tf.io.read_file(path)).numpy()  # the PNG, grayscale or CMYK decode
    expected = resized_uint8(full[:, 20:80], tf)
    centre = wh.pipeline.load_image(path, SIZE, crop="centre").numpy()
    np.testing.assert_array_equal(centre, expected)
    if name.startswith("grayscale"):
        assert (centre[..., 0] == centre[..., 1]).all() and (centre[..., 1] == centre[..., 2]).all()


def test_squash_is_unchanged_by_the_crop_option(split, odd_dataset, tmp_path, tf):
    # Every generated file (some grayscale), the PNG, CMYK and grayscale odd files, and a
    # JPEG large enough for a reduced-scale decode: the values are exactly those of the
    # pipeline before crops existed, so earlier results and caches stay valid.
    paths = [str(p) for p in split.paths("validation")]
    paths += [str(odd_dataset / p) for p in READABLE_ODD]
    paths.append(write(tmp_path, "large.JPEG", textured_jpeg_bytes((420, 280))))
    for path in paths:
        before = squash_as_before(path, tf)
        np.testing.assert_array_equal(wh.pipeline.load_image(path, SIZE).numpy(), before, err_msg=path)
        np.testing.assert_array_equal(wh.pipeline.load_image(path, SIZE, crop="squash").numpy(), before)
    ds = wh.pipeline.dataset(split, "validation", image_size_px=SIZE, batch_size=64, shuffle=False)
    images = epoch(ds)[0].astype(np.float32)
    np.testing.assert_array_equal(images, [squash_as_before(str(p), tf) for p in split.paths("validation")])


def test_random_crop_windows_stay_inside_the_image_at_60_to_100_percent_of_the_shortest_side(tf):
    for height, width in ((90, 150), (150, 90), (40, 40), (320, 517)):
        sides = []
        for s in range(100):
            corner, side = wh.pipeline._crop_window(
                tf.constant([height, width]), "random", wh.pipeline._stateless_seed(s)
            )
            (top, left), side = corner.numpy().tolist(), int(side)
            window = (top, left, side)
            assert 0 <= top <= height - side and 0 <= left <= width - side, (s, window)
            assert round(0.6 * min(height, width)) <= side <= min(height, width), (s, window)
            sides.append(side)
        assert max(sides) - min(sides) > 0.25 * min(height, width)  # the scale does vary


def test_a_random_crop_is_the_cut_its_seed_names_and_two_seeds_give_two_crops(tmp_path, tf):
    path = write(tmp_path, "photo.JPEG", textured_jpeg_bytes((100, 60)))  # decoded at full scale
    full = tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()
    crops = {}
    for s in (1, 2):
        corner, side = wh.pipeline._crop_window(tf.constant([60, 100]), "random", wh.pipeline._stateless_seed(s))
        (top, left), side = corner.numpy().tolist(), int(side)
        crops[s] = wh.pipeline.load_image(path, SIZE, crop="random", seed=s).numpy()
        assert crops[s].shape == (SIZE, SIZE, 3) and crops[s].dtype == np.float32
        expected = resized_uint8(full[top : top + side, left : left + side], tf)
        np.testing.assert_array_equal(crops[s][1:-1, 1:-1], expected[1:-1, 1:-1])  # the edges: see above
        assert np.abs(crops[s] - expected).mean() < 0.5
        np.testing.assert_array_equal(crops[s], wh.pipeline.load_image(path, SIZE, crop="random", seed=s).numpy())
    assert np.abs(crops[1] - crops[2]).mean() > 5


def test_random_crops_in_a_dataset_change_each_epoch_and_are_fixed_by_the_seed(split, tf):
    options = dict(image_size_px=SIZE, batch_size=16, shuffle=False, crop="random")
    ds = wh.pipeline.dataset(split, "train", seed=5, **options)
    (first, labels), (second, _) = epoch(ds), epoch(ds)
    assert first.shape == (split.sizes()["train"], SIZE, SIZE, 3) and first.dtype == np.uint8
    assert labels.tolist() == split.labels("train").tolist()
    changed = [not np.array_equal(a, b) for a, b in zip(first, second, strict=True)]
    assert sum(changed) > 0.8 * len(changed)  # a new window for (almost) every image
    again = epoch(wh.pipeline.dataset(split, "train", seed=5, **options))[0]
    np.testing.assert_array_equal(again, first)  # same seed, same first epoch
    assert not np.array_equal(epoch(wh.pipeline.dataset(split, "train", seed=6, **options))[0], first)


def test_random_crops_are_not_cached(split, tmp_path, tf):
    for cache in (True, tmp_path / "cache"):
        with pytest.raises(ValueError, match="crop='random' with cache") as excinfo:
            wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=8, crop="random", cache=cache)
        assert "first epoch" in str(excinfo.value)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("cache", [False, True, "folder"])
def test_centre_cropped_batches_have_the_documented_shapes_and_are_the_centre_crops(split, cache, tmp_path, tf):
    cache = tmp_path / "cache" if cache == "folder" else cache
    options = dict(image_size_px=SIZE, batch_size=8, shuffle=False, crop="centre", cache=cache)
    ds = wh.pipeline.dataset(split, "validation", **options)
    assert ds.element_spec[0].shape.as_list() == [None, SIZE, SIZE, 3]
    for _ in range(2):  # with a cache, the second epoch reads it
        images, labels = epoch(ds)
        assert images.shape == (split.sizes()["validation"], SIZE, SIZE, 3) and images.dtype == np.uint8
        assert labels.tolist() == split.labels("validation").tolist()
        for image, path in zip(images, split.paths("validation"), strict=True):
            np.testing.assert_array_equal(image, wh.pipeline.load_image(str(path), SIZE, crop="centre").numpy())


def test_the_file_cache_keeps_squashed_and_centre_cropped_images_apart(split, tmp_path, tf):
    folder = tmp_path / "cache"
    for crop in ("squash", "centre"):
        ds = wh.pipeline.dataset(
            split, "validation", image_size_px=SIZE, batch_size=8, shuffle=False, cache=folder, crop=crop
        )
        epoch(ds)
    assert len(list(folder.iterdir())) == 2 * split.sizes()["validation"]
    for crop in ("squash", "centre"):  # built on the complete cache: reads only
        ds = wh.pipeline.dataset(
            split, "validation", image_size_px=SIZE, batch_size=8, shuffle=False, cache=folder, crop=crop
        )
        expected = [wh.pipeline.load_image(str(p), SIZE, crop=crop).numpy() for p in split.paths("validation")]
        np.testing.assert_array_equal(epoch(ds)[0], expected, err_msg=crop)


def test_an_unknown_crop_is_refused_naming_it_and_the_valid_ones(split, tmp_path, tf):
    path = write(tmp_path, "wide.JPEG", jpeg_bytes())
    for call in (
        lambda: wh.pipeline.load_image(path, SIZE, crop="center"),
        lambda: wh.pipeline.dataset(split, "train", image_size_px=SIZE, batch_size=8, crop="center"),
    ):
        with pytest.raises(ValueError, match="crop='center'") as excinfo:
            call()
        assert all(repr(crop) in str(excinfo.value) for crop in ("squash", "centre", "random"))
