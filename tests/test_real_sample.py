"""The pipeline on a few real Imagewoof photographs, where this machine has them.

/work/shared/data/imagewoof-real-sample exists only in the course's development
environment, so this test skips elsewhere. Everything it checks is also checked on
generated data in test_pipeline.py and test_data.py; this only confirms that real
JPEGs (including real grayscale ones) go through the same way.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import woofhelpers as wh

SAMPLE = Path("/work/shared/data/imagewoof-real-sample")


@pytest.fixture
def real_sample(tmp_path):
    if not (SAMPLE / "train").is_dir():
        pytest.skip(f"{SAMPLE} is not here: it exists only in the course's development environment")
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample"))


def test_real_photographs_pass_the_layout_check_scan_and_decode(real_sample, tf):
    found = wh.data.list_images(real_sample)
    files = {
        split: [p.relative_to(real_sample).as_posix() for w in wh.labels.WNIDS for p in found[split][w]]
        for split in found
    }
    split = wh.splits.Split(
        "sample", real_sample, {"train": tuple(files["train"]), "validation": tuple(files["val"]), "test": ()}
    )

    cleaned, report = wh.pipeline.scan(split, verbose=False)
    assert report.unreadable == {}
    assert cleaned.sizes() == split.sizes()

    modes = {p: Image.open(real_sample / p).mode for p in files["train"] + files["val"]}
    assert "L" in modes.values(), "the sample should hold real grayscale files"
    for path in [p for p, mode in modes.items() if mode == "L"]:
        decoded = wh.pipeline.decode(tf.io.read_file(str(real_sample / path))).numpy()
        assert decoded.shape[2] == 3, path

    for part in ("train", "validation"):
        ds = wh.pipeline.dataset(cleaned, part, image_size_px=64, batch_size=8)
        labels = np.concatenate([y for _, y in ds.as_numpy_iterator()])
        assert sorted(labels.tolist()) == sorted(cleaned.labels(part).tolist())
