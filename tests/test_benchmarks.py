"""A reduced run of ``benchmarks/bench.py``: proves the script runs and prints a well-formed
table of ratios. Only the pipeline and GPU sections run here: the head and memory sections
build and trace ResNet50 several times (minutes on a 2-core machine); run them with
``benchmarks/bench.py --quick``. It asserts the table's structure and that every ratio is
finite and positive, never a time or a speed-up (those depend on the machine)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("woof_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(bench, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("bench")
    json_path = scratch / "results.json"
    args = ["--quick", "--only", "pipeline,gpu", "--scratch", str(scratch), "--json", str(json_path)]
    results = bench.main(args)
    return results, json_path, scratch


def test_quick_run_reports_every_comparison_as_a_finite_positive_ratio(quick_run):
    results, _, _ = quick_run
    sections = {row.section for row in results.rows}
    assert sections - {"5 gpu"} == {"1 pipeline"}  # gpu adds a row only with a GPU
    assert len([row for row in results.rows if row.section == "1 pipeline"]) == 7
    for row in results.rows:
        assert math.isfinite(row.ratio) and row.ratio > 0, row
        if row.cpu_ratio is not None:
            assert math.isfinite(row.cpu_ratio) and row.cpu_ratio > 0, row
        assert row.a and row.b and row.what
        if row.target:
            assert isinstance(row.met, bool), row


def test_table_has_one_line_per_row_with_the_same_columns(quick_run):
    results, _, _ = quick_run
    lines = results.table().splitlines()
    assert len(lines) == 2 + len(results.rows)
    columns = {line.count("|") for line in lines}
    assert columns == {9}, lines
    for row, line in zip(results.rows, lines[2:], strict=True):
        assert f"{row.ratio:.2f}x" in line


def test_gpu_section_says_why_it_was_skipped_without_a_gpu(quick_run):
    import tensorflow as tf

    results, _, _ = quick_run
    if tf.config.list_physical_devices("GPU"):
        assert any(row.section == "5 gpu" for row in results.rows)
    else:
        assert any(note.startswith("GPU: skipped, no GPU") for note in results.notes)


def test_json_holds_the_machine_and_the_rows(quick_run):
    import json

    results, json_path, _ = quick_run
    saved = json.loads(json_path.read_text())
    assert "CPU cores" in saved["machine"]
    assert [r["ratio"] for r in saved["rows"]] == [r.ratio for r in results.rows]


def test_the_run_leaves_no_cache_or_temporary_files_behind(quick_run):
    _, _, scratch = quick_run
    leftovers = [p for p in scratch.rglob("*") if ".tmp-" in p.name or p.name.startswith(".run-")]
    assert leftovers == []


def test_unknown_section_is_refused_by_name(bench, tmp_path):
    with pytest.raises(SystemExit, match="nonsense"):
        bench.main(["--quick", "--only", "nonsense", "--scratch", str(tmp_path)])
