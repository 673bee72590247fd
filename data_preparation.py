"""Data preparation: turn photographs or a video into (LR 64x64, HR 128x128) training pairs.

    python data_preparation.py --images DIR --out my.npz [--mode resize|crops] [--test-fraction F]
    python data_preparation.py --video FILE --out my.npz
    python data_preparation.py                     # rebuild the bundled data/ (data/build_bundled.py)

Conventions used by every script of the repo: images are float32 in [0, 1] with shape
(N, H, W, 1); the low-resolution image is made by `degrade()` alone (compressed variants, `jpeg()`,
go on top of it); datasets are `.npz` files with keys x_train, y_train (LR, HR) and x_test,
y_test, stored as uint8; every file is written whole or not at all (`atomic_output()`).
"""
import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import tensorflow as tf
from PIL import Image
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
# ffmpeg's default yuv420p <-> rgb24 conversion shifts luma by ~1.2 grey levels; these make it exact.
EXACT_SCALING = ["-sws_flags", "accurate_rnd+full_chroma_int"]


class DataError(Exception):
    """Bad input that the command line reports as one line, without a traceback."""


_held = threading.local()  # a worker thread's warnings, kept for the main thread to print (in_worker)


def warn(message):
    if getattr(_held, "warnings", None) is not None:
        _held.warnings.append(message)
    else:
        tqdm.write(f"warning: {message}", file=sys.stderr)


def in_worker(function, *args):
    """(function(*args) or None, the message of the DataError it raised or None, the warnings it
    gave) on a worker thread: only the main thread prints, as a worker's tqdm.write once hung the
    program against tqdm's monitor thread (py-spy showed both waiting for tqdm's lock)."""
    _held.warnings = []
    try:
        return function(*args), None, _held.warnings
    except DataError as error:
        return None, str(error), _held.warnings
    finally:
        _held.warnings = None


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path` (same name at the end, so the suffix rules of Keras
    and ffmpeg hold) and rename it to `path` when the block ends without error; otherwise it is
    removed and `path` stays as it was. A folder that cannot be made or written is a DataError."""
    path = Path(path)
    temporary = path.with_name(f".partial-{uuid.uuid4().hex[:8]}.{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise DataError(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):  # gone already, or its folder never was
            temporary.unlink()


def write_bytes(path, data):
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def markdown_table(columns, rows):
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)] + \
        ["| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |" for row in rows]


# ---------------------------------------------------------------------------------------------
# The one degradation and the colour convention


def degrade(hr):
    """LR = bicubic downscale by 2 with antialiasing (MATLAB imresize), rounded to 8 bits.

    hr: float in [0, 1], shape (N, H, W, C) or (H, W, C), H and W even: a NumPy array (-> NumPy) or
    a float32 tensor (-> tensor: what tf.data pipelines call).
    """
    if not tf.is_tensor(hr):
        hr = np.asarray(hr, dtype=np.float32)
        if hr.shape[-3] % SCALE or hr.shape[-2] % SCALE:
            raise ValueError(f"degrade needs even height and width, got {hr.shape[-3]}x{hr.shape[-2]} (use modcrop)")
        return degrade(tf.constant(hr)).numpy()
    lr = tf.image.resize(hr, tf.shape(hr)[-3:-1] // SCALE, method="bicubic", antialias=True)
    return tf.round(tf.clip_by_value(lr, 0, 1) * 255) / 255  # half to even, as np.round


def jpeg(image, quality):
    """`image` (H, W, C) in [0, 1], C = 1 or 3, saved by Pillow as JPEG at `quality` (its defaults
    otherwise: 4:2:0 chroma for colour) and decoded again: the compressed track's LR."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1-100, got {quality}")
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255
    return decoded.reshape(image.shape)


def luma_to_jfif(luma):
    """BT.601 luma (studio range, 16-235 of 255) -> JFIF's full-range Y, which JPEG quantizes."""
    return (luma - 16 / 255) * 255 / 219


def jfif_to_luma(y):
    return y * 219 / 255 + 16 / 255


def jpeg_luma(luma, quality):
    """The luma a colour JPEG at `quality` gives, from `luma` (H, W, 1) alone: JPEG quantizes JFIF's
    full-range Y, whose steps are 219/255 of luma's, so a grey JPEG of the luma itself quantizes
    16 % coarser than the file does (its error 5-11 % larger, a test). What the compressed-input model learns
    from and is validated on; the benchmark JPEGs the colour image itself (`jpeg`)."""
    return jfif_to_luma(jpeg(luma_to_jfif(np.asarray(luma, np.float32)), quality)).astype(np.float32)  # jpeg() clips


def h264_luma(frames, crf):
    """Luma frames (N, H, W, 1) in [0, 1], even H and W, as the Y plane of a video (BT.601 luma is
    what a video stores, no conversion) encoded by libx264 at `crf` and decoded: the luma that a
    compressed video gives. The frames are encoded in the order given."""
    count, height, width, _ = frames.shape
    luma = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8).reshape(count, -1)
    grey_chroma = np.full((count, height * width // 2), 128, np.uint8)  # yuv420p: Cb and Cr at half size
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"crf{crf}.mp4"
        writer = imageio_ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="yuv420p", fps=25, quality=None,
                                             macro_block_size=1, ffmpeg_log_level="error",
                                             output_params=["-crf", str(crf)])
        writer.send(None)
        for frame in np.concatenate([luma, grey_chroma], axis=1):
            writer.send(frame.tobytes())
        writer.close()
        decoded, _ = open_video(path, pix_fmt="yuv420p", bits_per_pixel=12)
        planes = [np.frombuffer(raw, np.uint8)[:height * width] for raw in decoded]
    if len(planes) != count:
        raise RuntimeError(f"libx264 round trip gave {len(planes)} frames for {count}")
    return (np.stack(planes).reshape(count, height, width, 1) / 255).astype(np.float32)


def modcrop(image, multiple=SCALE):
    """Crop the bottom/right of (..., H, W, C) so that H and W are multiples of `multiple`."""
    height, width = image.shape[-3:-1]
    return image[..., : height - height % multiple, : width - width % multiple, :]


BT601_Y = (65.481, 128.553, 24.966)  # MATLAB rgb2ycbcr's Y row for RGB in [0, 1]: Y = (16 + row . RGB) / 255


def to_luma(image):
    """Y of ITU-R BT.601 (MATLAB rgb2ycbcr) scaled to [0, 1], shape (..., 1); grey passes through,
    alpha does not count. A NumPy array (-> NumPy, through skimage) or a float32 tensor (-> tensor:
    what tf.data pipelines call)."""
    if tf.is_tensor(image):
        return tf.cond(tf.shape(image)[-1] >= 3,
                       lambda: (16 + tf.tensordot(image[..., :3], BT601_Y, 1)[..., None]) / 255, lambda: image[..., :1])
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] == 1:
        return image
    if image.shape[-1] not in (3, 4):
        raise ValueError(f"to_luma expects 1, 3 or 4 channels, got shape {image.shape}")
    return (rgb2ycbcr(image[..., :3])[..., :1] / 255).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Reading images and videos


def read_image(path):
    """Any image file as float32 (H, W, C) in [0, 1], C = 1 (grey), 3 (RGB) or 4 (RGBA), upright.

    `path` is a path or a binary file object (its str() names it in messages). 8/16-bit, palette,
    grey+alpha, CMYK/YCCK and multi-frame files (first frame, with a warning) are normalised, and
    the EXIF orientation is applied, as every viewer does; raises DataError.
    """
    if isinstance(path, (str, os.PathLike)) and not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        with Image.open(path) as pillow:  # only the header: orientation, mode, frames
            mode, frames = pillow.mode, getattr(pillow, "n_frames", 1)
            orientation = pillow.getexif().get(ORIENTATION_TAG, 1)
            if mode in CONVERTED_MODES:
                pixels = np.asarray(pillow.convert("RGB"))
    except Exception:  # not a format Pillow knows (imageio may) or broken (imageio says how)
        mode, frames, orientation = None, 1, 1
    try:
        if isinstance(path, io.IOBase):
            path.seek(0)
        if mode not in CONVERTED_MODES:
            pixels = iio.imread(path, index=0)
    except Exception as error:  # imageio raises many types for undecodable files
        raise DataError(f"{path}: not a readable image ({type(error).__name__})") from None
    if frames > 1:
        warn(f"{path}: {frames} frames, only the first is used")
    image = to_unit_range(pixels, path)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or min(image.shape[:2]) < 1:
        raise DataError(f"{path}: unsupported image shape {image.shape}")
    if image.shape[-1] == 2:  # grey + alpha -> RGBA
        image = np.concatenate([image[..., :1]] * 3 + [image[..., 1:]], axis=-1)
    return upright(image, orientation)


ORIENTATION_TAG = 0x0112  # EXIF: how the camera was held
CONVERTED_MODES = ("CMYK", "YCbCr", "LAB", "HSV")  # Pillow converts these; imageio would hand over raw channels


def upright(image, orientation):
    """(H, W, C) turned as EXIF orientation 1-8 says (the transposes of ImageOps.exif_transpose)."""
    turns = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1],
             8: lambda a: np.rot90(a)}
    return np.ascontiguousarray(turns.get(orientation, turns[1])(image))


def to_unit_range(pixels, path):
    if np.issubdtype(pixels.dtype, np.floating):
        return np.clip(pixels.astype(np.float32), 0, 1)
    full_scale = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535, np.dtype(bool): 1}.get(pixels.dtype)
    if full_scale is None:
        raise DataError(f"{path}: unsupported pixel type {pixels.dtype}")
    return pixels.astype(np.float32) / full_scale


STREAMED_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP")  # what tf.io.decode_image reads (MPO: phones' JPEG)


def stream_problem(path):
    """Why `path` cannot be streamed (its header is enough to tell), or None."""
    try:
        with Image.open(path) as image:
            kind, (width, height) = image.format, image.size
    except Exception:  # Pillow raises many types for files it cannot read
        return "not a readable image"
    if kind not in STREAMED_FORMATS:
        return f"{kind} is not streamed (one of {', '.join(STREAMED_FORMATS)} is; or use data_preparation.py)"
    if min(width, height) < HR_SIZE:
        return f"{width}x{height} is smaller than {HR_SIZE}x{HR_SIZE}"
    return None


def list_files(folder):
    """Every file below `folder`, recursively, in a fixed order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def open_video(path, **options):
    """(frames generator, ffmpeg's metadata) of a video file; DataError if it is not one."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        frames = imageio_ffmpeg.read_frames(str(path), **options)
        return frames, next(frames)
    except (OSError, RuntimeError, StopIteration):
        raise DataError(f"{path}: not a readable video") from None


def read_video(path):
    """Yield the frames of a video as float32 RGB (H, W, 3) in [0, 1], one at a time, decoded exactly."""
    frames, meta = open_video(path, output_params=EXACT_SCALING)
    width, height = meta["size"]
    for raw in frames:
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(np.float32) / 255


def video_info(path):
    """The video's metadata as ffmpeg reports it: fps, size (w, h), duration, audio_codec, ...,
    and sar, the sample aspect ratio ("1:1" for square pixels)."""
    frames, meta = open_video(path)
    frames.close()
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True, errors="replace").stderr
    sar = re.search(r"Video:.*?SAR (\d+:\d+)", probe)
    return {**meta, "sar": sar.group(1) if sar else "1:1"}


# ---------------------------------------------------------------------------------------------
# From images to HR patches


def shrink(image, max_side=MAX_SIDE):
    """The image with its longer side at most `max_side` (antialiased bicubic); NumPy or tensor."""
    if tf.is_tensor(image):
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        factor = max_side / tf.reduce_max(size)
        return tf.cond(factor < 1, lambda: tf.clip_by_value(tf.image.resize(
            image, tf.cast(tf.round(size * factor), tf.int32), "bicubic", antialias=True), 0, 1), lambda: image)
    factor = max_side / max(image.shape[:2])
    shape = (round(image.shape[0] * factor), round(image.shape[1] * factor))
    return image if factor >= 1 else tf.image.resize(image, shape, "bicubic", antialias=True).numpy().clip(0, 1)


def hr_patches(luma, mode):
    """HR patches (n, 128, 128, 1) of one grey image: whole-image resize or non-overlapping crops."""
    if mode == "resize":
        return resize(luma, (HR_SIZE, HR_SIZE), order=3, anti_aliasing=True)[None].clip(0, 1)
    luma = shrink(luma)
    rows, cols = luma.shape[0] // HR_SIZE, luma.shape[1] // HR_SIZE
    tiles = luma[: rows * HR_SIZE, : cols * HR_SIZE, 0]
    tiles = tiles.reshape(rows, HR_SIZE, cols, HR_SIZE).swapaxes(1, 2).reshape(-1, HR_SIZE, HR_SIZE, 1)
    return tiles[tiles.std(axis=(1, 2, 3)) >= MIN_CROP_STD]


def usable_patches(path, mode):
    """(uint8 HR patches of one file, None) or (None, why it is skipped)."""
    try:
        image = read_image(path)
    except DataError as error:
        return None, f"skipped {error}"
    if min(image.shape[:2]) < HR_SIZE:
        return None, f"skipped {path}: {image.shape[1]}x{image.shape[0]} is smaller than {HR_SIZE}x{HR_SIZE}"
    patches = hr_patches(to_luma(image), mode)
    if not len(patches):
        return None, f"skipped {path}: no {HR_SIZE}x{HR_SIZE} crop with enough detail"
    return np.round(patches * 255).astype(np.uint8), None


def patches_per_file(files, mode="crops", progress=True, spill=None):
    """{file: uint8 HR patches} for the usable files, decoded on parallel threads; each unusable one
    is skipped with a warning. With `spill` (a folder), the patches are written to one file there
    and the dict holds views of it: memory stays bounded however many files there are."""
    if mode not in ("crops", "resize"):
        raise ValueError(f"mode must be 'crops' or 'resize', not {mode!r}")
    kept, spilled, count = {}, spill and open(Path(spill) / "patches.u8", "wb"), 0
    with ThreadPoolExecutor(os.cpu_count()) as pool, tqdm(total=len(files), desc="images", unit="file",
                                                          disable=not progress) as bar:
        for start in range(0, len(files), 64):  # a few files in flight at a time: bounded memory
            chunk = files[start:start + 64]
            for path, ((patches, problem), _, warnings) in zip(
                    chunk, pool.map(lambda path: in_worker(usable_patches, path, mode), chunk)):
                bar.update()
                for message in warnings:
                    warn(message)
                if problem:
                    warn(problem)
                elif spilled:
                    spilled.write(patches.tobytes())
                    kept[path], count = (count, len(patches)), count + len(patches)
                else:
                    kept[path] = patches
    if not spilled:
        return kept
    spilled.close()
    tiles = np.memmap(spilled.name, np.uint8, "r", shape=(count, HR_SIZE, HR_SIZE, 1)) if count else None
    return {path: tiles[first:first + n] for path, (first, n) in kept.items()}


def uint8_array(spill, name, shape):
    """A zeroed uint8 array: a file `name` in the folder `spill`, memory-mapped, when given, else in memory."""
    if spill and shape[0]:
        return np.lib.format.open_memmap(Path(spill) / name, "w+", np.uint8, shape)
    return np.zeros(shape, np.uint8)


def split_by_source(patches, test_fraction, seed=SEED, spill=None):
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

    def stack(chosen, name):
        stacked = uint8_array(spill, name, (sum(len(patches[p]) for p in chosen), HR_SIZE, HR_SIZE, 1))
        position = 0
        for path in sorted(chosen, key=str):
            stacked[position:position + len(patches[path])] = patches[path]
            position += len(patches[path])
        return stacked

    return stack(train, "y_train.npy"), stack(test, "y_test.npy")


# ---------------------------------------------------------------------------------------------
# .npz datasets


def to_uint8(images):
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def save_dataset(path, x_train, y_train, x_test, y_test):
    """Write a compressed .npz of uint8 arrays (x = LR, y = HR); atomic.

    The members are bzip2-compressed (np.load reads any zip compression): 17 % smaller than
    np.savez_compressed's deflate on photographs, so more crops fit in data/."""
    arrays = dict(zip(KEYS, map(to_uint8, (x_train, y_train, x_test, y_test))))

    with atomic_output(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_BZIP2) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


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

    try:
        return tuple(to_unit_range(np.concatenate([part[i] for part in parts]), paths) for i in range(len(KEYS)))
    except ValueError:
        raise DataError(f"{', '.join(map(str, paths))}: image sizes differ between files") from None


def dataset_from_patches(patches, test_fraction, seed=SEED, max_train=None, spill=None):
    """(x_train, y_train, x_test, y_test) from {source: HR patches}, split by source; the arrays
    are files in `spill` when it is given (see patches_per_file)."""
    y_train, y_test = split_by_source(patches, test_fraction, seed, spill)
    if max_train is not None and len(y_train) > max_train:
        keep = np.sort(np.random.default_rng(seed).choice(len(y_train), max_train, replace=False))
        y_train = y_train[keep]
    return degrade_uint8(y_train, spill, "x_train.npy"), y_train, degrade_uint8(y_test, spill, "x_test.npy"), y_test


def degrade_uint8(hr, spill=None, name="x.npy"):
    """degrade() of uint8 HR images, as uint8, a few at a time (bounded memory; into a file in
    `spill` when given)."""
    lr = uint8_array(spill, name, (len(hr), hr.shape[1] // SCALE, hr.shape[2] // SCALE, hr.shape[3]))
    for start in range(0, len(hr), 256):
        lr[start:start + 256] = to_uint8(degrade(hr[start:start + 256].astype(np.float32) / 255))
    return lr


def video_dataset(path, test_fraction, progress=True):
    """Each frame resized to 128x128 grey (the original repo's experiment); the last frames test."""
    hr = [hr_patches(to_luma(frame), "resize")[0]
          for frame in tqdm(read_video(path), desc="frames", unit="frame", disable=not progress)]
    if not hr:
        raise DataError(f"{path}: the video has no frames")
    hr = to_uint8(np.stack(hr))
    n_test = int(round(len(hr) * test_fraction))
    y_train, y_test = hr[: len(hr) - n_test], hr[len(hr) - n_test:]
    return degrade_uint8(y_train), y_train, degrade_uint8(y_test), y_test


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
        if args.images is None and args.video is None:  # the bundled data's provenance lives beside it
            sys.exit(subprocess.run([sys.executable, str(DATA_DIR / "build_bundled.py")]).returncode)
        if not args.out:
            parser.error("--out FILE.npz is required with --images or --video")
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            spill_folder = tempfile.TemporaryDirectory(prefix=".spill-", dir=Path(args.out).parent)
        except OSError as error:
            raise DataError(f"{args.out}: cannot write ({error.strerror})") from None
        with spill_folder as spill:
            patches = None
            if args.images is not None:  # the crops wait on disk, not in memory, however big the folder
                patches = patches_per_file(list_files(args.images), args.mode, spill=spill)
                if not patches:
                    raise DataError(f"{args.images}: no usable image")
                dataset = dataset_from_patches(patches, args.test_fraction, spill=spill)
            else:
                dataset = video_dataset(args.video, args.test_fraction)
            save_dataset(args.out, *dataset)
            print(f"{args.out}: {len(dataset[0])} train and {len(dataset[2])} test pairs")
            del patches, dataset  # the views of the spill files, before they are removed
    except DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
