"""wh.data: fetch() against a local HTTP server, and the layout checks.

``wh.catalog.VERSIONS`` is replaced by a small version whose counts match a generated
archive (fixtures ``small_version`` and ``small_archive`` in conftest.py). After
every failure the data folder must hold nothing: no half-extracted dataset, no
archive, no temporary or staging file that a later run could mistake for data.
"""

import io
import json
import os
import shutil
import tarfile

import pytest

import woofhelpers as wh

NAME = "imagewoof-320"


def entries(folder):
    """Everything in ``folder``, hidden entries included."""
    return sorted(os.listdir(folder))


def serve(server, archive_bytes, **route):
    """Serve ``archive_bytes`` as /imagewoof-320.tgz and return its URL."""
    return server.serve(f"/{NAME}.tgz", archive_bytes, **route)


# --- success --------------------------------------------------------------------------------


def test_fetch_downloads_extracts_verifies_and_marks(
    tmp_path, archive_server, small_archive, small_version, small_dataset
):
    url = serve(archive_server, small_archive.read_bytes())
    target = wh.data.fetch(NAME, tmp_path, url=url, progress=False)

    assert target == tmp_path / NAME
    assert entries(tmp_path) == [NAME]  # the archive is deleted, no staging left
    assert archive_server.requests == [f"/{NAME}.tgz"]
    counts = wh.data.count_images(target)
    assert {split: sum(c.values()) for split, c in counts.items()} == small_version.counts
    assert counts == wh.data.count_images(small_dataset)
    marker = json.loads((target / wh.data.VERIFIED_MARKER).read_text())
    assert marker["version"] == NAME and marker["counts"] == counts
    # The files are the generated ones, byte for byte.
    some = next((small_dataset / "val").rglob("*.JPEG")).relative_to(small_dataset)
    assert (target / some).read_bytes() == (small_dataset / some).read_bytes()


def test_second_fetch_makes_no_request(tmp_path, archive_server, small_archive, small_version):
    url = serve(archive_server, small_archive.read_bytes())
    first = wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    second = wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert first == second
    assert len(archive_server.requests) == 1


def test_a_present_but_unmarked_folder_is_verified_and_marked_without_download(
    tmp_path, archive_server, small_dataset, small_version
):
    shutil.copytree(small_dataset, tmp_path / NAME)
    target = wh.data.fetch(NAME, tmp_path, url=archive_server.url("/anything.tgz"), progress=False)
    assert archive_server.requests == []
    assert (target / wh.data.VERIFIED_MARKER).is_file()


def test_a_present_folder_with_wrong_counts_is_refused_not_marked(
    tmp_path, archive_server, small_dataset, small_version
):
    shutil.copytree(small_dataset, tmp_path / NAME)
    next((tmp_path / NAME / "train").rglob("*.JPEG")).unlink()
    with pytest.raises(ValueError, match=f"holds {small_version.counts['train'] - 1} images"):
        wh.data.fetch(NAME, tmp_path, url=archive_server.url("/x.tgz"), progress=False)
    assert not (tmp_path / NAME / wh.data.VERIFIED_MARKER).exists()
    assert archive_server.requests == []


def test_stale_staging_folders_of_a_killed_run_are_removed(tmp_path, archive_server, small_archive, small_version):
    stale = tmp_path / f".{NAME}-extracting-abc123"
    (stale / NAME / "train").mkdir(parents=True)
    url = serve(archive_server, small_archive.read_bytes())
    wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert entries(tmp_path) == [NAME]


def test_fetch_uses_the_profiles_data_dir_by_default_and_needs_a_folder(
    tmp_path, archive_server, small_archive, small_version, clean_woof_env
):
    profile = wh.profiles.load("smoke", data_dir=tmp_path / "profile-data")
    url = serve(archive_server, small_archive.read_bytes())
    assert wh.data.fetch(NAME, url=url, profile=profile, progress=False) == tmp_path / "profile-data" / NAME
    with pytest.raises(ValueError, match="pass data_dir=, or profile="):
        wh.data.fetch(NAME, url=url, progress=False)


def test_fetch_of_an_unknown_version_lists_the_versions(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        wh.data.fetch("imagewoof-160", tmp_path)
    for name in wh.catalog.VERSIONS:
        assert name in str(excinfo.value)
    assert entries(tmp_path) == []


# --- download failures --------------------------------------------------------------------------


def assert_teaches_the_way_out(message, url, data_dir):
    assert url in message
    assert str(data_dir) in message
    assert "WOOF_PROFILE=smoke" in message


def test_http_404_raises_download_error_and_keeps_nothing(tmp_path, archive_server, small_version):
    url = archive_server.url("/moved.tgz")
    with pytest.raises(wh.data.DownloadError) as excinfo:
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert "404" in str(excinfo.value)
    assert "url=" in str(excinfo.value)  # says how to pass a new address
    assert_teaches_the_way_out(str(excinfo.value), url, tmp_path)
    assert entries(tmp_path) == []


def test_connection_refused_raises_download_error_and_keeps_nothing(tmp_path, free_port, small_version):
    url = f"http://127.0.0.1:{free_port}/{NAME}.tgz"
    with pytest.raises(wh.data.DownloadError) as excinfo:
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert_teaches_the_way_out(str(excinfo.value), url, tmp_path)
    assert isinstance(excinfo.value, ConnectionError)
    assert entries(tmp_path) == []


def test_connection_cut_mid_transfer_raises_download_error_and_keeps_nothing(
    tmp_path, archive_server, small_archive, small_version
):
    url = serve(archive_server, small_archive.read_bytes(), cut_short_by=100_000)
    with pytest.raises(wh.data.DownloadError) as excinfo:
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert_teaches_the_way_out(str(excinfo.value), url, tmp_path)
    assert archive_server.requests == [f"/{NAME}.tgz"]  # it did connect and start
    assert entries(tmp_path) == []


def test_after_a_failed_download_a_retry_succeeds(tmp_path, archive_server, small_archive, small_version):
    url = serve(archive_server, small_archive.read_bytes(), cut_short_by=100_000)
    with pytest.raises(wh.data.DownloadError):
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    url = serve(archive_server, small_archive.read_bytes())
    assert (wh.data.fetch(NAME, tmp_path, url=url, progress=False) / wh.data.VERIFIED_MARKER).is_file()


def test_an_interrupted_extraction_keeps_nothing(tmp_path, archive_server, small_archive, small_version, monkeypatch):
    real_extract = wh.data._extract

    def extract_then_interrupt(archive, into, url):
        real_extract(archive, into, url)
        assert any(into.rglob("*.JPEG"))  # files were written before the interruption
        raise KeyboardInterrupt("simulated Ctrl-C while extracting")

    monkeypatch.setattr(wh.data, "_extract", extract_then_interrupt)
    url = serve(archive_server, small_archive.read_bytes())
    with pytest.raises(KeyboardInterrupt):
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert entries(tmp_path) == []


# --- wrong content ----------------------------------------------------------------------------


def test_an_archive_with_missing_images_is_refused_naming_both_counts(
    tmp_path, archive_server, small_dataset, small_version, copy_dataset
):
    partial = copy_dataset(small_dataset, "partial")
    for wnid in wh.labels.WNIDS[:3]:  # one image from each of three classes
        next((partial / "train" / wnid).iterdir()).unlink()
    archive = wh.synthetic.pack(partial, tmp_path / "archives" / f"{NAME}.tgz")
    data_dir = tmp_path / "data"
    url = serve(archive_server, archive.read_bytes())
    with pytest.raises(ValueError) as excinfo:
        wh.data.fetch(NAME, data_dir, url=url, progress=False)
    want = small_version.counts["train"]
    assert f"holds {want - 3} images" in str(excinfo.value)
    assert f"has {want}" in str(excinfo.value)
    assert entries(data_dir) == []


def test_an_archive_with_another_top_folder_is_refused(tmp_path, archive_server, small_dataset, small_version):
    archive = wh.synthetic.pack(small_dataset, tmp_path / "archives" / "v2.tgz", top_folder="imagewoof2-320")
    data_dir = tmp_path / "data"
    url = serve(archive_server, archive.read_bytes())
    with pytest.raises(ValueError, match="imagewoof2-320") as excinfo:
        wh.data.fetch(NAME, data_dir, url=url, progress=False)
    assert f"{NAME}/" in str(excinfo.value)
    assert entries(data_dir) == []


def test_a_file_that_is_not_an_archive_is_refused_and_deleted(tmp_path, archive_server, small_version):
    url = serve(archive_server, b"<html>Access denied</html>")
    with pytest.raises(wh.data.DownloadError, match=f"{NAME}.tgz \\(from {url}\\) is damaged"):
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    assert entries(tmp_path) == []


@pytest.mark.parametrize("cut", ["half", "1 MB short"])
def test_a_truncated_archive_is_refused_naming_the_archive_the_url_and_the_fix(
    tmp_path, archive_server, small_archive, small_version, cut
):
    """The server sends a complete answer (so the download succeeds) of a truncated file: the
    gzip stream ends early. Before, that surfaced as a bare EOFError."""
    whole = small_archive.read_bytes()
    url = serve(archive_server, whole[: len(whole) // 2] if cut == "half" else whole[: max(1, len(whole) - 2**20)])
    with pytest.raises(wh.data.DownloadError) as raised:
        wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    message = str(raised.value)
    assert f"{NAME}.tgz" in message and url in message and "Run the same cell again" in message
    assert isinstance(raised.value.__cause__, (EOFError, tarfile.TarError, OSError))
    assert entries(tmp_path) == []


# --- mirrors: the archive from another URL or a local folder ------------------------------------


def test_archive_url_is_fast_ais_unless_the_profile_names_a_mirror(clean_woof_env, tmp_path):
    assert wh.catalog.archive_url(NAME, wh.profiles.load("full").archive_mirror) == wh.catalog.VERSIONS[NAME].url
    clean_woof_env.setenv("WOOF_ARCHIVE_MIRROR", "http://127.0.0.1:8000/woof/")
    assert (
        wh.catalog.archive_url(NAME, wh.profiles.load("full").archive_mirror)
        == f"http://127.0.0.1:8000/woof/{NAME}.tgz"
    )
    clean_woof_env.setenv("WOOF_ARCHIVE_MIRROR", str(tmp_path))
    assert wh.catalog.archive_url("imagewoof2-320", wh.profiles.load("full").archive_mirror) == str(
        tmp_path / "imagewoof2-320.tgz"
    )
    clean_woof_env.setenv("WOOF_ARCHIVE_MIRROR", f"file://{tmp_path}")
    assert wh.catalog.archive_url(NAME, wh.profiles.load("full").archive_mirror) == str(tmp_path / f"{NAME}.tgz")


def test_fetch_from_an_http_mirror_records_the_url_actually_used(
    tmp_path, archive_server, small_archive, small_version, clean_woof_env
):
    serve(archive_server, small_archive.read_bytes())
    clean_woof_env.setenv("WOOF_ARCHIVE_MIRROR", archive_server.url("/"))
    profile = wh.profiles.load("full", data_dir=tmp_path / "data")
    target = wh.data.dataset_root(profile)
    marker = json.loads((target / wh.data.VERIFIED_MARKER).read_text())
    assert marker["url"] == archive_server.url(f"/{NAME}.tgz") != small_version.url
    assert wh.data.source_of(target) == marker["url"]
    assert archive_server.requests == [f"/{NAME}.tgz"]


def test_fetch_from_a_local_mirror_folder_reads_the_archive_in_place_and_keeps_it(
    tmp_path, small_archive, small_version, clean_woof_env
):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(small_archive, mirror / f"{NAME}.tgz")
    clean_woof_env.setenv("WOOF_ARCHIVE_MIRROR", str(mirror))
    target = wh.data.fetch(NAME, profile=wh.profiles.load("full", data_dir=tmp_path / "data"), progress=False)
    assert (mirror / f"{NAME}.tgz").read_bytes() == small_archive.read_bytes()  # never deleted
    assert wh.data.source_of(target) == str(mirror / f"{NAME}.tgz")
    assert entries(tmp_path / "data") == [NAME]


def test_a_local_mirror_without_the_archive_names_the_missing_file(tmp_path, small_version, clean_woof_env):
    clean_woof_env.setenv("WOOF_ARCHIVE_MIRROR", str(tmp_path))
    with pytest.raises(wh.data.DownloadError, match=f"no archive {tmp_path / NAME}.tgz"):
        wh.data.fetch(NAME, profile=wh.profiles.load("full", data_dir=tmp_path / "data"), progress=False)


# --- malicious archives -------------------------------------------------------------------------


def _archive_with(small_archive, *extra):
    """The good archive's members, plus ``extra`` (TarInfo, bytes or None) members.

    For each extra member the good archive loses one image, so the image counts
    still match: only the member checks can stop the archive.
    """
    buffer = io.BytesIO()
    with tarfile.open(small_archive) as good, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        images = [m for m in good.getmembers() if m.name.endswith(".JPEG")]
        dropped = {m.name for m in images[: len(extra)]}
        for member in good.getmembers():
            if member.name not in dropped:
                tar.addfile(member, good.extractfile(member) if member.isfile() else None)
        for info, content in extra:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def _file(name, content=b"escaped!"):
    return tarfile.TarInfo(name), content


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info, None


CLASS_DIR = f"{NAME}/train/{wh.labels.WNIDS[0]}"


def _attacks(escape):
    """Each case: the extra members, and the name of the one that must be refused.
    Extracted naively, each would write or link outside the data folder, most of them
    to ``escape``, a file beside it."""
    return {
        "absolute path": ([_file(str(escape))], str(escape)),
        "dot-dot path": ([_file(f"{NAME}/../../../escaped.JPEG")], f"{NAME}/../../../escaped.JPEG"),
        "symlink out of the archive": (
            [_link(f"{CLASS_DIR}/link", "../../../../.."), _file(f"{CLASS_DIR}/link/escaped.JPEG")],
            f"{CLASS_DIR}/link",
        ),
        "symlink to an absolute path": ([_link(f"{CLASS_DIR}/x.JPEG", str(escape))], f"{CLASS_DIR}/x.JPEG"),
        # Inside the staging folder while extracting, but once the dataset is moved into
        # place this link would point at <data_dir>/escaped.JPEG, outside the dataset.
        "symlink out of the dataset folder": (
            [_file("escaped.JPEG"), _link(f"{CLASS_DIR}/x.JPEG", "../../../escaped.JPEG")],
            f"{CLASS_DIR}/x.JPEG",
        ),
        "hard link out": ([_link(f"{CLASS_DIR}/h.JPEG", "../../escaped.JPEG", tarfile.LNKTYPE)], f"{CLASS_DIR}/h.JPEG"),
        "device file": ([_device(f"{CLASS_DIR}/dev.JPEG")], f"{CLASS_DIR}/dev.JPEG"),
    }


@pytest.mark.parametrize("case", list(_attacks("/escape")))
def test_unsafe_archive_members_are_refused_and_nothing_escapes(
    tmp_path, archive_server, small_archive, small_version, case
):
    data_dir = tmp_path / "data"
    escape = tmp_path / "escaped.JPEG"
    members, bad_name = _attacks(escape)[case]
    url = serve(archive_server, _archive_with(small_archive, *members))

    with pytest.raises(ValueError) as excinfo:
        wh.data.fetch(NAME, data_dir, url=url, progress=False)

    assert repr(bad_name) in str(excinfo.value)
    assert "unsafe" in str(excinfo.value)
    assert entries(data_dir) == []
    assert not escape.exists() and not escape.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_symlink_that_stays_inside_the_dataset_folder_is_accepted(
    tmp_path, archive_server, small_archive, small_version
):
    # Only links out of the dataset are refused; a link to another image of the archive is fine.
    with tarfile.open(small_archive) as tar:
        # The last image of the class: _archive_with drops the first images of the archive.
        other = [m.name for m in tar.getmembers() if m.name.startswith(f"{CLASS_DIR}/") and m.isfile()][-1]
    url = serve(archive_server, _archive_with(small_archive, _link(f"{CLASS_DIR}/again.JPEG", other.split("/")[-1])))
    target = wh.data.fetch(NAME, tmp_path, url=url, progress=False)
    link = target / "train" / wh.labels.WNIDS[0] / "again.JPEG"
    assert link.is_symlink() and link.resolve() == target / other.split("/", 1)[1]


# --- layout checks --------------------------------------------------------------------------------


def test_list_images_returns_every_image_by_split_and_class_sorted(small_dataset):
    found = wh.data.list_images(small_dataset)
    assert list(found) == ["train", "val"]
    for split, by_class in found.items():
        assert list(by_class) == list(wh.labels.WNIDS)
        for wnid, paths in by_class.items():
            assert paths == sorted(paths)
            assert all(p.parent == small_dataset / split / wnid for p in paths)
    listed = {p for by_class in found.values() for paths in by_class.values() for p in paths}
    assert listed == set(small_dataset.glob("*/*/*.JPEG"))


def test_list_images_ignores_hidden_entries(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    (root / "train" / ".DS_Store").write_bytes(b"\0")
    (root / "val" / wh.labels.WNIDS[0] / ".ipynb_checkpoints").mkdir()
    assert wh.data.count_images(root) == wh.data.count_images(small_dataset)


def test_a_missing_split_folder_says_how_to_get_the_data(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError) as excinfo:
        wh.data.list_images(root)
    assert "val/" in str(excinfo.value)
    assert "wh.data.fetch()" in str(excinfo.value) and "WOOF_PROFILE=smoke" in str(excinfo.value)


def test_a_missing_class_folder_is_named(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    shutil.rmtree(root / "train" / "n02115641")
    with pytest.raises(ValueError, match="n02115641"):
        wh.data.list_images(root)


def test_a_non_image_file_in_a_class_folder_is_named(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    (root / "train" / wh.labels.WNIDS[3] / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        wh.data.list_images(root)


def test_verify_names_both_counts_when_they_differ(small_dataset):
    train = len(list((small_dataset / "train").glob("*/*.JPEG")))
    with pytest.raises(ValueError) as excinfo:
        wh.data.verify(small_dataset, {"train": train + 1})
    assert f"holds {train} images" in str(excinfo.value) and f"has {train + 1}" in str(excinfo.value)
    assert wh.data.verify(small_dataset, wh.synthetic.expected_counts(small_dataset)) == wh.data.count_images(
        small_dataset
    )


def test_is_imagenet_val_tells_the_two_kinds_of_file_apart():
    assert wh.catalog.is_imagenet_val("val/n02086240/ILSVRC2012_val_00000293.JPEG")
    assert not wh.catalog.is_imagenet_val("train/n02086240/n02086240_1234.JPEG")


def test_dataset_root_generates_the_smoke_dataset_once(tmp_path, clean_woof_env):
    profile = wh.profiles.load(
        "smoke",
        data_dir=tmp_path,
        synthetic_train_per_class=2,
        synthetic_val_per_class=1,
        synthetic_shortest_side_px=16,
    )
    root = wh.data.dataset_root(profile)
    assert root.parent == tmp_path
    assert wh.synthetic.expected_counts(root) == {"train": 20, "val": 10}
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert wh.data.dataset_root(profile) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes


def test_dataset_root_fetches_in_a_real_data_profile(
    tmp_path, archive_server, small_archive, small_version, clean_woof_env, monkeypatch
):
    url = serve(archive_server, small_archive.read_bytes())
    monkeypatch.setitem(wh.catalog.VERSIONS, NAME, wh.catalog.Version(NAME, url, small_version.counts, "test"))
    profile = wh.profiles.load("full", data_dir=tmp_path)
    assert wh.data.dataset_root(profile) == tmp_path / NAME
    assert len(archive_server.requests) == 1


def test_describe_images_has_one_row_per_file_with_its_size_and_mode(small_dataset):
    table = wh.data.describe_images(small_dataset)
    files = sorted(small_dataset.glob("*/*/*.JPEG"))
    assert len(table) == len(files)
    row = table[table["file"] == files[0].name].iloc[0]
    from PIL import Image

    with Image.open(files[0]) as image:
        assert (row["width"], row["height"], row["mode"]) == (image.width, image.height, image.mode)
    assert row["split"] == files[0].parts[-3] and row["wnid"] == files[0].parent.name
    assert set(table["mode"]) == {"RGB", "L"}
    assert table["imagenet_val"].tolist() == [f.startswith("ILSVRC2012_val_") for f in table["file"]]


def test_describe_images_marks_an_unreadable_file_instead_of_failing(small_dataset, copy_dataset):
    root = copy_dataset(small_dataset)
    (root / "train" / wh.labels.WNIDS[0] / "broken.JPEG").write_bytes(b"not an image")
    table = wh.data.describe_images(root)
    assert table[table["file"] == "broken.JPEG"]["mode"].tolist() == ["unreadable"]


def test_replacing_renames_a_whole_write_into_place_and_leaves_nothing_after_a_failed_one(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), wh.io.replacing(target, ".json") as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old"  # the reader still sees the old file, whole
    with wh.io.replacing(target, ".json") as tmp:
        assert tmp.parent == tmp_path and ".tmp-" in tmp.name and tmp.name.endswith(".json")
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary left either time


def test_a_complete_dataset_on_a_read_only_mount_is_verified_and_read_without_a_marker(
    tmp_path, small_dataset, small_version, monkeypatch
):
    """Reading a complete dataset must not need to write into it: the marker is skipped."""
    import errno

    shutil.copytree(small_dataset, tmp_path / NAME)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(wh.data, "_write_marker", read_only)
    assert wh.data.fetch(NAME, tmp_path, url="http://127.0.0.1:9/never.tgz", progress=False) == tmp_path / NAME
    assert not (tmp_path / NAME / wh.data.VERIFIED_MARKER).exists()
