"""The book builds warning-free (-W -n) with no network, and packaging keeps Colab's TensorFlow."""

import json
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def test_book_builds_warning_free_and_has_every_chapter(built_book):
    toc = (REPO / "_toc.yml").read_text()
    for chapter in sorted((REPO / "chapters").glob("*.ipynb")):
        assert f"chapters/{chapter.stem}" in toc, f"{chapter.name} is not in _toc.yml"
        page = built_book / "chapters" / f"{chapter.stem}.html"
        assert page.is_file(), f"{page} was not built"
    assert (built_book / "intro.html").is_file()


def test_built_pages_show_outputs_and_the_colab_button(built_book):
    page = (built_book / "chapters" / "dataset.html").read_text()
    assert "SMOKE RUN" in page, "the executed outputs (profile banner) are missing from the page"
    assert "colab.research.google.com/github/" in page and "chapters/dataset.ipynb" in page
    assert "<img" in page


def test_base_dependencies_leave_tensorflow_alone():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [
        dep.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for dep in project["dependencies"]
    ]
    assert not [n for n in names if n.startswith(("tensorflow", "keras", "tf-"))], names


def test_installing_where_tensorflow_is_present_installs_nothing_else(tmp_path):
    """What Colab does: TensorFlow is there already; installing woofhelpers must not touch it."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--no-build-isolation",
            "--quiet",
            "--report",
            str(report),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    installs = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installs == ["woofhelpers"], installs
