"""Run the chapters under nbval in the book's order (``_toc.yml``).

Later chapters (Grad-CAM, results) read the trial results that the trial chapters save
under ``results/``; in book order each trial is trained once, by its own chapter, and
reused after, exactly as ``python -m woofhelpers.refresh`` ran them to make the outputs.
"""

from pathlib import Path

from woofhelpers.refresh import book_order


def pytest_collection_modifyitems(session, config, items):
    order = {path.stem: i for i, path in enumerate(book_order())}

    def key(item):
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" and path.parent.name == "chapters":
            return (1, order.get(path.stem, len(order)), path.stem)
        return (0, 0, "")  # unit tests first, in their own order (the sort is stable)

    items.sort(key=key)
