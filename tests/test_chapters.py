"""The chapters: jupytext pairs in sync, outputs fresh from a smoke run, clean of TF noise.

nbval (``pytest --nbval chapters``) re-runs each notebook and compares its outputs; these
tests check what nbval cannot: that the .ipynb was produced from the current .md.
"""

import re
from pathlib import Path

import nbformat
import pytest

from tools import refresh

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
SOURCES = sorted(CHAPTERS.glob("*.md"))
TF_NOISE = re.compile(r"cudart_stub|absl::InitializeLog|oneDNN|^[IWE]\d{4} |tensorflow/core/", re.M)


def test_there_are_chapters():
    assert {p.stem for p in SOURCES} >= {"dataset", "relabelling"}


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert sorted(p.stem for p in CHAPTERS.glob("*.ipynb")) == [p.stem for p in SOURCES]


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync_and_outputs_are_fresh_from_a_smoke_run(md):
    assert refresh.problems(md) == []


def test_a_changed_source_is_detected_as_stale(tmp_path):
    md = tmp_path / "dataset.md"
    md.write_text((CHAPTERS / "dataset.md").read_text() + "\nOne more sentence.\n")
    (tmp_path / "dataset.ipynb").write_bytes((CHAPTERS / "dataset.ipynb").read_bytes())
    found = refresh.problems(md)
    assert any("does not hold the cells" in m for m in found)
    assert any("stale" in m for m in found)
    (tmp_path / "dataset.ipynb").unlink()
    assert refresh.problems(md) == [
        "dataset.ipynb is missing: run `python tools/refresh.py dataset` and commit both files"
    ]


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_the_profile_is_printed_first_and_tf_logs_are_absent(md):
    paired = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    code = [c for c in paired.cells if c.cell_type == "code"]
    first = "".join(o.get("text", "") for o in code[0].outputs)
    assert "Profile: smoke" in first and "NOT real results" in first
    for cell in code:
        for output in cell.outputs:
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert not TF_NOISE.search(text), f"TensorFlow log lines in {md.stem}: {text[:200]}"


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_the_two_cells_every_chapter_starts_with_fit_the_books_code_column(md):
    """The setup and versions cells, source and printed output, in lines under 80 characters:
    the width of a code block on the page, so nothing there scrolls sideways."""
    paired = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    for cell in [c for c in paired.cells if c.cell_type == "code"][:2]:
        text = cell.source + "".join(o.get("text", "") for o in cell.outputs)
        too_long = [line for line in text.splitlines() if len(line) >= 80]
        assert not too_long, f"{md.stem}: {too_long}"
