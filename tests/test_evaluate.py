"""wh.evaluate: predictions, bootstrap interval, confusion matrix, worst errors, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import woofhelpers as wh
from woofhelpers import evaluate, results, trials


def make_predictions(true, predicted, n_classes=10, confidence=0.9):
    """Predictions whose scores put ``confidence`` on ``predicted`` and share the rest."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    scores = np.full((len(true), n_classes), (1 - confidence) / (n_classes - 1), dtype=np.float32)
    scores[np.arange(len(true)), predicted] = confidence
    names = wh.labels.CLASS_NAMES[:n_classes]
    return evaluate.Predictions(tuple(f"f{i}.JPEG" for i in range(len(true))), true, scores, names)


# --- accuracy and its interval ---------------------------------------------------------------


def test_accuracy_ci_of_a_perfect_model_is_a_point():
    assert evaluate.accuracy_ci(np.ones(50, bool)) == (1.0, 1.0, 1.0)


def test_accuracy_ci_brackets_the_accuracy_with_the_binomial_width():
    correct = np.arange(400) % 2 == 0  # 50% of 400: standard error 2.5 points
    accuracy, low, high = evaluate.accuracy_ci(correct)
    assert accuracy == 0.5
    assert low < 0.5 < high
    assert 0.08 < high - low < 0.12  # about 2 x 1.96 x 2.5%


def test_accuracy_ci_is_reproducible_for_a_seed_and_changes_with_it():
    correct = np.random.default_rng(1).random(97) < 0.7
    assert evaluate.accuracy_ci(correct, seed=3) == evaluate.accuracy_ci(correct, seed=3)
    # with few resamples the interval's ends depend visibly on the draws
    assert evaluate.accuracy_ci(correct, resamples=30, seed=3) != evaluate.accuracy_ci(correct, resamples=30, seed=4)


def test_a_smaller_test_set_gives_a_wider_interval():
    _, low_small, high_small = evaluate.accuracy_ci(np.arange(96) % 4 != 0)
    _, low_big, high_big = evaluate.accuracy_ci(np.arange(960) % 4 != 0)
    assert high_small - low_small > 2 * (high_big - low_big)


@pytest.mark.parametrize("bad", [np.array([], bool), np.ones((2, 2), bool)])
def test_accuracy_ci_refuses_empty_or_2d_input(bad):
    with pytest.raises(ValueError, match="non-empty 1-D"):
        evaluate.accuracy_ci(bad)


def test_summary_reports_percentages_and_unreadable_count():
    p = make_predictions([0, 1, 2, 3], [0, 1, 2, 0])
    row = evaluate.summary(p)
    assert row["images"] == 4 and row["unreadable"] == 0 and row["accuracy %"] == 75.0
    assert row["95% CI low"] <= 75.0 <= row["95% CI high"]


def test_accuracy_summary_keeps_n_and_the_interval_beside_the_accuracy():
    row = evaluate.accuracy_summary(np.arange(96) < 70)  # the original's trial 2: 70 of 96
    assert list(row) == ["images", "accuracy %", "95% CI low", "95% CI high"]
    assert row["images"] == 96 and row["accuracy %"] == 72.92
    assert 14 < row["95% CI high"] - row["95% CI low"] < 22  # about +-9 points on 96 images
    few = [evaluate.accuracy_summary(np.arange(96) < 70, resamples=30, seed=s) for s in (3, 4)]
    assert few[0] != few[1]  # bootstrap options are passed on to accuracy_ci


# --- confusion, per class, worst errors --------------------------------------------------------


def test_confusion_matrix_counts_true_rows_and_predicted_columns_with_breed_names():
    p = make_predictions([0, 0, 1, 4, 5], [0, 1, 1, 5, 4])
    frame = evaluate.confusion(p)
    names = wh.labels.CLASS_NAMES
    assert list(frame.index) == list(names) and list(frame.columns) == list(names)
    assert frame.loc[names[0], names[0]] == 1 and frame.loc[names[0], names[1]] == 1
    assert frame.loc["Border terrier", "Australian terrier"] == 1
    assert frame.loc["Australian terrier", "Border terrier"] == 1
    assert frame.to_numpy().sum() == 5


def test_per_class_precision_and_recall():
    p = make_predictions([0, 0, 1, 1], [0, 1, 1, 1])
    table = evaluate.per_class(p)
    shih_tzu, ridgeback = wh.labels.CLASS_NAMES[:2]
    assert table.loc[shih_tzu, "recall"] == 0.5 and table.loc[shih_tzu, "precision"] == 1.0
    assert table.loc[ridgeback, "recall"] == 1.0 and table.loc[ridgeback, "precision"] == pytest.approx(0.667)
    assert table.loc["dingo", "images"] == 0 and table.loc["dingo", "precision"] == 0


def test_worst_errors_are_wrong_predictions_sorted_by_loss():
    p = make_predictions([0, 1, 2, 3], [0, 2, 3, 3])
    p.scores[1] = [0.05] * 10
    p.scores[1, 2], p.scores[1, 1] = 0.5, 0.1  # true class at 0.1: loss 2.3
    p.scores[2, 2] = 0.01  # true class at 0.01: loss 4.6, the worst
    table = evaluate.worst_errors(p, k=5)
    assert list(table["path"]) == ["f2.JPEG", "f1.JPEG"]
    assert list(table["true"]) == ["beagle", "Rhodesian ridgeback"]
    assert list(table["predicted"]) == ["English foxhound", "beagle"]
    assert table["loss"].iloc[0] > table["loss"].iloc[1]


def test_losses_match_keras_and_treat_a_dead_relu_row_as_uniform():
    import keras

    p = make_predictions([0, 3], [0, 1], confidence=0.7)
    expected = keras.losses.sparse_categorical_crossentropy(p.true, p.scores).numpy()
    np.testing.assert_allclose(evaluate.losses(p), expected, rtol=1e-5)
    p.scores[1] = 0  # a ReLU output layer that outputs nothing
    assert evaluate.losses(p)[1] == pytest.approx(np.log(10))
    assert np.isfinite(evaluate.losses(p)).all()


def test_predictions_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="scores of shape"):
        evaluate.Predictions(("a", "b"), np.array([0, 1]), np.zeros((3, 10), np.float32))
    with pytest.raises(ValueError, match="10 class names"):
        evaluate.Predictions(("a",), np.array([0]), np.zeros((1, 4), np.float32))


def test_save_and_load_round_trip(tmp_path):
    p = make_predictions([0, 1], [1, 1])
    p = evaluate.Predictions(p.paths, p.true, p.scores, p.class_names, {"bad.JPEG": "zero-byte file"})
    back = evaluate.load(evaluate.save(p, tmp_path / "sub" / "test.npz"))
    assert back.paths == p.paths and back.unreadable == p.unreadable and back.class_names == p.class_names
    np.testing.assert_array_equal(back.scores, p.scores)
    np.testing.assert_array_equal(back.true, p.true)
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["test.npz"]
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        evaluate.load(tmp_path / "missing.npz")


# --- predict on a real pipeline ------------------------------------------------------------


def colour_model(n_outputs=10):
    """A fixed, hand-built model: mean colour of the image -> Dense(n_outputs, softmax)."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(n_outputs, activation="softmax", kernel_initializer="glorot_uniform")(x)
    keras.utils.set_random_seed(0)
    return keras.Model(inputs, outputs)


def test_predict_returns_one_row_per_file_in_split_order(small_dataset, tf):
    split = wh.splits.official(small_dataset)
    model = colour_model()
    p = evaluate.predict(model, split, "validation", image_size_px=32, batch_size=4)
    assert p.paths == split.parts["validation"]
    np.testing.assert_array_equal(p.true, split.labels("validation"))
    assert p.scores.shape == (len(split.parts["validation"]), 10)
    np.testing.assert_allclose(p.scores.sum(axis=1), 1, rtol=1e-5)
    assert p.unreadable == {}
    # the same numbers as calling the model by hand on the same pixels
    first = wh.pipeline.load_image(str(split.paths("validation")[0]), 32)[None]
    np.testing.assert_allclose(p.scores[0], model(first).numpy()[0], rtol=1e-4, atol=1e-6)


def test_predict_on_given_paths(small_dataset, tf):
    split = wh.splits.official(small_dataset)
    chosen = wh.splits.leakage_free_test(split)
    p = evaluate.predict(colour_model(), split, "test", image_size_px=32, paths=chosen, verbose=False)
    assert p.paths == chosen and len(p) == len(chosen) > 0


def test_a_model_with_the_wrong_number_of_outputs_is_refused(small_dataset, tf):
    split = wh.splits.official(small_dataset)
    with pytest.raises(ValueError, match=r"outputs 5 scores per image, but the split has 10 classes"):
        evaluate.predict(colour_model(5), split, "test", image_size_px=32)


def test_unreadable_files_are_reported_not_skipped_silently(small_dataset, copy_dataset, tf, capsys):
    root = copy_dataset(small_dataset)
    split = wh.splits.official(root)
    broken = split.parts["test"][0]
    (root / broken).write_bytes(b"")
    p = evaluate.predict(colour_model(), split, "test", image_size_px=32)
    assert p.unreadable == {broken: "zero-byte file"}
    assert broken not in p.paths and len(p) == len(split.parts["test"]) - 1
    assert f"excluded {broken}: zero-byte file" in capsys.readouterr().out
    assert evaluate.summary(p)["unreadable"] == 1


def test_an_unknown_part_is_refused(small_dataset, tf):
    with pytest.raises(ValueError, match="unknown part 'testing'"):
        evaluate.predict(colour_model(), wh.splits.official(small_dataset), "testing", image_size_px=32)


# --- figures ------------------------------------------------------------------------------


def test_accuracy_bars_draw_each_row_with_its_interval_and_its_n():
    import pandas as pd

    table = pd.DataFrame(
        {
            "trial": ["1", "1", "2", "2", "3"],
            "test set": ["reported", "own", "own", "leakage-free", "leakage-free"],
            "images": [96, 10, 20, 0, 30],
            "accuracy %": [50.0, 40.0, 80.0, None, 70.0],
            "95% CI low": [45.0, 35.0, 75.0, None, 60.0],
            "95% CI high": [55.0, 45.0, 85.0, None, 78.0],
        }
    )
    ax = wh.plots.accuracy_bars(table).axes[0]
    bars = {round(p.get_height(), 1): p for p in ax.patches}
    assert sorted(bars) == [40.0, 50.0, 70.0, 80.0]  # the row with no value is left out
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert sorted(t.get_text() for t in ax.texts) == ["n=10", "n=20", "n=30", "n=96"]
    # every bar carries its own interval as an error bar
    from matplotlib.container import BarContainer

    errorbars = [c.errorbar for c in ax.containers if isinstance(c, BarContainer)]
    intervals = sorted(tuple(segment[:, 1].round(1)) for e in errorbars for segment in e.lines[2][0].get_segments())
    assert intervals == [(35.0, 45.0), (45.0, 55.0), (60.0, 78.0), (75.0, 85.0)]
    # a trial's bars sit side by side around its tick; one colour per test set
    assert bars[50.0].get_x() < 0 < bars[40.0].get_x() + bars[40.0].get_width()
    assert bars[80.0].get_facecolor() != bars[70.0].get_facecolor()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["reported", "own", "leakage-free"]


def test_accuracy_bars_refuse_a_table_without_the_number_of_images():
    import pandas as pd

    table = pd.DataFrame({"trial": ["1"], "test set": ["own"], "accuracy %": [50.0], "95% CI low": [45.0]})
    with pytest.raises(ValueError, match="images"):
        wh.plots.accuracy_bars(table.assign(**{"95% CI high": [55.0]}))


def test_confusion_matrix_figure_labels_axes_with_breeds():
    p = make_predictions([0, 1, 1], [0, 1, 0])
    fig = wh.plots.confusion_matrix(evaluate.confusion(p))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(wh.labels.CLASS_NAMES)
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "1"]


# --- trial results --------------------------------------------------------------------------


@pytest.fixture
def fake_trial_result(tmp_path, clean_woof_env):
    """A TrialResult as run_trial saves it, with made-up probabilities, on a small dataset."""
    profile = wh.profiles.load(
        "smoke", data_dir=tmp_path, synthetic_train_per_class=10, synthetic_val_per_class=5,
        synthetic_shortest_side_px=40, max_images_per_class=None,
    )  # fmt: skip
    trial = wh.recipes.get("trial1").for_profile(profile)
    own, honest = wh.trials.trial_data(trial, profile)

    def saved(split):
        true = split.labels("test")
        scores = np.full((len(true), 10), 0.05, np.float32)
        scores[np.arange(len(true)), true] = 0.55
        scores[::2] = np.roll(scores[::2], 1, axis=1)  # every other one wrong
        return {"files": list(split.parts["test"]), "labels": true.tolist(), "probabilities": scores.tolist()}

    result = wh.results.TrialResult(
        trial=trial.settings(), effective=trial.settings(), profile={}, split={}, history={},
        test={}, wall_s={}, predictions={"own": saved(own), "leakage_free": saved(honest)},
        hardware={}, cached_features=True, created="",
    )  # fmt: skip
    return result, profile, own, honest


def test_from_trial_gives_back_the_files_of_each_test_set(fake_trial_result):
    result, profile, own, honest = fake_trial_result
    for which, split in (("own", own), ("leakage_free", honest)):
        p = results.from_trial(result, which)
        assert p.paths == split.parts["test"]
        np.testing.assert_array_equal(p.true, split.labels("test"))
        assert p.correct.mean() == pytest.approx(0.5, abs=0.1)
    with pytest.raises(ValueError, match="unknown test set"):
        results.from_trial(result, "train")


def test_from_trial_refuses_labels_that_do_not_match_their_files(fake_trial_result):
    result, _, _, _ = fake_trial_result
    result.predictions["own"]["labels"] = list(reversed(result.predictions["own"]["labels"]))
    with pytest.raises(ValueError, match="do not match the classes of their files"):
        results.from_trial(result, "own")


def test_from_trial_of_a_result_saved_without_its_files_says_to_retrain(fake_trial_result):
    result, _, _, _ = fake_trial_result
    del result.predictions["own"]["files"]
    with pytest.raises(results.DamagedFileError, match="retrain=True"):
        results.from_trial(result, "own")


def test_trial_table_gives_every_accuracy_its_n_and_interval(fake_trial_result):
    result, _, own, honest = fake_trial_result
    table = results.trial_table([result])
    assert list(table.columns) == ["trial", "test set", "images", "accuracy %", "95% CI low", "95% CI high"]
    assert not table.isna().any().any()
    reported, tested = table.iloc[0], table.iloc[1]
    # The original's figure, as the count it was: 14 of 96 images.
    assert (reported["test set"], reported["images"], reported["accuracy %"]) == (results.REPORTED_TEST_SET, 96, 14.58)
    assert reported["95% CI low"] < 14.58 < reported["95% CI high"]
    # On v1, trial 1's own test is ImageNet-validation files only: the two test sets are one.
    assert own.parts["test"] == honest.parts["test"]
    assert len(table) == 2 and tested["test set"] == results.SAME_TEST_SET
    assert (tested["images"], tested["accuracy %"]) == (len(own.parts["test"]), 50.0)
    assert tested["95% CI low"] < 50.0 < tested["95% CI high"]


def test_trial_table_keeps_two_rows_when_the_test_sets_differ(fake_trial_result):
    result, _, own, _ = fake_trial_result
    free = result.predictions["leakage_free"]
    free["labels"], free["probabilities"] = free["labels"][:4], np.eye(10)[free["labels"][:4]].tolist()
    table = results.trial_table([result]).set_index("test set")
    assert list(table.index) == [results.REPORTED_TEST_SET, *results.TEST_SETS.values()]
    assert table.loc[results.TEST_SETS["own"], "images"] == len(own.parts["test"])
    assert (table.loc[results.TEST_SETS["leakage_free"], ["images", "accuracy %"]] == [4, 100.0]).all()


def test_trial_table_shows_no_original_figure_for_a_trial_it_never_ran_and_no_empty_test_set(fake_trial_result):
    result, _, _, _ = fake_trial_result
    result.trial = {**result.trial, "name": "trial4_honest"}
    result.predictions["leakage_free"] = {"labels": [], "probabilities": []}
    table = results.trial_table([result])
    assert list(table["test set"]) == [results.TEST_SETS["own"]]  # no write-up row, no 0-image row
    assert not table.isna().any().any()


def test_trial_result_summary_puts_n_and_the_interval_beside_each_accuracy(fake_trial_result):
    result, _, own, _ = fake_trial_result
    row = result.summary()
    assert row["trial"] == "trial1"
    for label in ("own test", "leakage-free test"):
        assert row[f"{label}: images"] == len(own.parts["test"])
        assert row[f"{label}: accuracy %"] == "50.00"
        low, high = (float(x) for x in row[f"{label}: 95% CI"].split("–"))
        assert low < 50 < high
    result.predictions["leakage_free"] = {"labels": [], "probabilities": []}
    row = result.summary()
    assert (row["leakage-free test: images"], row["leakage-free test: accuracy %"]) == (0, "–")


def test_load_results_prefers_complete_full_results_and_else_runs_the_profile(fake_trial_result, tmp_path, monkeypatch):
    result, profile, _, _ = fake_trial_result
    monkeypatch.setenv("WOOF_RESULTS_DIR", str(tmp_path / "results"))
    ran = []

    def run(name, p):
        ran.append((name, p.name))
        return result

    assert trials.load_results(["trial1"], profile, run=run) == ("smoke", [result])
    assert ran == [("trial1", "smoke")]
    folder = tmp_path / "results" / "full" / "trial1"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(result.to_json())
    name, loaded = trials.load_results(["trial1"], profile, run=run)
    assert name == "full" and loaded[0].predictions == result.predictions and len(ran) == 1
    # one full result missing: the profile's own runs are used for all
    assert trials.load_results(["trial1", "trial2"], profile, run=run)[0] == "smoke"


def test_calibration_groups_by_the_probability_given_and_measures_the_gap():
    # 10 images answered with 0.95, 6 of them right; 10 with 0.35, 3 right.
    sure = make_predictions(np.zeros(10, int), np.array([0] * 6 + [1] * 4), confidence=0.95)
    unsure = make_predictions(np.zeros(10, int), np.array([0] * 3 + [1] * 7), confidence=0.35)
    both = evaluate.Predictions(
        sure.paths + tuple(f"g{i}.JPEG" for i in range(10)),
        np.concatenate([sure.true, unsure.true]),
        np.concatenate([sure.scores, unsure.scores]),
        sure.class_names,
    )
    table = evaluate.calibration(both, bins=3)  # 0.1-0.4, 0.4-0.7, 0.7-1.0
    assert list(table["images"]) == [10, 0, 10, 20]
    assert table.loc["0.10–0.40", "mean probability %"] == pytest.approx(35)
    assert table.loc["0.10–0.40", "right %"] == pytest.approx(30)
    assert table.loc["0.70–1.00", "right %"] == pytest.approx(60)
    # over-confident at 0.95 (35 points), nearly right at 0.35 (5 points): (10*35 + 10*5) / 20
    assert table.loc["all", "calibration error %"] == pytest.approx(20)
    with pytest.raises(ValueError, match="bins=0"):
        evaluate.calibration(both, bins=0)
