"""The trial registry, the engine (results, resume, cached features) and its errors.

Training runs use a tiny generated dataset (3 train / 5 val images per class, 32 px
images, batch 4) and a small stand-in for ResNet50 (``tests/stand_ins.py``): what is
tested here is the engine, which is the same whatever the base network. The chapters run
the real, untrained ResNet50 through this engine under nbval.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from stand_ins import install as install_stand_in  # tests/ is on sys.path under pytest

import woofhelpers as wh
from woofhelpers import trials

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def small_base():
    """Every test of this module builds the stand-in instead of ResNet50."""
    with pytest.MonkeyPatch.context() as patch:
        install_stand_in(patch)
        yield


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    """A smoke profile over a tiny generated dataset: 32 px, batch 4, 2 epochs per phase."""
    return wh.profiles.load(
        "smoke",
        data_dir=tmp_path_factory.mktemp("trial-data"),
        synthetic_train_per_class=3,
        synthetic_val_per_class=5,
        synthetic_shortest_side_px=40,
        image_size_px=32,
        batch_size=4,
        epochs=2,
        max_images_per_class=None,
    )


def tiny_trial(name="tiny", **changes):
    base = trials.variant(trials.get("trial2"), name, fine_tune="corrected", fine_tune_optimizer="adam")
    return trials.variant(base, name, **changes)


class Interrupt(keras.callbacks.Callback):
    """Raise when epoch ``at`` (0-based) begins, as if Colab disconnected."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt(f"interrupted before epoch {epoch}")


# --- registry and validation -----------------------------------------------------------


def test_registry_holds_the_original_trials_as_they_ran():
    table = {
        "trial1": (160, 32, "relu", 0.01, None, "official"),
        "trial2": (160, 32, "softmax", 0.01, 0.001, "official"),
        "trial3": (160, 32, "softmax", 0.0001, 0.00001, "official"),
        "trial4": (200, 32, "softmax", 0.0001, 0.00001, "pooled"),
        "trial5": (200, 10, "softmax", 0.0001, 0.00001, "pooled"),
    }
    for name, expected in table.items():
        t = trials.get(name)
        assert (
            t.image_size_px,
            t.batch_size,
            t.output_activation,
            t.head_learning_rate,
            t.fine_tune_learning_rate,
            t.split,
        ) == expected, name
        assert (t.head, t.preprocessing, t.augment, t.head_optimizer, t.head_epochs) == (
            "original",
            "none",
            False,
            "adam",
            10,
        )
        if t.fine_tune:
            assert (t.fine_tune, t.fine_tune_optimizer, t.fine_tune_epochs) == ("original", "rmsprop", 10)
            # the original fine-tuned at a tenth of the head's rate
            assert t.fine_tune_learning_rate == pytest.approx(t.head_learning_rate / 10)
    assert trials.get("trial1").fine_tune is None
    corrected = trials.get("corrected")
    assert (corrected.preprocessing, corrected.head, corrected.fine_tune, corrected.split) == (
        "resnet50",
        "corrected",
        "corrected",
        "leakage_free",
    )


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: trials.get("trial9"), ["trial9", "trial1", "corrected"]),
        (lambda: tiny_trial(image_size_px=31), ["31", "32"]),
        (lambda: tiny_trial(batch_size=0), ["batch_size=0"]),
        (lambda: tiny_trial(split="random"), ["random", "official", "pooled", "leakage_free"]),
        (lambda: tiny_trial(output_activation="tanh"), ["tanh", "softmax"]),
        (lambda: tiny_trial(fine_tune="all"), ["all", "original", "corrected"]),
        (lambda: trials.run_trial("nope"), ["nope", "trial5"]),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_valid_values(call, words):
    with pytest.raises(ValueError) as error:
        call()
    for word in words:
        assert word in str(error.value)


def test_the_profile_overrides_size_batch_and_epochs_only_where_it_sets_them(tmp_path):
    smoke = wh.profiles.load("smoke", data_dir=tmp_path)
    full = wh.profiles.load("full", data_dir=tmp_path)
    t1, t4 = trials.get("trial1"), trials.get("trial4")
    assert t4.for_profile(full) == t4
    small = t4.for_profile(smoke)
    assert (small.image_size_px, small.batch_size, small.head_epochs, small.fine_tune_epochs) == (64, 16, 2, 2)
    assert (small.head_learning_rate, small.split) == (t4.head_learning_rate, t4.split)
    assert t1.for_profile(smoke).fine_tune_epochs == 0


def test_table_has_one_column_per_trial():
    frame = trials.table(trials.get("trial2"), trials.get("trial3"))
    assert list(frame.columns) == ["trial2", "trial3"]
    assert frame.loc["head_learning_rate", "trial3"] == 0.0001
    assert "name" not in frame.index


# --- the engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tiny_profile, tmp_path_factory):
    """One uninterrupted run of the tiny trial (2 head + 2 fine-tuning epochs)."""
    folder = tmp_path_factory.mktemp("results-uninterrupted")
    return trials.run_trial(tiny_trial(), tiny_profile, results=folder), folder


def test_a_run_saves_its_result_with_plots_and_loads_it_again(finished, tiny_profile):
    result, folder = finished
    trial_dir = folder / "smoke" / "tiny"
    assert {p.name for p in trial_dir.iterdir()} == {trials.RESULT_FILE, trials.CURVES_FILE, trials.WEIGHTS_FILE}
    saved = json.loads((trial_dir / trials.RESULT_FILE).read_text())
    assert saved["history"]["head"]["epoch"] == [1, 2]
    assert saved["history"]["fine_tune"]["epoch"] == [3, 4]
    assert set(saved["history"]["fine_tune"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert saved["effective"]["image_size_px"] == 32 and saved["trial"]["image_size_px"] == 160
    assert saved["profile"]["name"] == "smoke"
    assert len(saved["split"]["fingerprint"]) == 16
    own = saved["test"]["own"]
    assert own["n"] == len(saved["predictions"]["own"]["labels"]) == 10  # 20% of 50 val images
    probabilities = np.array(saved["predictions"]["own"]["probabilities"])
    assert probabilities.shape == (10, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert own["accuracy"] == np.mean(probabilities.argmax(1) == saved["predictions"]["own"]["labels"])
    assert saved["test"]["leakage_free"]["n"] == 10  # official: its test files are ImageNet-val files
    assert saved["wall_s"]["head"] > 0 and saved["wall_s"]["fine_tune"] > 0
    # Running it again loads the saved result: no training, so callbacks never fire.
    again = trials.run_trial(tiny_trial(), tiny_profile, results=folder, callbacks=[Interrupt(0)])
    assert again.history == result.history and again.created == result.created


def test_a_saved_result_made_with_other_settings_is_not_returned(finished, tiny_profile):
    _, folder = finished
    with pytest.raises(ValueError, match="retrain=True"):
        trials.run_trial(tiny_trial(head_learning_rate=0.5), tiny_profile, results=folder)


def test_a_second_run_of_a_trial_waits_for_the_first_and_loads_its_result(finished, tiny_profile, tmp_path):
    import shutil
    import threading

    import filelock

    reference, folder = finished
    lock = filelock.FileLock(tmp_path / "smoke" / ".tiny.lock")
    outcome = {}

    def second():  # must load, never train: Interrupt(0) would stop any training
        outcome["result"] = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Interrupt(0)])

    (tmp_path / "smoke").mkdir()
    with lock:  # the first process, still training
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=3)
        assert thread.is_alive(), "the second run did not wait for the first"
        shutil.copytree(folder / "smoke" / "tiny", tmp_path / "smoke" / "tiny")  # the first one's result
    thread.join(timeout=120)
    assert outcome["result"].created == reference.created


def test_an_interrupted_run_resumes_from_the_last_finished_epoch(finished, tiny_profile, tmp_path):
    reference, _ = finished
    # Killed during the head phase (before epoch 2), then during fine-tuning (before epoch 4).
    for stop_at in (1, 3):
        with pytest.raises(KeyboardInterrupt):
            trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Interrupt(stop_at)])
        state = json.loads((tmp_path / "smoke" / "tiny" / "checkpoint" / "state.json").read_text())
        assert state["epochs_done"] == stop_at
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    resumed = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Record()])
    assert seen == [3]  # only the unfinished epoch was trained
    assert resumed.history["head"]["epoch"] == [1, 2] and resumed.history["fine_tune"]["epoch"] == [3, 4]
    # Same weights, optimizer state and batches as the uninterrupted run: same history.
    for phase in ("head", "fine_tune"):
        for key, values in reference.history[phase].items():
            np.testing.assert_allclose(resumed.history[phase][key], values, rtol=1e-4, err_msg=f"{phase} {key}")
    assert not (tmp_path / "smoke" / "tiny" / "checkpoint").exists()


def test_the_head_trained_on_cached_features_equals_the_head_trained_through_the_base(tiny_profile, tmp_path):
    head_only = tiny_trial(
        "head-only",
        fine_tune=None,
        fine_tune_learning_rate=None,
        fine_tune_optimizer=None,
        fine_tune_epochs=0,
        head="original",
    )
    cached = trials.run_trial(head_only, tiny_profile, results=tmp_path / "cached", cached_features=True)
    through = trials.run_trial(head_only, tiny_profile, results=tmp_path / "through", cached_features=False)
    assert cached.cached_features and not through.cached_features
    a, b = trials.load_model(cached), trials.load_model(through)
    for name in ("head_dense", "predictions"):
        for wa, wb in zip(a.get_layer(name).get_weights(), b.get_layer(name).get_weights(), strict=True):
            # The base's features come out of batches of other sizes, so float32 sums differ in
            # their last bits; after training, every weight agrees to 0.1% of the largest one.
            np.testing.assert_allclose(wa, wb, atol=1e-3 * np.abs(wb).max(), err_msg=name)
    np.testing.assert_allclose(cached.history["head"]["loss"], through.history["head"]["loss"], rtol=1e-4)


def test_a_short_trial_runs_under_a_mirrored_strategy_on_two_logical_cpus(tmp_path):
    # Logical devices must be configured before TensorFlow starts: a fresh process.
    script = textwrap.dedent(f"""
        import sys
        import tensorflow as tf
        sys.path.insert(0, {str(REPO / "tests")!r})
        import keras, stand_ins
        keras.applications.ResNet50 = stand_ins.small_resnet50
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import woofhelpers as wh
        profile = wh.profiles.load("smoke", data_dir={str(tmp_path / "data")!r}, synthetic_train_per_class=3,
            synthetic_val_per_class=5, synthetic_shortest_side_px=40, image_size_px=32, batch_size=4, epochs=1,
            max_images_per_class=None)
        trial = wh.trials.variant(wh.trials.get("trial1"), "mirrored", output_activation="softmax")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        result = wh.trials.run_trial(trial, profile, strategy=strategy, results={str(tmp_path / "results")!r})
        print("REPLICAS", result.hardware["replicas"], result.hardware["strategy"], len(result.history["head"]["loss"]))
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REPLICAS 2 MirroredStrategy 1" in done.stdout
