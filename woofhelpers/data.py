"""Getting Imagewoof onto disk, and checking that what is there is complete.

``fetch()`` downloads a real archive from fast.ai's bucket (with a progress bar,
through ``pooch``), or from the mirror the profile names (``WOOF_ARCHIVE_MIRROR``: a base
URL, or a local folder whose archive is read in place and never deleted), extracts it
safely, checks its content and only then moves it into place. ``dataset_root()`` gives
the folder a profile trains on: the real archive in the full profile, a generated one in
the smoke profile.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from woofhelpers import catalog, io, labels, profiles

if TYPE_CHECKING:
    import pandas as pd

VERIFIED_MARKER = ".woof-verified.json"


class DownloadError(ConnectionError):
    """The archive could not be downloaded, or what arrived is damaged; the message names
    the archive and its URL and says what to do instead."""


def _is_local(url: str) -> bool:
    return "://" not in url


def list_images(root: str | Path) -> dict[str, dict[str, list[Path]]]:
    """All image files under ``root``, as ``{split: {wnid: [paths]}}``, sorted by name.

    Checks the layout on the way and raises ``ValueError`` naming the problem and the
    fix: a missing ``train/`` or ``val/``, a folder that is not one of the ten wnids,
    a missing or empty class folder, or a file that is not an image by its name.
    Hidden entries (``.DS_Store``, ``.ipynb_checkpoints``) are ignored.
    Whether each file decodes is checked by :func:`woofhelpers.pipeline.scan`.
    """
    root = Path(root)
    found: dict[str, dict[str, list[Path]]] = {}
    for split in catalog.SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(
                f"no {split}/ folder under {root}; run wh.data.fetch() for the real data,"
                " or set WOOF_PROFILE=smoke to generate an Imagewoof-shaped dataset"
            )
        entries = sorted(p for p in split_dir.iterdir() if not p.name.startswith("."))
        unknown = [p.name for p in entries if p.name not in labels.WNIDS]
        if unknown:
            raise ValueError(
                f"{split_dir} holds {unknown}, which are not Imagewoof class folders;"
                f" the ten wnids are {', '.join(labels.WNIDS)}. Move the extra entries out."
            )
        found[split] = {}
        for wnid in labels.WNIDS:
            folder = split_dir / wnid
            if not folder.is_dir():
                raise ValueError(f"class folder {folder} is missing; the dataset is incomplete, fetch it again")
            files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            strays = [p.name for p in files if p.suffix.lower() not in catalog.IMAGE_SUFFIXES or not p.is_file()]
            if strays:
                raise ValueError(f"{folder} holds entries that are not image files: {strays}; move them out")
            if not files:
                raise ValueError(f"class folder {folder} is empty: {labels.breed(wnid).name} would have no images")
            found[split][wnid] = files
    return found


def count_images(root: str | Path) -> dict[str, dict[str, int]]:
    """Images per split and class: ``{split: {wnid: count}}``."""
    return {split: {w: len(f) for w, f in by_class.items()} for split, by_class in list_images(root).items()}


def verify(root: str | Path, expected: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    """Check the layout under ``root`` and, when given, the number of images per split.

    Returns the per-class counts. Raises ``ValueError`` when a split's count differs
    from ``expected``, naming both numbers.
    """
    counts = count_images(root)
    if expected:
        for split, want in expected.items():
            got = sum(counts[split].values())
            if got != want:
                raise ValueError(
                    f"{Path(root) / split} holds {got} images, but this Imagewoof version has {want};"
                    " the archive is incomplete or is not the version asked for"
                )
    return counts


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that would write outside the folder they are extracted into."""
    name = PurePosixPath(member.name)
    problem = None
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        problem = "it has an absolute path"
    elif ".." in name.parts:
        problem = "its path contains '..'"
    elif member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        resolved = (name.parent / target) if member.issym() else target
        resolved = PurePosixPath(os.path.normpath(resolved.as_posix()))
        # A symbolic link must also stay inside its own top folder: only that folder is
        # moved into place, so a link out of it would point outside the dataset.
        leaves_top = member.issym() and resolved.parts[:1] != name.parts[:1]
        if target.is_absolute() or ".." in resolved.parts or leaves_top:
            problem = f"it links to {member.linkname!r}, outside the archive's folder"
    elif not (member.isfile() or member.isdir()):
        problem = "it is a device, pipe or other special file"
    if problem:
        raise ValueError(f"refusing to extract {archive.name}: member {member.name!r} is unsafe because {problem}")


def _extract(archive: Path, into: Path, url: str) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive)
            # The "data" filter repeats the checks above inside the standard library.
            tar.extractall(into, members=members, filter="data")
    except (EOFError, tarfile.ReadError, zlib.error, OSError) as exc:
        # EOFError: "Compressed file ended before the end-of-stream marker was reached".
        where = "the file" if _is_local(url) else "the server's copy"
        raise DownloadError(
            f"{archive.name} (from {url}) is damaged or incomplete: {type(exc).__name__}: {exc}."
            f" Nothing was kept. Run the same cell again to download it anew; if it fails again,"
            f" {where} is broken: replace it or point WOOF_ARCHIVE_MIRROR elsewhere (unset it for"
            " fast.ai's own copy), or set WOOF_PROFILE=smoke to run on generated data."
        ) from exc


def _download(url: str, folder: Path, filename: str, progress: bool) -> Path:
    import pooch
    import requests

    try:
        # pooch writes to a temporary file beside the target and renames it only
        # once the transfer completed, so an interrupted download leaves nothing.
        return Path(pooch.retrieve(url, known_hash=None, fname=filename, path=folder, progressbar=progress))
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(
            f"downloading {url} failed with HTTP {status}; nothing was saved in {folder}."
            " If the archive moved, set WOOF_ARCHIVE_MIRROR to a base URL or folder that holds it"
            " (or pass fetch(url=...)); to run the course without the real data set WOOF_PROFILE=smoke."
        ) from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DownloadError(
            f"could not download {url} into {folder} ({type(exc).__name__}: {exc})."
            " Check the network connection and try again: nothing partial was kept."
            " To run the course offline on generated data, set WOOF_PROFILE=smoke"
            " (in a chapter: profile = wh.setup('smoke'))."
        ) from exc


def fetch(
    version: str = catalog.DEFAULT_VERSION,
    data_dir: str | Path | None = None,
    *,
    url: str | None = None,
    profile: profiles.Profile | None = None,
    progress: bool = True,
) -> Path:
    """Download, extract and verify an Imagewoof archive; return its folder.

    ``version`` is ``"imagewoof-320"`` (v1, the default: the original exercise's) or
    ``"imagewoof2-320"`` (v2). The folder is ``<data_dir>/<version>``, ``data_dir``
    defaulting to ``profile``'s (without a profile, pass ``data_dir``). The archive comes
    from ``url``, default :func:`woofhelpers.catalog.archive_url` (fast.ai's, or
    ``profile``'s mirror); a local path is read in place and kept. When the folder already holds a verified copy
    nothing is downloaded. The archive is extracted into a hidden folder beside the
    target, checked (ten class folders in ``train/`` and ``val/``, the published image
    count of each split), and only then renamed into place; a downloaded archive is
    deleted after. A marker file in the folder records the version, the URL actually
    used and the counts. Raises :class:`DownloadError` when the download fails or the
    archive is damaged (truncated, not a gzip tar), and ``ValueError`` when it holds
    unsafe members or the wrong content; either way nothing is kept.
    """
    spec = catalog.version(version)
    if data_dir is None and profile is None:
        raise ValueError("fetch() needs a folder: pass data_dir=, or profile= (its data_dir)")
    data_dir = Path(data_dir) if data_dir is not None else profile.data_dir
    url = url or catalog.archive_url(version, profile.archive_mirror if profile else None)
    target = data_dir / spec.name
    marker = target / VERIFIED_MARKER
    if marker.is_file():
        return target
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(
            f"cannot create the data folder {data_dir} ({exc.strerror}); set WOOF_DATA_DIR to a folder you can write"
        ) from exc
    if target.exists():
        # Present but not verified: extracted by hand, or a run stopped just before
        # writing the marker. Check it rather than download again.
        counts = verify(target, spec.counts)
        try:
            _write_marker(marker, spec, counts, "already on disk (not downloaded by fetch)")
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            # A complete dataset on a read-only mount: verified, and read as it is (the
            # marker only saves verifying again next time).
        return target
    for stale in data_dir.glob(f".{spec.name}-extracting-*"):
        shutil.rmtree(stale, ignore_errors=True)

    local = _is_local(url)
    if local:
        archive = Path(url).expanduser()
        if not archive.is_file():
            raise DownloadError(
                f"no archive {archive}: WOOF_ARCHIVE_MIRROR names a folder that should hold {spec.name}.tgz;"
                " put the file there, or unset WOOF_ARCHIVE_MIRROR to download it from fast.ai"
            )
    else:
        archive = _download(url, data_dir, f"{spec.name}.tgz", progress)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{spec.name}-extracting-"))
    try:
        _extract(archive, staging, url)
        extracted = staging / spec.name
        if not extracted.is_dir():
            inside = sorted(p.name for p in staging.iterdir())
            raise ValueError(f"{archive.name} should hold a folder {spec.name}/, but holds {inside}")
        counts = verify(extracted, spec.counts)
        extracted.rename(target)
        _write_marker(marker, spec, counts, url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not local:
            archive.unlink(missing_ok=True)
    return target


def source_of(root: str | Path) -> str | None:
    """The URL (or local path) a fetched dataset at ``root`` came from, as its marker
    recorded it; ``None`` for a folder ``fetch`` did not verify (a generated one)."""
    marker = Path(root) / VERIFIED_MARKER
    return json.loads(marker.read_text()).get("url") if marker.is_file() else None


def _write_marker(marker: Path, spec: catalog.Version, counts: dict[str, dict[str, int]], url: str) -> None:
    io.write_text_atomically(marker, json.dumps({"version": spec.name, "url": url, "counts": counts}, indent=1))


def dataset_root(profile: profiles.Profile) -> Path:
    """The dataset folder for ``profile``, ready to use.

    The full profile fetches its Imagewoof version; the smoke profile generates a
    synthetic one (see :mod:`woofhelpers.synthetic`) the first time it is asked.
    """
    from woofhelpers import synthetic

    if profile.real_data:
        return fetch(profile.dataset, profile.data_dir, profile=profile)
    name = (
        f"synthetic-{profile.synthetic_train_per_class}x{profile.synthetic_val_per_class}"
        f"-{profile.synthetic_shortest_side_px}px-seed{profile.seed}"
    )
    return synthetic.generate(
        profile.data_dir / name,
        train_per_class=profile.synthetic_train_per_class,
        val_per_class=profile.synthetic_val_per_class,
        shortest_side_px=profile.synthetic_shortest_side_px,
        seed=profile.seed,
    )


def describe_images(root: str | Path) -> pd.DataFrame:
    """One row per image file: split, wnid, breed, file name, width, height, colour
    mode, and whether it is an ImageNet validation image. Reads only file headers.

    Returns a ``pandas.DataFrame``; the dataset chapter draws its tables and plots from it.
    """
    import pandas as pd
    from PIL import Image, UnidentifiedImageError

    rows = []
    for split, by_class in list_images(root).items():
        for wnid, files in by_class.items():
            for path in files:
                try:
                    with Image.open(path) as image:
                        width, height, mode = image.width, image.height, image.mode
                except (UnidentifiedImageError, OSError):
                    width = height = 0
                    mode = "unreadable"
                rows.append(
                    {
                        "split": split,
                        "wnid": wnid,
                        "breed": labels.breed(wnid).name,
                        "file": path.name,
                        "width": width,
                        "height": height,
                        "mode": mode,
                        "imagenet_val": catalog.is_imagenet_val(path),
                    }
                )
    return pd.DataFrame(rows)
