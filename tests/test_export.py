"""``wh.export``: a Keras file and TensorFlow Lite at three precisions give the model's
predictions back, within stated tolerances.

The model is the corrected trial's at 32 px on the small stand-in for ResNet50
(``tests/stand_ins.py``), random weights (its top probability is about 0.8 on average, so a
quantisation error shows and top-1 answers are rarely ties). Images come from the
session's small synthetic dataset: the int8 representative images from its training part,
the 50 compared images from its validation and test parts. No test times anything.

Tolerances, on probabilities (each between 0 and 1):

- Keras file reloaded: exactly equal.
- TFLite float32: within 1e-4 (the same arithmetic, other kernels).
- TFLite float16: within 1e-2 (weights rounded to 11 significant bits).
- TFLite int8: on average within 0.02, and the same top-1 breed on at least 85% of the
  images (weights and activations in 8 bits, the activations' ranges measured on 20
  training images). A single probability can move much further: measured once, the
  largest difference was 0.27, the mean 0.004, the same top-1 on 96% of the images.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import woofhelpers as wh

SIZE_PX = 32


@pytest.fixture(scope="module")
def model() -> keras.Model:
    from stand_ins import small_resnet50

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.applications, "ResNet50", small_resnet50)
        return wh.model.build(wh.recipes.variant(wh.recipes.get("corrected"), "tiny", image_size_px=SIZE_PX))


@pytest.fixture(scope="module")
def split(small_dataset):
    return wh.splits.official(small_dataset)


@pytest.fixture(scope="module")
def representative(split):
    """20 training images, as the chapter draws its 100: a tf.data.Dataset of (images, labels)."""
    train = wh.pipeline.dataset(split, "train", image_size_px=SIZE_PX, batch_size=10, shuffle=False)
    return train.take(2)


@pytest.fixture(scope="module")
def test_set(split):
    """The 50 images of the validation and test parts: float32 images and their labels."""
    batches = [
        batch
        for part in ("validation", "test")
        for batch in wh.pipeline.dataset(split, part, image_size_px=SIZE_PX, batch_size=64, shuffle=False)
    ]
    images, labels = zip(*batches, strict=True)
    return np.concatenate(images).astype(np.float32), np.concatenate(labels)


@pytest.fixture(scope="module")
def reference(model, test_set) -> np.ndarray:
    return model.predict(test_set[0], verbose=0)


@pytest.fixture(scope="module")
def tflite_files(model, representative, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("tflite")
    return {
        q: wh.export.to_tflite(model, folder / f"model_{q}.tflite", q, representative) for q in wh.export.QUANTIZATIONS
    }


def test_a_keras_file_reloads_to_the_same_predictions(model, test_set, reference, tmp_path):
    path = wh.export.save_keras(model, tmp_path / "model.keras")
    reloaded = wh.export.load_keras(path)
    assert reloaded.get_layer("preprocess").__class__ is wh.model.ResNet50Preprocess  # the preprocessing travelled
    np.testing.assert_array_equal(reloaded.predict(test_set[0], verbose=0), reference)


def test_keras_files_are_checked(tmp_path, model):
    with pytest.raises(ValueError, match=r"ends in \.keras"):
        wh.export.save_keras(model, tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        wh.export.load_keras(tmp_path / "none.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.keras could not be loaded as a Keras model"):
        wh.export.load_keras(tmp_path / "bad.keras")


@pytest.mark.parametrize(("quantization", "tolerance"), [("float32", 1e-4), ("float16", 1e-2)])
def test_tflite_float_gives_the_models_predictions_within_its_tolerance(
    tflite_files, test_set, reference, quantization, tolerance
):
    got = wh.export.tflite_predict(tflite_files[quantization], test_set[0], batch_size=16)
    assert got.shape == reference.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, reference, atol=tolerance, rtol=0)
    assert (got.argmax(axis=1) == reference.argmax(axis=1)).all()


def test_tflite_int8_gives_the_models_answers_on_most_images(tflite_files, test_set, reference):
    got = wh.export.tflite_predict(tflite_files["int8"], test_set[0])
    assert got.shape == reference.shape and got.dtype == np.float32
    assert np.abs(got - reference).mean() <= 0.02
    assert np.mean(got.argmax(axis=1) == reference.argmax(axis=1)) >= 0.85


def test_quantised_files_are_smaller(tflite_files):
    sizes = {q: path.stat().st_size for q, path in tflite_files.items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_tflite_arguments_are_checked(model, tmp_path):
    with pytest.raises(ValueError, match="representative= training images"):
        wh.export.to_tflite(model, tmp_path / "m.tflite", "int8")
    with pytest.raises(ValueError, match="choose one of float32, float16, int8"):
        wh.export.to_tflite(model, tmp_path / "m.tflite", "int4")
    with pytest.raises(FileNotFoundError, match="no such TFLite file"):
        wh.export.tflite_predict(tmp_path / "none.tflite", np.zeros((1, SIZE_PX, SIZE_PX, 3)))


def test_representative_images_come_one_at_a_time(representative):
    images = list(wh.export.representative_dataset(representative, count=15)())
    assert len(images) == 15 and all(image[0].shape == (1, SIZE_PX, SIZE_PX, 3) for image in images)
    assert images[0][0].dtype == np.float32


def test_compare_gives_a_well_formed_table(model, representative, test_set, tmp_path):
    """Only its form and that its numbers are finite: latencies are not tested."""
    images, labels = test_set
    table = wh.export.compare(model, images, labels, representative, tmp_path, runs=3)
    assert list(table.index) == list(wh.export.FORMATS)
    numbers = table[["size (MiB)", "latency (ms per image)", "accuracy", "max |Δp| vs Keras"]].to_numpy(float)
    assert np.isfinite(numbers).all() and (numbers[:, :2] > 0).all()
    assert ((table["accuracy"] >= 0) & (table["accuracy"] <= 1)).all() and table.loc["keras", "max |Δp| vs Keras"] == 0
    assert "3 single-image runs" in table.attrs["note"]
