"""The chapters: jupytext pairs in sync, outputs fresh from a smoke run, clean of TF noise.

nbval (``pytest --nbval chapters``) re-runs each notebook and compares its outputs; these
tests check what nbval cannot: that the .ipynb was produced from the current .md.
"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from woofhelpers.refresh import source_hash

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
SOURCES = sorted(CHAPTERS.glob("*.md"))
TF_NOISE = re.compile(r"cudart_stub|absl::InitializeLog|oneDNN|^[IWE]\d{4} |tensorflow/core/", re.M)


def test_there_are_chapters():
    assert {p.stem for p in SOURCES} >= {"dataset", "relabelling"}


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert sorted(p.stem for p in CHAPTERS.glob("*.ipynb")) == [p.stem for p in SOURCES]


def _cells(notebook):
    return [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in notebook.cells]


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync(md):
    text = jupytext.read(md)
    paired = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    assert _cells(text) == _cells(paired), f"{md.name} and its .ipynb differ: run `make refresh`"


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_outputs_come_from_a_smoke_run_of_this_source(md):
    paired = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    woof = paired.metadata.get("woof", {})
    assert woof.get("profile") == "smoke", f"{md.with_suffix('.ipynb').name} was not refreshed in the smoke profile"
    assert woof.get("source_sha256") == source_hash(jupytext.read(md)), (
        f"the outputs of {md.stem} are stale: its source changed since `make refresh`"
    )
    code = [c for c in paired.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a code cell was never executed"


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
