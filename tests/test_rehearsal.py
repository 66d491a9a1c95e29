"""The full profile, rehearsed end to end offline: every chapter, as a learner runs it in Colab.

What is real here: the profile (``full``, selected by the chapters' own Colab branch), the
download path (``wh.data.fetch`` over HTTP from a mirror named by ``WOOF_ARCHIVE_MIRROR``),
archives shaped exactly like fast.ai's (``wh.synthetic.replica``: v1 and v2, every class
of every split with its real number of images and of ImageNet validation images, real-style
file names, ``noisy_imagewoof.csv``, packed as ``tar czf`` packs them), the weights path
(``keras.applications.ResNet50(weights=<file>)`` on files laid out as Keras' published ones),
and the Colab setup cell (a stand-in ``google.colab`` module, ``pip install`` of this checkout,
results kept on a stand-in Google Drive).

What is not: the pictures are small generated patterns and the weights are an untrained
network's, so every number is meaningless, and every page must say so. The only overrides are
sizes: image size, epochs, images per class.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import stand_ins  # tests/ is on sys.path under pytest

import woofhelpers as wh
from tools import refresh

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = refresh.book_order()
SIZES = {"WOOF_IMAGE_SIZE_PX": "32", "WOOF_EPOCHS": "1", "WOOF_MAX_IMAGES_PER_CLASS": "2"}

COLAB_STAND_IN = '''"""Stand-in for Colab's google.colab, for the offline rehearsal: only its presence matters."""
'''
# google.colab.files.upload(), as the capstone chapter calls it: Colab saves the chosen file
# in the working folder and returns {name: bytes}; the stand-in "chooses" a generated photo.
COLAB_FILES_STAND_IN = '''"""Stand-in for google.colab.files: upload() returns one generated photo."""
import io
from pathlib import Path

from PIL import Image


def upload():
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), (180, 140, 90)).save(buffer, "JPEG")
    Path("uploaded-photo.jpg").write_bytes(buffer.getvalue())
    return {"uploaded-photo.jpg": buffer.getvalue()}
'''
# Loaded at interpreter start (sitecustomize), as Colab's kernel has google.colab loaded.
SITECUSTOMIZE = "import google.colab  # noqa: F401 (the rehearsal's stand-in)\n"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """Mirror, weights, stand-in Colab and environment; the HTTP server runs for the module."""
    top = tmp_path_factory.mktemp("rehearsal")
    mirror = top / "mirror"
    for version in wh.catalog.VERSIONS:
        root = wh.synthetic.replica(top / "replicas" / version, version, shortest_side_px=32)
        wh.synthetic.pack(root, mirror / f"{version}.tgz", top_folder=version)
    shutil.rmtree(top / "replicas")
    weights = stand_ins.resnet50_weight_files(top / "weights")

    colab = top / "colab"
    (colab / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: a namespace package
    (colab / "google" / "colab" / "__init__.py").write_text(COLAB_STAND_IN)
    (colab / "google" / "colab" / "files.py").write_text(COLAB_FILES_STAND_IN)
    (colab / "sitecustomize.py").write_text(SITECUSTOMIZE)
    # What the setup cell's pip installs: this checkout's package, copied (pip builds in the
    # source folder), into a folder of its own (PIP_TARGET) so the test's environment is untouched.
    source = top / "source"
    shutil.copytree(REPO / "woofhelpers", source / "woofhelpers", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)

    handler = functools.partial(_QuietHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    mirror_url = f"http://127.0.0.1:{server.server_address[1]}/"
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("WOOF_", "PIP_"))}
    environment.update(
        SIZES,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONHASHSEED="0",
        PYTHONPATH=os.pathsep.join(filter(None, [str(colab), os.environ.get("PYTHONPATH")])),
        WOOF_ARCHIVE_MIRROR=mirror_url,
        WOOF_WEIGHTS=str(weights),
        WOOF_DATA_DIR=str(top / "data"),
        WOOF_DRIVE_DIR=str(top / "drive"),
        WOOF_INSTALL_SPEC=str(source),
        PIP_TARGET=str(top / "pip-target"),
        PIP_NO_DEPS="1",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="false",  # pip reads this variable inverted: "false" turns isolation off
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    (top / "drive").mkdir()
    try:
        yield {"top": top, "env": environment, "mirror": mirror_url, "weights": weights}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _outputs(cell) -> str:
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_runs_in_the_full_profile_and_says_what_made_its_outputs(rehearsal, md):
    try:
        notebook = refresh.execute(md, rehearsal["env"], timeout_s=900)  # raises, naming the cell, if one fails
    finally:  # the stand-in upload lands in the working folder, as Colab's does: not in the checkout
        (md.parent / "uploaded-photo.jpg").unlink(missing_ok=True)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    banner = _outputs(code[0])
    assert "Profile: full" in banner  # selected by the chapter's own Colab branch
    assert f"the real Imagewoof archive 'imagewoof-320', from\n          {rehearsal['mirror']}" in banner
    assert str(rehearsal["weights"]) in banner and "NOT ImageNet's: stand-in weights" in banner
    assert "REHEARSAL" in banner and "NOT real results" in banner
    drive_results = rehearsal["top"] / "drive" / "woof" / "results"
    assert f"results: kept on Google Drive, {drive_results}" in banner
    # The Colab branch really ran pip on this checkout.
    assert (rehearsal["top"] / "pip-target" / "woofhelpers" / "__init__.py").is_file()
    everything = "\n".join(_outputs(c) for c in code)
    assert "SMOKE RUN" not in everything, f"{md.stem} calls a full-profile run a smoke run"

    data = rehearsal["top"] / "data"
    # Real data means real data: nothing generated is ever written into the data folder.
    generated = [p.name for p in data.glob("*synthetic*")]
    assert not generated, f"{md.stem} wrote generated data into the real data folder: {generated}"
    if md.stem == "dataset":
        for version in wh.catalog.VERSIONS:
            marker = json.loads((data / version / wh.data.VERIFIED_MARKER).read_text())
            assert marker["url"] == f"{rehearsal['mirror']}{version}.tgz"  # the URL actually used
        assert f"v2 from: {rehearsal['mirror']}imagewoof2-320.tgz" in everything
        # The time estimates assume the real v1 splits' sizes: check them on the v1-shaped data.
        for name, sizes in wh.runtime.FULL_SPLIT_SIZES.items():
            assert wh.splits.make(name, data / "imagewoof-320").sizes() == sizes, name
    if md.stem == "capstone":  # the learner's upload, through Colab's button, is what it classified
        assert "uploaded-photo.jpg (120 x 90 px)" in everything
        assert "the model: your run of the corrected recipe" in everything
    if md.stem.startswith("trial"):
        assert any(drive_results.glob("full/*/result.json")), "trial results should be kept on the Drive"


def test_a_failed_install_stops_the_notebook_with_a_message(rehearsal, tmp_path):
    """A wrong or unreachable repository: the setup cell stops, naming what it tried, instead
    of going on to a ModuleNotFoundError."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    chapter = jupytext.read(CHAPTERS[0])
    chapter.cells = [c for c in chapter.cells if c.cell_type == "code"][:1]
    chapter.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    missing = tmp_path / "no-such-repository"
    environment = dict(rehearsal["env"], WOOF_INSTALL_SPEC=str(missing))
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("WOOF_", "PIP_"))]:
            patch.delenv(name)
        for name, value in environment.items():
            patch.setenv(name, value)
        with pytest.raises(CellExecutionError) as raised:
            NotebookClient(chapter, timeout=300, kernel_name="python3").execute()
    message = str(raised.value)
    assert "SystemExit" in message and f"Could not install '{missing}'" in message
    assert "WOOF_INSTALL_SPEC" in message
    assert "ModuleNotFoundError" not in message


def test_the_setup_cells_and_the_launch_buttons_use_the_repository_of_config():
    """One place holds the repository: _config.yml. Every chapter's setup cell installs from it,
    and the Colab buttons Jupyter Book makes from it open the chapter's notebook there."""
    import yaml

    config = yaml.safe_load((REPO / "_config.yml").read_text())
    url = config["repository"]["url"]
    assert url.startswith("https://github.com/")
    for md in CHAPTERS:
        text = md.read_text()
        assert f'repository = "git+{url}"' in text, f"{md.name}'s setup cell installs from elsewhere"
        installs = text.count("git+https://") + text.count("colab.research.google.com/github/")
        assert installs == text.count(f"git+{url}"), f"{md.name} installs from, or opens, another repository"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
