"""``wh.published`` and ``python -m woofhelpers publish``: a run's results as a small bundle
for the book.

The bundle is published from the command-line tests' tiny smoke profile (``TINY`` and the
``cli`` fixture of ``tests/test_trial_cli.py``: a few 32 px images per class, one epoch, the
small stand-in for ResNet50), with 10 train images per class, the fewest the corrected
recipe's leakage-free split can hold out a validation file of each breed from. It is a
rehearsal bundle and must say so. Its trials train once, into one results folder for the
module; every later publish loads them.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image
from test_trial_cli import TINY, cli, one_error_line, shared_data  # noqa: F401 (the CLI tests' tiny profile)

import woofhelpers as wh
from woofhelpers import published

REPO = Path(__file__).resolve().parent.parent
NAMES = ("trial1", "corrected")
NO_BUNDLE = (
    "No full run has been published yet: until one is, the original's own records are this page's only real evidence."
)
# The corrected recipe's split holds out 10% of train for validation, one file per breed at least.
ENOUGH_FOR_CORRECTED = {"WOOF_SYNTHETIC_TRAIN_PER_CLASS": "10"}
MAX_FILE_KIB = 200
_BUNDLES: dict[str, Path] = {}  # the module's one bundle, published by the first test that asks


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory) -> Path:
    """Where the module's trials are saved: trained by the first publish, loaded after."""
    return tmp_path_factory.mktemp("published-results")


@pytest.fixture
def tiny(cli, clean_woof_env) -> wh.profiles.Profile:  # noqa: F811 (cli: imported, a fixture)
    """The CLI tests' tiny smoke profile (``cli`` sets its WOOF_ settings and the stand-in),
    with :data:`ENOUGH_FOR_CORRECTED`; ``cli`` runs in it too."""
    for name, value in ENOUGH_FOR_CORRECTED.items():
        clean_woof_env.setenv(name, value)
    profile = wh.profiles.load("smoke")
    assert profile.image_size_px == int(TINY["WOOF_IMAGE_SIZE_PX"]) and not profile.real_results
    return profile


@pytest.fixture
def bundle_dir(tiny, results_folder, tmp_path_factory) -> Path:
    """The module's bundle of ``NAMES``, published once. Read only: a test that changes it
    works on a copy."""
    if "bundle" not in _BUNDLES:
        out = tmp_path_factory.mktemp("bundle") / "published"
        _BUNDLES["bundle"] = published.publish(tiny, out=out, names=NAMES, results=results_folder, allow_not_real=True)
    return _BUNDLES["bundle"]


def saved(results_folder: Path, name: str) -> wh.results.TrialResult:
    return wh.results.TrialResult.load(results_folder / "smoke" / name)


def test_a_profile_without_real_results_is_refused_with_what_to_do(tiny, tmp_path):
    with pytest.raises(ValueError) as refused:
        published.publish(tiny, out=tmp_path / "published", names=NAMES, results=tmp_path / "results")
    message = str(refused.value)
    assert "\n" not in message and "smoke" in message
    assert "--profile full" in message and "allow_not_real=True" in message and "--allow-not-real" in message
    assert not (tmp_path / "published").exists() and not (tmp_path / "results").exists()  # nothing ran


def test_the_bundle_says_how_when_and_where_it_was_made(bundle_dir):
    record = json.loads((bundle_dir / published.BUNDLE_FILE).read_text())
    assert set(record) == {"meta", "trials", "gradcam"} and tuple(record["trials"]) == NAMES
    meta = record["meta"]
    created = datetime.datetime.fromisoformat(meta["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(hours=1)
    assert set(meta["versions"]) == {"woofhelpers", "python", "tensorflow", "keras", "numpy"}
    assert meta["versions"]["woofhelpers"] == wh.__version__ and meta["versions"]["numpy"] == np.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert meta["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert meta["hardware"]["trained_on"] in ("cpu", "gpu") and isinstance(meta["hardware"]["gpu_names"], list)
    assert meta["profile"]["name"] == "smoke" and meta["profile"]["real_results"] is False
    assert meta["real_results"] is False and "NOT real results" in meta["source"]
    for name in NAMES:
        assert set(record["trials"][name]) >= {
            "trial",
            "effective",
            "history",
            "summary",
            "test",
            "confusion",
            "wall_s",
            "hardware",
        }

    bundle = published.load(bundle_dir)
    assert bundle.label.startswith("REHEARSAL bundle: NOT real results")
    assert f"smoke run of {meta['created'][:10]}" in bundle.label and f"woofhelpers {wh.__version__}" in bundle.label
    assert "\n" not in bundle.label


def test_a_real_bundle_is_labelled_with_its_date_gpu_and_version(bundle_dir):
    bundle = published.load(bundle_dir)
    meta = {
        **bundle.meta,
        "created": "2026-12-01T10:00:00+00:00",
        "real_results": True,
        "hardware": {"trained_on": "gpu", "gpu_names": ["NVIDIA T4"]},
        "versions": {"woofhelpers": "0.1.0"},
        "profile": {"name": "full", "dataset": "imagewoof-320", "weights": "imagenet", "real_results": True},
    }
    real = published.Bundle(bundle.path, meta, bundle.trials, bundle.gradcam)
    assert (
        real.label == "Published full run of 2026-12-01 on NVIDIA T4 (real data, ImageNet weights), woofhelpers 0.1.0"
    )


def test_the_published_numbers_are_those_of_the_saved_results(bundle_dir, results_folder):
    record = json.loads((bundle_dir / published.BUNDLE_FILE).read_text())
    for name in NAMES:
        result, trial = saved(results_folder, name), record["trials"][name]
        assert trial["summary"] == result.summary()
        assert trial["test"] == result.test and trial["history"] == result.history
        assert trial["trial"] == result.trial and trial["effective"] == result.effective
        assert trial["wall_s"] == result.wall_s and trial["hardware"] == result.hardware
        assert set(trial["confusion"]) == {"own", "leakage_free"}
        for which, counts in trial["confusion"].items():
            counts = np.asarray(counts)
            labels = np.asarray(result.predictions[which]["labels"])
            probabilities = np.asarray(result.predictions[which]["probabilities"]).reshape(len(labels), -1)
            assert counts.shape == (10, 10) and counts.sum() == result.test[which]["n"] == len(labels)
            assert np.trace(counts) == np.sum(probabilities.argmax(axis=1) == labels)
            assert np.array_equal(counts.sum(axis=1), np.bincount(labels, minlength=10))


def test_gradcam_overlays_of_the_corrected_recipe_decode_at_its_image_size(bundle_dir):
    bundle = published.load(bundle_dir)
    assert 1 <= len(bundle.gradcam) <= 6 and bundle.meta["gradcam"].startswith("Grad-CAM")
    size_px = bundle.trials["corrected"]["effective"]["image_size_px"]
    for entry in bundle.gradcam:
        assert entry["true"] in wh.labels.CLASS_NAMES and entry["predicted"] in wh.labels.CLASS_NAMES
        with Image.open(bundle_dir / entry["file"]) as picture:
            picture.load()
            assert picture.format == "PNG" and picture.size == (size_px, size_px) and picture.mode == "RGB"
    breeds = [entry["true"] for entry in bundle.gradcam]
    assert len(set(breeds)) == len(breeds)  # the first image of each breed
    figure = bundle.gradcam_grid()
    assert len([ax for ax in figure.axes if ax.images]) == len(bundle.gradcam)
    plt.close(figure)


def test_the_bundle_is_small_and_holds_no_weights(bundle_dir):
    files = [f for f in bundle_dir.rglob("*") if f.is_file()]
    bundle = published.load(bundle_dir)
    assert {f.relative_to(bundle_dir).as_posix() for f in files} == {
        published.BUNDLE_FILE,
        *(entry["file"] for entry in bundle.gradcam),
    }
    assert not [f for f in files if f.suffix in (".h5", ".keras", ".npz", ".npy")]
    too_big = [f"{f.name}: {f.stat().st_size / 1024:.0f} KiB" for f in files if f.stat().st_size > MAX_FILE_KIB * 1024]
    assert not too_big
    assert "probabilities" not in (bundle_dir / published.BUNDLE_FILE).read_text()  # no per-image outputs
    print(f"test bundle: {published.size_kib(bundle_dir):.1f} KiB in {len(files)} files")


def test_load_returns_none_where_there_is_no_bundle(tmp_path):
    assert published.load(tmp_path) is None
    assert published.load(tmp_path / "never-made") is None


def test_a_truncated_bundle_names_the_file_and_says_to_publish_again(bundle_dir, tmp_path):
    copy = Path(shutil.copytree(bundle_dir, tmp_path / "published"))
    file = copy / published.BUNDLE_FILE
    file.write_text(file.read_text()[:200])
    with pytest.raises(ValueError) as damaged:
        published.load(copy)
    assert str(file) in str(damaged.value) and "publish again" in str(damaged.value)
    file.write_text(json.dumps({"meta": {}, "trials": []}))  # valid JSON, wrong shape
    with pytest.raises(ValueError, match="publish again"):
        published.load(file)


def test_show_without_a_bundle_prints_the_one_fixed_sentence(clean_woof_env, tmp_path, capsys):
    clean_woof_env.setenv("WOOF_RESULTS_DIR", str(tmp_path))
    assert published.default_dir() == tmp_path / "published"
    assert published.show("trial1") is None
    assert capsys.readouterr().out == NO_BUNDLE + "\n"


def test_show_with_a_bundle_prints_its_label_and_returns_the_curves(bundle_dir, tiny, capsys):
    tiny_env = pytest.MonkeyPatch()
    tiny_env.setenv("WOOF_RESULTS_DIR", str(bundle_dir.parent))  # so the default folder holds the bundle
    try:
        assert published.default_dir() == bundle_dir
        figure = published.show("corrected")
    finally:
        tiny_env.undo()
    bundle = published.load(bundle_dir)
    assert capsys.readouterr().out == bundle.label + "\n"
    assert len([ax for ax in figure.axes if ax.lines]) == 2 and "REHEARSAL" in figure._suptitle.get_text()
    plt.close(figure)
    assert published.show("trial2", bundle) is None
    out = capsys.readouterr().out.splitlines()
    assert out[0] == bundle.label and "does not include trial2" in out[1]


def test_table_and_confusion(bundle_dir):
    bundle = published.load(bundle_dir)
    table = bundle.table()
    assert tuple(table.index) == NAMES and "leakage-free test: accuracy %" in table.columns
    for name in NAMES:
        for which in ("own", "leakage_free"):
            frame = bundle.confusion(name, which)
            assert frame.shape == (10, 10) and tuple(frame.index) == tuple(frame.columns) == wh.labels.CLASS_NAMES
            assert frame.to_numpy().sum() == bundle.trials[name]["test"][which]["n"]
    assert bundle.confusion("corrected").equals(bundle.confusion("corrected", "leakage_free"))
    with pytest.raises(ValueError, match="'own', 'leakage_free'"):
        bundle.confusion("corrected", "validation")
    with pytest.raises(ValueError, match="no trial 'trial2'"):
        bundle.confusion("trial2")


def test_publishing_again_replaces_the_bundle_only_once_the_new_one_is_complete(
    bundle_dir, tiny, results_folder, tmp_path, monkeypatch
):
    out = Path(shutil.copytree(bundle_dir, tmp_path / "published"))
    (out / "left-by-the-first-bundle").write_text("")
    assert published.publish(tiny, out=out, names=["trial1"], results=results_folder, allow_not_real=True) == out
    bundle = published.load(out)
    assert tuple(bundle.trials) == ("trial1",) and bundle.gradcam == [] and not (out / "gradcam").exists()
    assert bundle.meta["gradcam"].startswith("skipped") and "'corrected'" in bundle.meta["gradcam"]
    assert not (out / "left-by-the-first-bundle").exists()  # replaced as a whole
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("published", ".published.lock"))
    assert leftovers == []

    # A publish that fails while writing leaves the bundle it would have replaced, and no temporary folder.
    before = (out / published.BUNDLE_FILE).read_text()

    def fails(result):
        raise RuntimeError("cut short")

    monkeypatch.setattr(published, "_trial_record", fails)
    with pytest.raises(RuntimeError, match="cut short"):
        published.publish(tiny, out=out, names=NAMES, results=results_folder, allow_not_real=True)
    assert (out / published.BUNDLE_FILE).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in ("published", ".published.lock")) == []


def test_names_default_to_every_registered_trial_in_registry_order(tiny):
    everything = published.check_request(tiny, allow_not_real=True)
    assert everything == (*wh.recipes.TRIAL_NAMES, *wh.recipes.LADDER_TRIALS) == published.registered()
    assert published.check_request(tiny, ["corrected", "trial1", "trial1"], allow_not_real=True) == NAMES
    with pytest.raises(ValueError, match="no trials to publish"):
        published.check_request(tiny, [], allow_not_real=True)


def test_a_folder_that_is_not_a_bundle_is_not_replaced(tiny, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds files but no bundle.json"):
        published.publish(tiny, out=tmp_path / "notes", names=["trial1"], allow_not_real=True)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown trial 'trial9'"):
        published.publish(tiny, out=tmp_path / "out", names=["trial9"], allow_not_real=True)


def test_the_command_line_publishes_and_refuses_a_rehearsal_without_the_flag(
    cli,  # noqa: F811 (imported, a fixture)
    tiny,
    bundle_dir,
    results_folder,
    tmp_path,
):
    out = tmp_path / "bundle"
    common = ("--only", ",".join(NAMES), "--results", str(results_folder), "--out", str(out))
    status, stdout, _ = cli("publish", *common, "--allow-not-real")
    assert status == 0 and "Profile: smoke" in stdout and "phase: epoch" not in stdout  # loaded, not trained
    size = published.size_kib(out)
    assert re.search(rf"published 2 trial\(s\) in {re.escape(str(out))} \({size:.0f} KiB\)", stdout), stdout
    assert tuple(published.load(out).trials) == NAMES

    status, _, err = cli("publish", *common)
    assert status == 2 and "--allow-not-real" in one_error_line(err)
    status, _, err = cli("publish", "--only", "trial9", "--allow-not-real")
    assert status == 2 and "trial9" in one_error_line(err)


# --- the chapters' own cells render the bundle --------------------------------------------

CHAPTERS = sorted((REPO / "chapters").glob("*.md"))
RENDERING = [md for md in CHAPTERS if "wh.published" in md.read_text()]


def _bundle_cells(md: Path) -> list[str]:
    """The chapter's code cells that read a published bundle, in page order."""
    import jupytext

    notebook = jupytext.read(md)
    return [
        c.source
        for c in notebook.cells
        if c.cell_type == "code" and ("wh.published" in c.source or "bundle" in c.source)
    ]


def _run_cells(md: Path, capsys) -> tuple[str, list]:
    """Run the bundle cells of ``md`` in one namespace, as the chapter does; what they print,
    and every figure they leave in ``fig``."""
    import pandas as pd

    namespace = {"wh": wh, "pd": pd, "display": print}
    figures = []
    for source in _bundle_cells(md):
        exec(compile(source, f"{md.name} cell", "exec"), namespace)
        figure = namespace.pop("fig", None)
        if figure is not None:
            figures.append(figure)
    plt.close("all")
    return capsys.readouterr().out, figures


def test_chapters_that_render_a_bundle_are_the_trial_pages_gradcam_and_results():
    names = {md.stem for md in RENDERING}
    assert names == {
        "trial1_relu_output",
        "trial2_fine_tuning",
        "trial3_learning_rate",
        "trial4_resplit",
        "trial5_batch_size",
        "gradcam",
        "results",
    }


@pytest.mark.parametrize("md", RENDERING, ids=lambda p: p.stem)
def test_without_a_bundle_each_page_says_none_is_published(md, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WOOF_RESULTS_DIR", str(tmp_path / "results"))
    out, figures = _run_cells(md, capsys)
    assert "No full run has been published yet" in out and not figures
    assert "REHEARSAL" not in out and "Published" not in out


@pytest.mark.parametrize("md", RENDERING, ids=lambda p: p.stem)
def test_with_a_bundle_each_page_shows_it_labelled(md, bundle_dir, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    shutil.copytree(bundle_dir, results / "published")
    monkeypatch.setenv("WOOF_RESULTS_DIR", str(results))
    out, figures = _run_cells(md, capsys)
    label = published.load(results / "published").label
    assert label in out and "No full run has been published yet" not in out
    shown = {  # what each page must draw or print from this bundle of trial1 and corrected
        "trial1_relu_output": 1,  # trial 1's published curves
        "gradcam": 1,  # the published Grad-CAM overlays
    }
    assert len(figures) == shown.get(md.stem, 0), md.stem
    if md.stem.startswith("trial") and md.stem != "trial1_relu_output":
        assert "The published run does not include" in out
    if md.stem == "results":
        assert "corrected" in out and "trial1" in out  # the bundle's table
        assert "No published run of the ladder yet" in out  # the bundle has no ladder
