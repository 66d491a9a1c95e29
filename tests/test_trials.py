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
from woofhelpers import recipes, results, trials

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
    base = recipes.variant(recipes.get("trial2"), name, fine_tune="corrected", fine_tune_optimizer="adam")
    return recipes.variant(base, name, **changes)


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
        t = recipes.get(name)
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
            # 11 fine-tuning epochs, as the original's logs show (initial_epoch=9, epochs=20)
            assert (t.fine_tune, t.fine_tune_optimizer, t.fine_tune_epochs) == ("original", "rmsprop", 11)
            # the original fine-tuned at a tenth of the head's rate
            assert t.fine_tune_learning_rate == pytest.approx(t.head_learning_rate / 10)
    assert recipes.get("trial1").fine_tune is None
    corrected = recipes.get("corrected")
    assert (corrected.preprocessing, corrected.head, corrected.fine_tune, corrected.split) == (
        "resnet50",
        "corrected",
        "corrected",
        "leakage_free",
    )
    # the original defined an augmentation and never applied it; the corrected recipe applies it
    assert corrected.augment and not any(
        recipes.get(name).augment for name in recipes.TRIAL_NAMES if name != "corrected"
    )


def test_the_ladder_goes_from_trial3_to_the_corrected_recipe_one_named_change_per_rung():
    import dataclasses

    def settings(trial):
        return {k: v for k, v in dataclasses.asdict(trial).items() if k not in ("name", "description")}

    rungs = [recipes.get(name) for name in recipes.LADDER]
    assert recipes.LADDER[-1] == "corrected" and rungs[-1] is recipes.get("corrected")
    assert len(rungs) == len(recipes.RUNGS) == 6
    # rung 0 is trial 3, tested on the honest test set (and in mixed precision, as every rung)
    assert {k for k, v in settings(rungs[0]).items() if settings(recipes.get("trial3"))[k] != v} == {
        "split",
        "mixed_precision",
    }
    for before, after, (_, _, changes) in zip(rungs[:-1], rungs[1:], recipes.RUNGS[1:], strict=True):
        changed = {k for k, v in settings(after).items() if settings(before)[k] != v}
        assert changed == set(changes), (after.name, changed)
    assert all(rung.split == "leakage_free" and rung.mixed_precision for rung in rungs)
    # registered for get and the command line, but not run by the chapters
    assert not set(recipes.LADDER[:-1]) & set(recipes.TRIAL_NAMES)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: recipes.get("trial9"), ["trial9", "trial1", "corrected"]),
        (lambda: tiny_trial(image_size_px=31), ["31", "32"]),
        (lambda: tiny_trial(batch_size=0), ["batch_size=0"]),
        (lambda: tiny_trial(split="random"), ["random", "official", "pooled", "leakage_free"]),
        (lambda: tiny_trial(output_activation="tanh"), ["tanh", "softmax"]),
        (lambda: tiny_trial(fine_tune="all"), ["all", "original", "corrected"]),
        (lambda: trials.run_trial("nope", wh.profiles.load("smoke")), ["nope", "trial5"]),
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
    t1, t4 = recipes.get("trial1"), recipes.get("trial4")
    assert t4.for_profile(full) == t4
    small = t4.for_profile(smoke)
    assert (small.image_size_px, small.batch_size, small.head_epochs, small.fine_tune_epochs) == (64, 16, 2, 2)
    assert (small.head_learning_rate, small.split) == (t4.head_learning_rate, t4.split)
    assert t1.for_profile(smoke).fine_tune_epochs == 0


def test_table_has_one_column_per_trial():
    frame = recipes.table(recipes.get("trial2"), recipes.get("trial3"))
    assert list(frame.columns) == ["trial2", "trial3"]
    assert frame.loc["head_learning_rate", "trial3"] == 0.0001
    assert "name" not in frame.index


# --- the engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tiny_profile, tmp_path_factory):
    """One uninterrupted run of the tiny trial (2 head + 2 fine-tuning epochs)."""
    folder = tmp_path_factory.mktemp("results-uninterrupted")
    return trials.run_trial(tiny_trial(), tiny_profile, results=folder), folder


def test_a_run_saves_its_result_and_weights_and_loads_them_again(finished, tiny_profile):
    result, folder = finished
    trial_dir = folder / "smoke" / "tiny"
    # The engine draws nothing: the learning curves are the command line's (test_trial_cli.py).
    assert {p.name for p in trial_dir.iterdir()} == {results.RESULT_FILE, results.WEIGHTS_FILE}
    saved = json.loads((trial_dir / results.RESULT_FILE).read_text())
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


@pytest.mark.parametrize("verbose", [1, 0])
def test_a_second_run_of_a_trial_waits_for_the_first_and_loads_its_result(
    finished, tiny_profile, tmp_path, capfd, verbose
):
    import shutil
    import threading

    import filelock

    reference, folder = finished
    lock = filelock.FileLock(tmp_path / "smoke" / ".tiny.lock")
    outcome = {}

    def second():  # must load, never train: Interrupt(0) would stop any training
        outcome["result"] = trials.run_trial(
            tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Interrupt(0)], verbose=verbose
        )

    (tmp_path / "smoke").mkdir()
    with lock:  # the first process, still training
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=3)
        assert thread.is_alive(), "the second run did not wait for the first"
        shutil.copytree(folder / "smoke" / "tiny", tmp_path / "smoke" / "tiny")  # the first one's result
    thread.join(timeout=120)
    assert outcome["result"].created == reference.created
    waiting = capfd.readouterr().err
    if verbose:  # the command line: it said that it was waiting, for which trial and on which lock
        assert "waiting" in waiting and "'tiny'" in waiting and str(lock.lock_file) in waiting, waiting
    else:  # a chapter: quiet, so its outputs do not depend on which notebook got there first
        assert "waiting" not in waiting, waiting


def test_an_interrupted_run_resumes_from_the_last_finished_epoch(finished, tiny_profile, tmp_path):
    reference, _ = finished
    # Killed during the head phase (before epoch 2), then during fine-tuning (before epoch 4).
    for stop_at in (1, 3):
        with pytest.raises(KeyboardInterrupt):
            trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Interrupt(stop_at)])
        committed = wh.checkpoint.committed(tmp_path / "smoke" / "tiny" / "checkpoint")
        assert [p.name for p in committed] == [f"epoch-{stop_at:04d}"]  # one unit: the last finished epoch
        assert json.loads((committed[0] / wh.checkpoint.STATE).read_text())["epochs_done"] == stop_at
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
        trial = wh.recipes.variant(wh.recipes.get("trial1"), "mirrored", output_activation="softmax")
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


# --- what the engine promises, checked where a plausible bug would break it --------------


def image_order(dataset, reference: np.ndarray) -> list[int]:
    """Which row of ``reference`` (the images in manifest order) each image of ``dataset`` is."""
    flat = reference.reshape(len(reference), -1)
    order = []
    for images, _ in dataset:
        for image in np.asarray(images).reshape(len(images), -1):
            matches = np.flatnonzero((flat == image).all(axis=1))
            assert len(matches) == 1, "every generated image is distinct"
            order.append(int(matches[0]))
    return order


def feature_order(dataset, reference: np.ndarray) -> list[int]:
    """Which row of ``reference`` (the features in manifest order) each row of ``dataset`` is."""
    flat = reference.reshape(len(reference), -1)
    order = []
    for features, _ in dataset:
        for row in np.asarray(features).reshape(len(features), -1):
            distances = np.abs(flat - row).sum(axis=1)
            order.append(int(distances.argmin()))
            assert np.sort(distances)[1] > 100 * distances.min(), "the features tell the images apart"
    return order


def test_each_epoch_sees_a_new_order_that_depends_only_on_seed_and_epoch(tiny_profile):
    from woofhelpers import model as model_lib

    trial = tiny_trial().for_profile(tiny_profile)
    split, _ = trials.trial_data(trial, tiny_profile)
    in_manifest_order = np.concatenate([x for x, _ in wh.features.fixed(trial, split, "train")])
    train, _ = wh.features.image_datasets(trial, split)
    orders = [image_order(train(epoch), in_manifest_order) for epoch in range(3)]
    assert all(sorted(order) == list(range(len(in_manifest_order))) for order in orders)  # each image once
    assert len({tuple(order) for order in orders}) == 3, "two epochs saw the training images in the same order"
    # Only the seed and the epoch: built again, or for a trial that differs in anything else, the same order.
    again, _ = wh.features.image_datasets(recipes.variant(trial, "other", head_learning_rate=0.5), split)
    assert image_order(again(1), in_manifest_order) == orders[1]
    reseeded, _ = wh.features.image_datasets(recipes.variant(trial, "reseeded", seed=trial.seed + 1), split)
    assert image_order(reseeded(1), in_manifest_order) != orders[1]
    # The head trained on cached features sees its features in the same order as the images.
    probing = wh.features.probe(model_lib.build(trial, None))
    features_in_manifest_order = wh.features.predict_part(probing, split, "train", trial)[0]
    feature_train, _ = wh.features.feature_datasets(probing, trial, split)
    for epoch in range(3):
        assert feature_order(feature_train(epoch), features_in_manifest_order) == orders[epoch], epoch


def test_the_saved_predictions_are_the_models_for_each_test_image_in_manifest_order(finished, tiny_profile):
    from woofhelpers import pipeline

    result, _ = finished
    effective = recipes.Trial(**result.effective)
    split, honest = trials.trial_data(effective, tiny_profile)
    assert result.split["fingerprint"] == split.fingerprint()
    model = trials.load_model(result)
    for which, part_of in (("own", split), ("leakage_free", honest)):
        saved = result.predictions[which]
        np.testing.assert_array_equal(saved["labels"], part_of.labels("test"), err_msg=which)
        images = pipeline.dataset(part_of, "test", image_size_px=effective.image_size_px, batch_size=4, shuffle=False)
        probabilities = model.predict(images.map(lambda x, y: x), verbose=0)
        # The rows differ from one image to the next, so predictions put out of step with
        # their images (or labels out of step with theirs) would not match.
        assert np.abs(probabilities - probabilities[:1]).max() > 1e-3, "every image got the same prediction"
        np.testing.assert_allclose(saved["probabilities"], probabilities, atol=2e-5, err_msg=which)


def test_evaluate_pairs_each_prediction_with_its_own_image_and_label(tiny_profile):
    from woofhelpers import model as model_lib
    from woofhelpers import pipeline

    trial = tiny_trial().for_profile(tiny_profile)
    split, _ = trials.trial_data(trial, tiny_profile)
    keras.utils.set_random_seed(0)
    network = model_lib.build(trial, None)  # untrained: a different prediction for every image
    metrics, saved = wh.features.test(wh.features.probe(network), split, trial)
    images = pipeline.dataset(split, "test", image_size_px=trial.image_size_px, batch_size=3, shuffle=False)
    expected = network.predict(images.map(lambda x, y: x), verbose=0)
    assert np.abs(expected - expected[:1]).max() > 1e-3
    np.testing.assert_allclose(saved["probabilities"], expected, atol=2e-5)
    np.testing.assert_array_equal(saved["labels"], split.labels("test"))
    assert metrics["accuracy"] == np.mean(expected.argmax(axis=1) == split.labels("test"))
    assert metrics["n"] == len(split.parts["test"])


def test_cap_keeps_the_first_files_of_each_class_in_each_part(tiny_profile):
    from collections import Counter

    trial = tiny_trial().for_profile(tiny_profile)
    split, _ = trials.trial_data(trial, tiny_profile)
    assert trials._cap(split, None) is split

    def wnid(path):
        return path.split("/")[-2]

    for per_class in (1, 2, 4):
        capped = trials._cap(split, per_class)
        for part in wh.splits.PARTS:
            available = Counter(wnid(p) for p in split.parts[part])
            assert Counter(wnid(p) for p in capped.parts[part]) == {w: min(n, per_class) for w, n in available.items()}
            # The first files of each class, in the manifest's order.
            firsts = {p for w in available for p in [q for q in split.parts[part] if wnid(q) == w][:per_class]}
            assert list(capped.parts[part]) == [p for p in split.parts[part] if p in firsts], (part, per_class)


def test_max_images_per_class_caps_every_part_of_a_trial(tiny_profile, tmp_path):
    import dataclasses

    capped = dataclasses.replace(tiny_profile, max_images_per_class=2)
    head_only = tiny_trial(
        "capped", fine_tune=None, fine_tune_learning_rate=None, fine_tune_optimizer=None, fine_tune_epochs=0
    )
    seen = []

    class Batches(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    result = trials.run_trial(head_only, capped, results=tmp_path, callbacks=[Batches()], cached_features=False)
    # 3 train, 4 validation and 1 test file per class; at most 2 of each class kept.
    assert result.split["sizes"] == {"train": 20, "validation": 20, "test": 10}
    assert result.test["own"]["n"] == len(result.predictions["own"]["labels"]) == 10
    assert result.test["leakage_free"]["n"] == 10
    assert result.profile["max_images_per_class"] == 2
    assert len(seen) == 2 * 5  # 2 epochs of 20 images in batches of 4


# --- damaged files, interruptions, full disks ----------------------------------------


def test_a_damaged_result_names_the_file_and_retrain_starts_over(finished, tiny_profile, tmp_path):
    import shutil

    _, folder = finished
    trial_dir = tmp_path / "smoke" / "tiny"
    shutil.copytree(folder / "smoke" / "tiny", trial_dir)
    result_file = trial_dir / results.RESULT_FILE
    text = result_file.read_text()
    for damaged in (text[: len(text) // 2], "\x00garbage", "{}", "[1, 2]"):
        result_file.write_text(damaged)
        for _ in range(2):  # every rerun says the same, until told to retrain
            with pytest.raises(results.DamagedFileError) as error:
                trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path)
            assert str(result_file) in str(error.value)
            assert "retrain=True" in str(error.value) and "--retrain" in str(error.value)
    retrained = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, retrain=True)
    assert results.TrialResult.load(trial_dir).created == retrained.created


def test_a_result_with_other_settings_names_both_ways_to_retrain(finished, tiny_profile):
    _, folder = finished
    with pytest.raises(ValueError) as error:
        trials.run_trial(tiny_trial(head_learning_rate=0.5), tiny_profile, results=folder)
    assert "retrain=True" in str(error.value) and "--retrain" in str(error.value)


@pytest.fixture(scope="module")
def interrupted(tiny_profile, tmp_path_factory):
    """A tiny trial stopped before its second epoch: a checkpoint after epoch 1."""
    folder = tmp_path_factory.mktemp("results-interrupted")
    with pytest.raises(KeyboardInterrupt):
        trials.run_trial(tiny_trial(), tiny_profile, results=folder, callbacks=[Interrupt(1)])
    return folder


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "which, damage",
    [
        (wh.checkpoint.STATE, _truncate),
        (wh.checkpoint.STATE, lambda path: path.write_text('{"phase": "head"}')),
        (wh.checkpoint.STATE, lambda path: path.unlink()),
        (wh.checkpoint.WEIGHTS, lambda path: path.write_bytes(b"garbage" * 100)),
        (wh.checkpoint.WEIGHTS, _truncate),
        (wh.checkpoint.WEIGHTS, lambda path: path.unlink()),
    ],
    ids=[
        "state-truncated",
        "state-incomplete",
        "state-missing",
        "weights-garbage",
        "weights-truncated",
        "weights-missing",
    ],
)
def test_a_damaged_checkpoint_names_the_file_and_retrain_starts_over(
    interrupted, tiny_profile, tmp_path, which, damage
):
    import shutil

    shutil.copytree(interrupted / "smoke", tmp_path / "smoke")
    damaged = wh.checkpoint.committed(tmp_path / "smoke" / "tiny" / "checkpoint")[-1] / which
    damage(damaged)
    for _ in range(2):
        with pytest.raises(results.DamagedFileError) as error:
            trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Interrupt(0)])
        assert str(damaged) in str(error.value) and "--retrain" in str(error.value)
    result = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, retrain=True)
    assert result.history["head"]["epoch"] == [1, 2]


def test_a_run_killed_between_saving_the_weights_and_the_state_resumes_as_if_never_stopped(
    finished, tiny_profile, tmp_path
):
    # A real kill (os._exit, no clean-up) in another process, the moment it begins to write
    # the state of epoch 2: the weights of epoch 2 are written by then, the state is not.
    reference, _ = finished
    script = textwrap.dedent(f"""
        import os, pathlib, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        import keras, stand_ins
        keras.applications.ResNet50 = stand_ins.small_resnet50
        import woofhelpers as wh
        from test_trials import tiny_trial
        states = []
        write_text = pathlib.Path.write_text
        def dying_write_text(self, *args, **kwargs):
            if self.name.startswith("state.json"):
                states.append(self)
                if len(states) == 2:
                    os._exit(137)
            return write_text(self, *args, **kwargs)
        pathlib.Path.write_text = dying_write_text
        profile = wh.profiles.load("smoke", data_dir={str(tiny_profile.data_dir)!r}, synthetic_train_per_class=3,
            synthetic_val_per_class=5, synthetic_shortest_side_px=40, image_size_px=32, batch_size=4, epochs=2,
            max_images_per_class=None)
        wh.trials.run_trial(tiny_trial(), profile, results={str(tmp_path)!r})
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOF_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )
    assert done.returncode == 137, done.stderr[-3000:]
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    resumed = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Record()])
    assert seen == [1, 2, 3]  # epoch 2 was never committed, so it is trained once, from epoch 1's weights
    for phase in ("head", "fine_tune"):
        for key, values in reference.history[phase].items():
            np.testing.assert_allclose(resumed.history[phase][key], values, rtol=1e-4, err_msg=f"{phase} {key}")
    assert not (tmp_path / "smoke" / "tiny" / wh.checkpoint.FOLDER).exists()


def test_a_full_disk_keeps_the_last_good_checkpoint_and_the_rerun_resumes(
    finished, tiny_profile, tmp_path, monkeypatch
):
    import errno

    import h5py

    reference, _ = finished
    save_weights = keras.Model.save_weights
    calls = []

    left_open = []

    def full_disk(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) == 2:  # epoch 2's checkpoint: half written, left open as Keras leaves it, and the disk is full
            left_open.append(h5py.File(filepath, "w"))
            left_open[-1].create_dataset("half", data=np.zeros(1000))
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return save_weights(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    with pytest.raises(OSError) as error:
        trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path)
    assert error.value.errno == errno.ENOSPC
    message = str(error.value)
    assert "epoch 2" in message and "after epoch 1 is kept" in message and "run the trial again" in message
    checkpoint = tmp_path / "smoke" / "tiny" / wh.checkpoint.FOLDER
    assert sorted(p.name for p in checkpoint.iterdir()) == ["epoch-0001"]  # no half-written folder left
    # The file left open is closed: h5py would write it again at exit, fail, and crash the interpreter.
    assert not left_open[0]
    assert not [f for f in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) if str(tmp_path) in os.fsdecode(f.name)]
    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    resumed = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Record()])
    assert seen == [1, 2, 3]
    np.testing.assert_allclose(resumed.history["fine_tune"]["loss"], reference.history["fine_tune"]["loss"], rtol=1e-4)


def test_a_full_disk_while_saving_the_result_keeps_the_checkpoint(interrupted, tiny_profile, tmp_path, monkeypatch):
    import errno
    import shutil

    shutil.copytree(interrupted / "smoke", tmp_path / "smoke")
    write_text_atomically = wh.io.write_text_atomically

    def full_disk(path, text):
        if Path(path).name == results.RESULT_FILE:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_text_atomically(path, text)

    monkeypatch.setattr(wh.io, "write_text_atomically", full_disk)
    with pytest.raises(OSError, match="checkpoint .*is kept") as error:
        trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path)
    assert error.value.errno == errno.ENOSPC
    monkeypatch.setattr(wh.io, "write_text_atomically", write_text_atomically)
    result = trials.run_trial(tiny_trial(), tiny_profile, results=tmp_path, callbacks=[Interrupt(0)])  # no training
    assert result.history["fine_tune"]["epoch"] == [3, 4]


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_a_results_folder_that_cannot_be_one_is_refused_with_the_fix(kind, tiny_profile, tmp_path, monkeypatch):
    target = tmp_path / "results"
    if kind == "file":
        target.write_text("not a folder")
        error_type = ValueError
    else:
        # As root, permissions do not stop a write: make creating the folder fail as it would.
        def refuse(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "mkdir", refuse)
        error_type = OSError
    with pytest.raises(error_type) as error:
        trials.run_trial(tiny_trial(), tiny_profile, results=target)
    assert (
        str(target) in str(error.value) and "--results" in str(error.value) and "WOOF_RESULTS_DIR" in str(error.value)
    )


def test_a_split_too_small_for_a_generated_dataset_says_which_setting_to_raise(tiny_profile):
    with pytest.raises(ValueError) as error:  # 3 train images per class: too few to hold out 10% of each
        trials.trial_data(recipes.get("corrected"), tiny_profile)
    message = str(error.value)
    assert "'leakage_free'" in message and "WOOF_SYNTHETIC_TRAIN_PER_CLASS" in message


def test_a_data_folder_that_cannot_be_written_is_named_with_the_fix(tmp_path, monkeypatch):
    profile = wh.profiles.load("smoke", data_dir=tmp_path / "data", synthetic_train_per_class=3)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OSError) as error:
        trials.trial_data(tiny_trial(), profile)
    assert str(tmp_path / "data") in str(error.value) and "WOOF_DATA_DIR" in str(error.value)


def test_load_model_names_a_damaged_weights_file(finished, tmp_path):
    import shutil

    result, folder = finished
    copy = shutil.copytree(folder / "smoke" / "tiny", tmp_path / "tiny")
    (copy / results.WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(results.DamagedFileError, match="model.weights.h5 is damaged"):
        trials.load_model(results.TrialResult.load(copy))


def test_imagenet_weights_that_cannot_be_downloaded_say_what_to_do(tiny_profile, tmp_path, monkeypatch):
    import dataclasses

    def offline(*args, **kwargs):  # what keras.utils.get_file raises without a network
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -3] Temporary failure in name"
            " resolution"
        )

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(ConnectionError) as error:
        trials.run_trial(tiny_trial(), dataclasses.replace(tiny_profile, weights="imagenet"), results=tmp_path)
    message = str(error.value)
    assert "name resolution" in message and "WOOF_WEIGHTS" in message
    assert wh.profiles.KERAS_RESNET50_FILES[False] in message
