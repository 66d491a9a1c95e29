"""Run the chapters under nbval in the book's order (``_toc.yml``).

Later chapters (Grad-CAM, results) read the trial results that the trial chapters save
under ``results/``; in book order each trial is trained once, by its own chapter, and
reused after, as a reader running the course in order would.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _book_order() -> list[str]:
    return re.findall(r"file:\s*chapters/([\w-]+)", (ROOT / "_toc.yml").read_text())


def pytest_collection_modifyitems(session, config, items):
    order = {name: i for i, name in enumerate(_book_order())}

    def key(item):
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" and path.parent.name == "chapters":
            return (1, order.get(path.stem, len(order)), path.stem)
        return (0, 0, "")  # unit tests first, in their own order (sort is stable)

    items.sort(key=key)
