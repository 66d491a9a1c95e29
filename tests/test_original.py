"""wh.original: the original notebooks' epoch logs as package data, and the figure that
draws them (wh.plots.original_curves). The facts checked here are those of the course's
reference page on the original trials (original-trials.md)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import woofhelpers as wh  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "original-histories.json"
FINE_TUNED = ("trial2", "trial3", "trial4")


def _raw() -> dict:
    return json.loads(resources.files("woofhelpers").joinpath(wh.original.DATA_FILE).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- the data and its source ---------------------------------------------------------------


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the course's reference material is not beside this checkout")
def test_package_data_is_the_reference_file_unchanged():
    packaged = resources.files("woofhelpers").joinpath(wh.original.DATA_FILE).read_bytes()
    assert packaged == REFERENCE.read_bytes()


def test_source_names_repository_commit_and_notebook():
    assert wh.original.REPOSITORY == "GateraGael/Resnet50_TransferLearning_ImageWoof"
    assert wh.original.COMMIT == "1b4ed52"
    assert wh.original.SOURCE.startswith(f"{wh.original.REPOSITORY} @ {wh.original.COMMIT}")
    assert wh.original.citation("trial2") == (
        "GateraGael/Resnet50_TransferLearning_ImageWoof @ 1b4ed52, Trial2_ImageWolfClassifier.ipynb"
    )


def test_logs_exist_for_trials_1_to_4_only():
    assert wh.original.TRIALS == ("trial1", "trial2", "trial3", "trial4")
    assert [wh.original.has_log(f"trial{n}") for n in range(1, 6)] == [True] * 4 + [False]
    assert not wh.original.has_log("trial4_honest")


@pytest.mark.parametrize(
    "call",
    [
        wh.original.history,
        wh.original.epoch_lines,
        wh.original.final_test,
        wh.original.split_sizes,
        wh.original.citation,
        wh.plots.original_curves,
    ],
    ids=lambda f: f.__name__,
)
def test_trial5_is_refused_clearly(call):
    with pytest.raises(ValueError, match=r"no log of the original 'trial5'.*no notebook published.*trial1"):
        call("trial5")
    with pytest.raises(ValueError, match=r"no original trial 'trial9'.*'trial1', 'trial2', 'trial3', 'trial4'"):
        call("trial9")


def test_write_up_figures_in_the_copy_agree_with_evaluate():
    """The write-up's figures have one home, wh.original.REPORTED; the packaged
    copy of the logs carries them too, and must not contradict it."""
    trials = _raw()["trials"]
    assert set(trials) == set(wh.original.REPORTED)
    for name, (right, images) in wh.original.REPORTED.items():
        assert trials[name]["reported_in_writeup"] == pytest.approx(right / images, abs=1e-7), name  # float32


# --- what the logs show ---------------------------------------------------------------------


def test_history_has_the_shape_of_a_trial_result():
    for name in wh.original.TRIALS:
        history = wh.original.history(name)
        assert set(history) == ({"head"} if name == "trial1" else {"head", "fine_tune"}), name
        for phase, columns in history.items():
            assert set(columns) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}, (name, phase)
            assert len({len(values) for values in columns.values()}) == 1, (name, phase)
        assert len(history["head"]["epoch"]) == 10


def test_epochs_are_numbered_continuously_while_keras_printed_10_twice():
    for name in FINE_TUNED:
        history = wh.original.history(name)
        assert history["head"]["epoch"] + history["fine_tune"]["epoch"] == list(range(1, 22)), name
        lines = wh.original.epoch_lines(name)
        printed = [(line["epoch"], line["of"]) for line in lines if line["phase"] == "fine_tune"]
        assert printed == [(epoch, 20) for epoch in range(10, 21)], name  # initial_epoch=9, epochs=20


def test_fine_tuning_ran_11_epochs_and_the_registry_reproduces_it():
    for name in FINE_TUNED:
        assert len(wh.original.history(name)["fine_tune"]["epoch"]) == 11, name
        assert wh.recipes.get(name).fine_tune_epochs == 11, name
    # Trial 5 has no log; the write-up describes it as trial 4 with batch 10.
    assert wh.recipes.get("trial5").fine_tune_epochs == wh.recipes.get("trial4").fine_tune_epochs
    assert wh.recipes.get("trial1").fine_tune_epochs == 0


def test_trial1_always_answers_one_breed_from_epoch_2():
    history = wh.original.history("trial1")["head"]
    train = wh.catalog.VERSIONS["imagewoof-320"].class_counts["train"]
    one_breed = max(n for n, _ in train.values()) / sum(n for n, _ in train.values())  # 1,300 / 12,454
    assert history["accuracy"][1:] == [round(one_breed, 4)] * 9 == [0.1044] * 9
    assert history["loss"][1:] == [14.4294] * 9
    assert history["accuracy"][0] != 0.1044  # the first epoch still moved
    # The "validation" figures move only because the reshuffle draws other images: k of 404.
    validation = wh.original.split_sizes("trial1")["validation"]
    for accuracy in history["val_accuracy"]:
        assert accuracy == pytest.approx(round(accuracy * validation) / validation, abs=5e-5)
    assert wh.original.final_test("trial1")["accuracy"] == 0.0729  # 7 of 96


def test_trial2_head_peaks_then_fine_tuning_collapses_to_chance():
    history = wh.original.history("trial2")
    head, fine_tune = history["head"], history["fine_tune"]
    best = max(head["val_accuracy"])
    assert (best, head["epoch"][head["val_accuracy"].index(best)]) == (0.5792, 4)
    assert head["val_accuracy"][-1] == 0.3069
    for key in ("accuracy", "val_accuracy"):
        assert all(0.085 < value < 0.115 for value in fine_tune[key]), key  # chance: 1 in 10
    assert all(abs(loss - math.log(10)) < 0.25 for loss in fine_tune["loss"])  # ln 10: uniform outputs
    assert wh.original.final_test("trial2") == {"loss": 2.2935, "accuracy": 0.1042, "batches": 3, "images": 96}
    right, images = wh.original.REPORTED["trial2"]
    assert (right, images) == (70, 96)  # the write-up's 72.92%, from another run of the same notebook
    assert round(0.1042 * 96) == 10


@pytest.mark.parametrize(("name", "lowest", "last"), [("trial3", 0.7226, 1.7054), ("trial4", 0.5607, 1.5265)])
def test_trials_3_and_4_fit_the_training_set_while_validation_loss_climbs(name, lowest, last):
    head = wh.original.history(name)["head"]
    assert head["accuracy"][2] > 0.97  # epoch 3
    assert max(head["accuracy"]) > 0.985
    assert (min(head["val_loss"]), head["val_loss"][-1]) == (lowest, last)
    assert head["val_loss"].index(lowest) < 2
    assert max(head["val_accuracy"]) - min(head["val_accuracy"]) < 0.05  # while accuracy stays flat


def test_final_tests_of_the_notebooks():
    tests = {name: wh.original.final_test(name) for name in wh.original.TRIALS}
    assert {name: (t["accuracy"], t["images"]) for name, t in tests.items()} == {
        "trial1": (0.0729, 96),
        "trial2": (0.1042, 96),
        "trial3": (0.7292, 96),
        "trial4": (0.8555, 512),
    }


def test_validation_was_what_take_left():
    raw = _raw()["trials"]
    expected = {"trial1": 404, "trial2": 404, "trial3": 404, "trial4": 2_078}
    for name, validation in expected.items():
        sizes = wh.original.split_sizes(name)
        assert sizes["validation"] == validation, name
        # The notebook's first evaluation ran over the "validation" batches: 13 or 65 of them.
        assert math.ceil(validation / wh.original.BATCH_SIZE) == raw[name]["initial_evaluation"]["batches"], name
        assert sizes["held out"] == sizes["validation"] + sizes["test"]
    # The held-out counts agree with the dataset catalogue and the full-size splits.
    assert wh.original.HELD_OUT_IMAGES["trial1"] == wh.catalog.VERSIONS["imagewoof-320"].counts["val"]
    pooled = wh.runtime.FULL_SPLIT_SIZES["pooled"]
    assert wh.original.HELD_OUT_IMAGES["trial4"] == pooled["validation"] + pooled["test"]


def test_returned_data_are_copies():
    wh.original.history("trial3")["head"]["loss"][0] = -1.0
    wh.original.epoch_lines("trial3")[0]["loss"] = -1.0
    wh.original.final_test("trial3")["accuracy"] = -1.0
    assert wh.original.history("trial3")["head"]["loss"][0] == 1.0852
    assert wh.original.epoch_lines("trial3")[0]["loss"] == 1.0852
    assert wh.original.final_test("trial3")["accuracy"] == 0.7292


# --- the figure -----------------------------------------------------------------------------


def _line(ax, label: str):
    found = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(found) == 1, [line.get_label() for line in ax.get_lines()]
    return found[0]


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts) + " " + " ".join(ax.get_title() for ax in fig.axes)


@pytest.mark.parametrize("name", wh.original.TRIALS)
def test_original_curves_draw_the_logged_points(name):
    fig = wh.plots.original_curves(name)
    history = wh.original.history(name)
    phases = [p for p in ("head", "fine_tune") if p in history]
    accuracy_ax, loss_ax = fig.axes
    validation = f'"validation" ({wh.original.split_sizes(name)["validation"]:,} images left after take)'
    for ax, metric in ((accuracy_ax, "accuracy"), (loss_ax, "loss")):
        for label, key in (("training", metric), (validation, "val_" + metric)):
            line = _line(ax, label)
            assert list(line.get_xdata()) == [e for p in phases for e in history[p]["epoch"]]
            assert list(line.get_ydata()) == [v for p in phases for v in history[p][key]]
        starts = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert starts == ([10.5] if name != "trial1" else [])
    assert loss_ax.get_yscale() == ("linear" if name == "trial1" else "log")  # trial 1's loss spans no decade
    text = _texts(fig)
    assert "the original's Colab run: real data, ImageNet weights" in text
    assert wh.original.citation(name) in text


def _result(profile: dict) -> wh.results.TrialResult:
    history = {
        "head": {
            "epoch": [1, 2],
            "loss": [2.5, 2.3],
            "accuracy": [0.1, 0.2],
            "val_loss": [2.4, 2.4],
            "val_accuracy": [0.1, 0.1],
        },
        "fine_tune": {"epoch": [3], "loss": [2.2], "accuracy": [0.3], "val_loss": [2.5], "val_accuracy": [0.15]},
    }
    return wh.results.TrialResult(
        trial={"name": "trial2"},
        effective={},
        profile=profile,
        split={},
        history=history,
        test={},
        wall_s={},
        predictions={},
        hardware={},
        cached_features=False,
        created="",
    )


def test_original_curves_beside_a_reproduction_label_its_profile():
    result = _result({"name": "smoke", "real_results": False})
    fig = wh.plots.original_curves("trial2", result)
    assert len(fig.axes) == 4
    original_row, reproduction_row = fig.axes[:2], fig.axes[2:]
    for ax in original_row:
        assert ax.get_title() == "the original's Colab run: real data, ImageNet weights"
    for ax, metric in zip(reproduction_row, ("accuracy", "loss"), strict=True):
        assert ax.get_title() == "trial2, smoke profile: tests the code, not a result"
        expected = result.history["head"][metric] + result.history["fine_tune"][metric]
        assert list(_line(ax, "training").get_ydata()) == expected
        assert list(_line(ax, "validation").get_xdata()) == [1, 2, 3]
    # The reproduction's first fine-tuning epoch is marked on its own row.
    assert [line.get_xdata()[0] for line in reproduction_row[0].get_lines() if line.get_linestyle() == ":"] == [2.5]


@pytest.mark.parametrize(
    ("profile", "label"),
    [
        ({"name": "full", "real_results": True}, "full profile: real data, ImageNet weights"),
        ({"name": "full", "real_results": False}, "full profile: tests the code, not a result"),  # stand-in weights
        ({"name": "full"}, "full profile: tests the code, not a result"),  # a record that does not say
    ],
)
def test_a_reproduction_is_called_real_only_when_it_was(profile, label):
    fig = wh.plots.original_curves("trial3", _result(profile))
    assert fig.axes[2].get_title() == f"trial2, {label}"


# --- installed, not only in a checkout ------------------------------------------------------


def test_the_logs_are_installed_with_the_package(tmp_path):
    """A plain (non-editable) install, as in Colab, carries the data file: package-data in
    pyproject.toml. Built from a copy, so the checkout gets no build folders."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "woofhelpers", source / "woofhelpers", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    target = tmp_path / "target"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
        + ["--disable-pip-version-check", "--target", str(target), str(source)],
        check=True,
        env=environment,
        capture_output=True,
    )
    installed = target / "woofhelpers" / wh.original.DATA_FILE
    assert installed.read_bytes() == resources.files("woofhelpers").joinpath(wh.original.DATA_FILE).read_bytes()
    (record,) = target.glob("woofhelpers-*.dist-info/RECORD")
    assert f"woofhelpers/{wh.original.DATA_FILE}," in record.read_text()
