"""An Imagewoof-shaped dataset made from nothing, for the offline smoke profile.

The images are not dogs. Each class is a striped pattern with its own orientation,
stripe width and colour, drawn over a photo-like texture at a random phase and position, so a
network can learn to tell the classes apart, even from the grayscale images (the
orientation and stripe width carry the class without colour). Everything else
copies the real archive: ``train/`` and ``val/`` with the ten wnid folders, JPEG
files named like ImageNet's (``<wnid>_<n>.JPEG`` and
``ILSVRC2012_val_<8 digits>.JPEG``), varied sizes with a fixed shortest side, and
some grayscale files.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from woofhelpers import catalog, labels

INFO_FILE = "woof-synthetic.json"
# Imagewoof v2 under-represents English foxhound (about 580 train / 224 val against
# roughly 920-950 / 400-430 for the other breeds); the "v2" layout keeps that shape.
_V2_FOXHOUND_SHARE = 0.62


def _pattern(rng: np.random.Generator, label: int, height: int, width: int, gray: bool) -> Image.Image:
    """One image of class ``label``: float array maths, then an 8-bit PIL image."""
    angle = np.pi * label / len(labels.WNIDS) + rng.normal(0, 0.04)
    period = 0.12 + 0.02 * (label % 4)  # stripe period as a share of the shortest side
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / min(height, width)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase)
    # A soft disc at a random place, like a subject that is not always centred.
    cy, cx = rng.uniform(0.3, 0.7) * height / min(height, width), rng.uniform(0.3, 0.7) * width / min(height, width)
    disc = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 0.25**2))
    intensity = 0.35 + 0.65 * stripes * disc
    # Texture as in a photo: blotches (noise at an eighth of the size, enlarged smoothly)
    # plus a fine grain. At quality 75 a 320 px file then takes about 1.45 bits per pixel,
    # as real Imagewoof-320 photos do (0.7-2.4, about 1.4 on average), so decoding costs
    # what it costs on the real archive (see benchmarks/README.md).
    blotches = rng.normal(0, 0.1, size=(height // 8 + 2, width // 8 + 2)).astype(np.float32)
    blotches = np.asarray(Image.fromarray(blotches, mode="F").resize((width + 16, height + 16), Image.BILINEAR))
    noise = blotches[:height, :width, None] + rng.normal(0, 0.03, size=(height, width, 1))
    hue = np.array(_CLASS_COLOURS[label], dtype=np.float32) / 255
    rgb = np.clip(intensity[..., None] * hue + noise + rng.normal(0, 0.05, size=3), 0, 1)
    image = Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB")
    return image.convert("L") if gray else image


_CLASS_COLOURS = (
    (230, 180, 140),
    (200, 120, 60),
    (160, 110, 70),
    (220, 200, 170),
    (140, 120, 100),
    (90, 80, 70),
    (235, 190, 90),
    (200, 200, 205),
    (245, 245, 240),
    (210, 150, 80),
)


def _per_class_counts(n: int, version: str) -> list[int]:
    if version == "v1":
        return [n] * len(labels.WNIDS)
    if version == "v2":
        fox = labels.label_index("n02089973")
        return [max(1, round(n * _V2_FOXHOUND_SHARE)) if i == fox else n for i in range(len(labels.WNIDS))]
    raise ValueError(f"version {version!r}: choose 'v1' or 'v2'")


def generate(
    root: str | Path,
    *,
    train_per_class: int = 30,
    val_per_class: int = 10,
    shortest_side_px: int = 80,
    max_aspect: float = 1.6,
    grayscale_fraction: float = 0.05,
    version: str = "v1",
    seed: int = 0,
) -> Path:
    """Write a synthetic Imagewoof to ``root`` and return ``root``.

    ``version="v1"`` copies Imagewoof v1's layout: every ``val/`` file is an ImageNet
    validation image (``ILSVRC2012_val_*``) and every ``train/`` file an ImageNet
    training image. ``"v2"`` mixes the two kinds across both folders and gives
    English foxhound about 62% of the images of the other breeds, as v2 does.
    Same arguments, same files, byte for byte. The folder is built beside ``root``
    and renamed into place, so an interrupted run leaves no half-made dataset; an
    existing ``root`` made with the same arguments is returned untouched, one made
    with other arguments raises ``FileExistsError``.
    """
    root = Path(root)
    if shortest_side_px < 8:
        raise ValueError(f"shortest_side_px={shortest_side_px}: use at least 8")
    if train_per_class < 1 or val_per_class < 1:
        raise ValueError("train_per_class and val_per_class must be at least 1")
    settings = dict(
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        shortest_side_px=shortest_side_px,
        max_aspect=max_aspect,
        grayscale_fraction=grayscale_fraction,
        version=version,
        seed=seed,
    )
    existing = _recorded_settings(root)
    if existing == settings:
        return root
    if existing is not None:
        raise FileExistsError(
            f"{root} holds a synthetic dataset made with {existing}, not {settings};"
            " delete the folder or choose another one"
        )
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not a synthetic Imagewoof; choose an empty folder")

    rng = np.random.default_rng(seed)
    counts = {"train": _per_class_counts(train_per_class, version), "val": _per_class_counts(val_per_class, version)}
    # ILSVRC2012_val files get the names ImageNet really gave its validation images
    # of that breed, so the label checks of the relabelling chapter work here too.
    val_names = {w: iter(rng.permutation(labels.imagenet_val_files(w))) for w in labels.WNIDS}
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-building-"))
    try:
        written = {"train": 0, "val": 0}
        for split in ("train", "val"):
            for label, wnid in enumerate(labels.WNIDS):
                folder = building / split / wnid
                folder.mkdir(parents=True)
                image_numbers = rng.choice(np.arange(1, 20_000), size=counts[split][label], replace=False)
                for number in image_numbers:
                    from_imagenet_val = split == "val" if version == "v1" else rng.random() < 0.04
                    name = next(val_names[wnid], None) if from_imagenet_val else f"{wnid}_{number}.JPEG"
                    if name is None:
                        raise ValueError(f"ImageNet has only 50 validation images of {wnid}; ask for fewer")
                    _write_image(rng, folder / name, label, shortest_side_px, max_aspect, grayscale_fraction)
                    written[split] += 1
        if version == "v2":
            _write_noisy_labels_csv(building)
        (building / INFO_FILE).write_text(json.dumps({"settings": settings, "counts": written}, indent=1))
        try:
            if root.exists():
                root.rmdir()  # an empty folder only
            building.rename(root)
        except OSError:
            # Another process (a second notebook, a second test worker) made it meanwhile:
            # the same arguments give the same files, so keep theirs.
            if _recorded_settings(root) != settings:
                raise
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return root


def _write_image(
    rng: np.random.Generator, path: Path, label: int, shortest_side_px: int, max_aspect: float, gray_fraction: float
) -> None:
    """One JPEG of class ``label``: landscape (70%) or portrait, sometimes grayscale."""
    short = shortest_side_px
    long = int(round(short * rng.uniform(1.0, max_aspect)))
    height, width = (short, long) if rng.random() < 0.7 else (long, short)
    gray = rng.random() < gray_fraction
    image = _pattern(rng, label, height, width, gray)
    image.save(path, format="JPEG", quality=75)  # the archive's own quality (PIL's default)


def replica(root: str | Path, version: str, *, shortest_side_px: int = 32, seed: int = 0) -> Path:
    """Write a generated dataset shaped exactly like the real archive ``version`` to ``root``.

    Same layout and file names as the real one (``train/``, ``val/``, the ten wnid folders,
    ``<wnid>_<n>.JPEG`` and ImageNet's own ``ILSVRC2012_val_*`` names), the same number of
    images in every class of every split, the same number of ImageNet validation images in
    each, and ``noisy_imagewoof.csv`` for v2; only the pictures are striped patterns, and
    small (``shortest_side_px``). Packed with :func:`pack`, it is an archive that
    :func:`woofhelpers.data.fetch` accepts as that version: how the full profile is
    rehearsed offline. Built beside ``root`` and renamed into place.
    """
    spec = catalog.VERSIONS.get(version)
    if spec is None or not spec.class_counts:
        raise ValueError(f"unknown Imagewoof version {version!r}; choose one of {sorted(catalog.VERSIONS)}")
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} exists; replica() writes a new folder, so choose another path")
    rng = np.random.default_rng(seed)
    val_names = {w: list(rng.permutation(labels.imagenet_val_files(w))) for w in labels.WNIDS}
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-building-"))
    try:
        for split, by_class in spec.class_counts.items():
            for label, wnid in enumerate(labels.WNIDS):
                total, from_val = by_class[wnid]
                folder = building / split / wnid
                folder.mkdir(parents=True)
                numbers = rng.choice(np.arange(1, 20_000), size=total - from_val, replace=False)
                names = [f"{wnid}_{n}.JPEG" for n in numbers] + [val_names[wnid].pop() for _ in range(from_val)]
                for name in names:
                    _write_image(rng, folder / name, label, shortest_side_px, 1.6, 0.02)
        if version != catalog.DEFAULT_VERSION:
            _write_noisy_labels_csv(building)
        building.rename(root)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return root


def _recorded_settings(root: Path) -> dict | None:
    """The arguments :func:`generate` recorded for the dataset at ``root``, or ``None``."""
    info = root / INFO_FILE
    return json.loads(info.read_text())["settings"] if info.is_file() else None


def _write_noisy_labels_csv(root: Path) -> None:
    """v2 archives ship ``noisy_imagewoof.csv``; write one with the same columns (no noise)."""
    rows = ["path,noisy_labels_0,noisy_labels_1,noisy_labels_5,noisy_labels_25,noisy_labels_50,is_valid"]
    for path in sorted(root.glob("*/*/*.JPEG")):
        rel = path.relative_to(root).as_posix()
        wnid = path.parent.name
        rows.append(f"{rel},{wnid},{wnid},{wnid},{wnid},{wnid},{rel.startswith('val/')}")
    (root / "noisy_imagewoof.csv").write_text("\n".join(rows) + "\n")


def expected_counts(root: str | Path) -> dict[str, int]:
    """Image counts per split that :func:`generate` recorded for the dataset at ``root``."""
    info = Path(root) / INFO_FILE
    if not info.is_file():
        raise FileNotFoundError(f"{info} not found: {root} was not made by wh.synthetic.generate()")
    return json.loads(info.read_text())["counts"]


def pack(root: str | Path, archive: str | Path, top_folder: str = "imagewoof-320") -> Path:
    """Pack a dataset folder into a ``.tgz`` laid out like the real archive.

    The archive holds ``<top_folder>/train/...`` and ``<top_folder>/val/...`` (and
    ``noisy_imagewoof.csv`` when present), as ``imagewoof-320.tgz`` does. Used to test
    :func:`woofhelpers.data.fetch` against a local server.
    """
    root, archive = Path(root), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=top_folder, recursive=False)  # the top folder's own entry, as `tar czf` writes
        for item in ("train", "val", "noisy_imagewoof.csv"):
            if (root / item).exists():
                tar.add(root / item, arcname=f"{top_folder}/{item}")
    return archive
