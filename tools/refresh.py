"""Re-execute chapters from their MyST source and write the paired notebooks.

``python tools/refresh.py [chapter ...] [--profile smoke|full]`` reads each
``chapters/<name>.md``, runs it top to bottom in a fresh kernel, and writes
``chapters/<name>.ipynb`` with the outputs, recording the source's hash and the
profile in the notebook's metadata (``woof``). It prints the time per chapter and
stops at the first chapter that fails, naming the cell. The committed notebooks are
always what this command wrote, in the smoke profile.

A maintainer's tool, kept out of the ``woofhelpers`` package that learners install: run it
from a checkout. It needs the ``book`` extra (jupytext, nbclient).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

from woofhelpers.io import write_text_atomically

if TYPE_CHECKING:
    import nbformat

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"


def book_order() -> list[Path]:
    """The chapter sources in the order of ``_toc.yml``, then any chapter not listed there.

    Later chapters reuse the trial results that earlier ones save, so chapters always run
    in this order: here and under nbval (see ``conftest.py``).
    """
    import re

    toc = (CHAPTERS.parent / "_toc.yml").read_text()
    listed = [CHAPTERS / f"{name}.md" for name in re.findall(r"file:\s*chapters/([\w-]+)", toc)]
    return [p for p in listed if p.is_file()] + sorted(set(CHAPTERS.glob("*.md")) - set(listed))


def source_hash(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of the cells' types and sources: what the outputs were computed from."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        digest.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return digest.hexdigest()


def _cells(notebook) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in notebook.cells]


def problems(md_path: Path, profile: str = "smoke") -> list[str]:
    """What is wrong with a chapter pair, as messages naming the fix; empty when all is well.

    The ``.ipynb`` must exist, hold the same cells as the ``.md`` (types, sources, tags),
    and carry outputs made by :func:`refresh` from this very source in ``profile``.
    """
    import jupytext
    import nbformat

    ipynb = md_path.with_suffix(".ipynb")
    fix = f"run `python tools/refresh.py {md_path.stem}` and commit both files"
    if not ipynb.is_file():
        return [f"{ipynb.name} is missing: {fix}"]
    source = jupytext.read(md_path)
    paired = nbformat.read(ipynb, as_version=4)
    found = []
    if _cells(source) != _cells(paired):
        found.append(f"{ipynb.name} does not hold the cells of {md_path.name}: {fix}")
    woof = paired.metadata.get("woof", {})
    if woof.get("profile") != profile:
        found.append(f"{ipynb.name} was executed in profile {woof.get('profile')!r}, not {profile!r}: {fix}")
    if woof.get("source_sha256") != source_hash(source):
        found.append(f"the outputs in {ipynb.name} are stale (its source changed since): {fix}")
    if any(c.cell_type == "code" and c.execution_count is None for c in paired.cells):
        found.append(f"{ipynb.name} has code cells that were never executed: {fix}")
    return found


def quiet_environment(profile: str) -> dict[str, str]:
    """The environment a chapter runs in: the profile, and TensorFlow's C++ logs off."""
    env = dict(os.environ, WOOF_PROFILE=profile, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    return env


def execute(md_path: Path, environment: dict[str, str], timeout_s: int = 1800) -> nbformat.NotebookNode:
    """Run one chapter's ``.md`` top to bottom in a fresh kernel whose environment is
    ``environment`` (the whole of it); return the notebook with its outputs.
    Raises ``SystemExit`` naming the chapter and the cell when a cell fails."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(md_path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(md_path.parent)}},
    )
    try:
        with mock.patch.dict(os.environ, environment, clear=True):  # the kernel inherits it
            client.execute()
    except CellExecutionError as exc:
        raise SystemExit(f"{md_path.name}: a cell failed; nothing was written.\n{exc}") from None
    return notebook


def refresh(md_path: Path, profile: str = "smoke", timeout_s: int = 1800) -> float:
    """Execute one chapter's ``.md`` and write its ``.ipynb``; return the seconds it took."""
    import nbformat

    start = time.perf_counter()
    notebook = execute(md_path, quiet_environment(profile), timeout_s)
    seconds = time.perf_counter() - start
    notebook.metadata["woof"] = {"profile": profile, "source_sha256": source_hash(notebook)}
    text = nbformat.writes(notebook)
    write_text_atomically(md_path.with_suffix(".ipynb"), text if text.endswith("\n") else text + "\n")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Refresh the chapters named in ``argv`` (default: every chapter, in book order), or with
    ``--check`` only report the pairs that are out of sync or stale; return the exit status."""
    parser = argparse.ArgumentParser(prog="python tools/refresh.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every chapter, in book order)")
    parser.add_argument("--profile", default="smoke", choices=("smoke", "full"))
    parser.add_argument("--check", action="store_true", help="only check that every pair is in sync and fresh")
    args = parser.parse_args(argv)
    paths = [CHAPTERS / f"{Path(name).stem}.md" for name in args.chapters] or book_order()
    for path in paths:
        if not path.is_file():
            raise SystemExit(
                f"no chapter source {path}; the chapters are {[p.stem for p in sorted(CHAPTERS.glob('*.md'))]}"
            )
    if args.check:
        found = [message for path in paths for message in problems(path, args.profile)]
        orphans = [p.name for p in CHAPTERS.glob("*.ipynb") if not p.with_suffix(".md").is_file()]
        found += [f"{name} has no .md source: add one or delete it" for name in orphans]
        print("\n".join(found) or f"{len(paths)} chapters in sync and fresh")
        return 1 if found else 0
    total = 0.0
    for path in paths:
        seconds = refresh(path, args.profile)
        total += seconds
        print(f"{path.stem:<24} {seconds:6.1f} s")
    print(f"{'total':<24} {total:6.1f} s ({args.profile} profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
