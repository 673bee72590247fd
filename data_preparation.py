"""Data preparation: turn photographs or a video into (LR 64x64, HR 128x128) training pairs.

    python data_preparation.py --images DIR --out my.npz [--mode resize|crops] [--test-fraction F]
    python data_preparation.py --video FILE --out my.npz
    python data_preparation.py                     # rebuild the bundled data/ (data/build_bundled.py)

Conventions used by every script of the repo: images are float32 in [0, 1] with shape
(N, H, W, 1); the low-resolution image is made by `degrade()` alone (compressed variants, `jpeg()`,
go on top of it); datasets are `.npz` files with keys x_train, y_train (LR, HR) and x_test,
y_test, stored as uint8; every file is written whole or not at all (`atomic_output()`).

Also here, in NumPy, Pillow and ffmpeg (no Keras, so the same on every backend): the degradations
(`degrade()`, `jpeg_luma()`, `h264_luma()`), video I/O, and the training input pipeline
(`TrainingBatches`: random patches, flips, the compressed-input degradations, tiles streamed from
image folders), which training.py consumes.
"""

import argparse
import collections
import contextlib
import io
import itertools
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

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.transform import resize
from tqdm import tqdm

SCALE = 2  # the default factor: model.h5's, the bundled pairs'
SCALES = (2, 3, 4)  # the factors with models of their own; the bundled HR tiles serve each (load_dataset)
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


@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 sent to /dev/null for the block, unless the command line says --verbose:
    the C++ start-up log of TensorFlow (absl, CUDA probing) is written there, past Python's sys.stderr."""
    if "--verbose" in sys.argv[1:]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def output_folder(path, folder=None):
    """Make `folder` (default: the folder of the file `path`) if need be, before any work is done;
    a DataError naming `path`, what the user gave, if it cannot be."""
    try:
        Path(folder or Path(path).parent).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{path}: cannot write ({error.strerror or error})") from None


def write_bytes(path, data):
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def markdown_table(columns, rows):
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)] + [
        "| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |" for row in rows
    ]


# ---------------------------------------------------------------------------------------------
# The one degradation and the colour convention


def resize_bicubic(image, height, width):
    """(H, W, C) float32 -> (height, width, C) by Pillow's bicubic (a = -0.5), whose kernel widens
    by the factor when it shrinks: MATLAB imresize's antialiasing. Values are not clipped."""
    image = np.asarray(image, np.float32)
    return np.stack(
        [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(image[..., c])).resize((width, height), Image.Resampling.BICUBIC)
            )
            for c in range(image.shape[-1])
        ],
        -1,
    )


def degrade(hr, scale=SCALE):
    """LR = bicubic downscale by `scale` with antialiasing (MATLAB imresize), rounded to 8 bits.

    hr: float in [0, 1], shape (N, H, W, C) or (H, W, C), H and W multiples of `scale` (modcrop()
    first) -> float32 of 1/scale the size. NumPy and Pillow only, so the same LR comes out whatever
    Keras backend trains on it.
    """
    hr = np.asarray(hr, dtype=np.float32)
    height, width = hr.shape[-3:-1]
    if height % scale or width % scale:
        raise ValueError(f"degrade needs height and width multiples of {scale}, got {height}x{width} (use modcrop)")
    images = hr.reshape(-1, *hr.shape[-3:])
    lr = np.stack([resize_bicubic(image, height // scale, width // scale) for image in images])
    lr = np.round(np.clip(lr, 0, 1) * 255) / 255  # half to even
    return lr.reshape(*hr.shape[:-3], *lr.shape[1:]).astype(np.float32)


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
        with VideoEncoder(path, width, height, 25, "yuv420p", ["-crf", str(crf)]) as encoder:
            for frame in np.concatenate([luma, grey_chroma], axis=1):
                encoder.write(frame.tobytes())
        planes = [np.frombuffer(raw, np.uint8)[: height * width] for raw in raw_frames(path, "yuv420p", 12)]
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
    alpha does not count."""
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
            pixels = imageio_read(path)
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


def imageio_read(path):
    """The first image in a file by imageio, from a handle this function closes (imageio's own
    readers leave theirs open when a file is not an image)."""
    if isinstance(path, io.IOBase):
        return iio.imread(path, index=0)
    with open(path, "rb") as handle:
        return iio.imread(handle, index=0, extension=Path(path).suffix.lower() or None)


ORIENTATION_TAG = 0x0112  # EXIF: how the camera was held
CONVERTED_MODES = ("CMYK", "YCbCr", "LAB", "HSV")  # Pillow converts these; imageio would hand over raw channels


def upright(image, orientation):
    """(H, W, C) turned as EXIF orientation 1-8 says (the transposes of ImageOps.exif_transpose)."""
    turns = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, -1)[::-1],
        8: lambda a: np.rot90(a),
    }
    return np.ascontiguousarray(turns.get(orientation, turns[1])(image))


def to_unit_range(pixels, path):
    if np.issubdtype(pixels.dtype, np.floating):
        return np.clip(pixels.astype(np.float32), 0, 1)
    full_scale = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535, np.dtype(bool): 1}.get(pixels.dtype)
    if full_scale is None:
        raise DataError(f"{path}: unsupported pixel type {pixels.dtype}")
    return pixels.astype(np.float32) / full_scale


def stream_problem(path):
    """Why `path` cannot be streamed for training (its header is enough to tell), or None."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # Pillow raises many types for files it cannot read
        return "not a readable image"
    if min(width, height) < HR_SIZE:
        return f"{width}x{height} is smaller than {HR_SIZE}x{HR_SIZE}"
    return None


def list_files(folder):
    """Every file below `folder`, recursively, in a fixed order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def ffmpeg(*arguments):
    """The command line of imageio-ffmpeg's ffmpeg binary (any machine has it with the package)."""
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *map(str, arguments)]


def video_info(path):
    """The video's size (w, h), fps, sar (the sample aspect ratio, "1:1" for square pixels) and
    whether it has sound, as ffmpeg reports them; DataError if it is not a video."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    probe = subprocess.run(ffmpeg("-i", path), capture_output=True, text=True, errors="replace").stderr
    video = re.search(r"Stream #.*?: Video: (.*)", probe)
    size = video and re.search(r", (\d+)x(\d+)", video.group(1))
    rate = video and re.search(r"([\d.]+) (?:fps|tbr)", video.group(1))
    if not size or not rate:
        raise DataError(f"{path}: not a readable video")
    sar = re.search(r"SAR (\d+:\d+)", video.group(1))
    return {"size": (int(size.group(1)), int(size.group(2))), "fps": float(rate.group(1)),
            "sar": sar.group(1) if sar else "1:1", "audio": "Audio:" in probe}  # fmt: skip


def raw_frames(path, pix_fmt="rgb24", bits_per_pixel=24, output_params=(), size=None):
    """Yield each frame of a video as ffmpeg decodes it, raw bytes in `pix_fmt`; ffmpeg is stopped
    and its pipes closed however the reading ends. `size` (w, h): video_info()'s, if the caller has it."""
    width, height = size or video_info(path)["size"]
    frame_bytes = width * height * bits_per_pixel // 8
    if pix_fmt == "yuv420p":  # chroma planes of ceil(w / 2) x ceil(h / 2), whatever the parity
        frame_bytes = width * height + 2 * (-(-width // 2)) * (-(-height // 2))
    command = ffmpeg(
        "-loglevel",
        "error",
        "-i",
        path,
        *output_params,
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-",
    )  # every frame decoded, once: none dropped or doubled for a rate
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        try:
            while len(frame := process.stdout.read(frame_bytes)) == frame_bytes:
                yield frame
        finally:
            process.kill()  # done already, or the reader stopped early


def read_yuv420(path, size=None):
    """Yield the frames of a video as its planes, decoded to yuv420p (as a video stores them: no
    colour conversion for the usual yuv420p sources), one at a time: the luma (H, W, 1), which is
    BT.601's Y as the network takes it, and Cb, Cr (ceil(H / 2), ceil(W / 2), 2), float32 in [0, 1]."""
    width, height = size or video_info(path)["size"]
    half_width, half_height = -(-width // 2), -(-height // 2)
    for raw in raw_frames(path, "yuv420p", output_params=EXACT_SCALING, size=(width, height)):
        planes = np.frombuffer(raw, np.uint8).astype(np.float32) / 255
        chroma = planes[width * height :].reshape(2, half_height, half_width).transpose(1, 2, 0)
        yield planes[: width * height].reshape(height, width, 1), chroma


def read_video(path):
    """Yield the frames of a video as float32 RGB (H, W, 3) in [0, 1], one at a time, decoded exactly."""
    width, height = video_info(path)["size"]
    for raw in raw_frames(path, output_params=EXACT_SCALING, size=(width, height)):
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(np.float32) / 255


class VideoEncoder:
    """Raw frames (bytes in `pix_fmt_in`) encoded by libx264 (yuv420p) into `path`, as a context
    manager: ffmpeg is waited for and its pipe closed at the end; a failure is a RuntimeError."""

    def __init__(self, path, width, height, fps, pix_fmt_in="rgb24", output_params=()):
        command = ffmpeg("-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix_fmt_in, "-s",
                         f"{width}x{height}", "-r", fps, "-i", "-", "-an", "-c:v", "libx264", "-pix_fmt",
                         "yuv420p", *output_params, path)  # fmt: skip
        self.log = tempfile.TemporaryFile()  # ffmpeg's complaints, read if it fails
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self.log)

    def write(self, frame):
        self.process.stdin.write(frame)

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        with self.log:
            try:
                self.process.stdin.close()
            except BrokenPipeError:  # ffmpeg ended already: its return code says why
                pass
            code = self.process.wait()
            self.log.seek(0)
            if code and error_type is None:
                raise RuntimeError(f"ffmpeg failed: {self.log.read().decode(errors='replace').strip()[-500:]}")


# ---------------------------------------------------------------------------------------------
# From images to HR patches


def shrink(image, max_side=MAX_SIDE):
    """The (H, W, C) image with its longer side at most `max_side` (antialiased bicubic)."""
    factor = max_side / max(image.shape[:2])
    if factor >= 1:
        return image
    shape = (round(image.shape[0] * factor), round(image.shape[1] * factor))
    return resize_bicubic(image, *shape).clip(0, 1)


def hr_patches(luma, mode, size=HR_SIZE, max_side=MAX_SIDE):
    """HR patches (n, size, size, 1) of one grey image: whole-image resize or non-overlapping crops
    (of the image shrunk to at most `max_side`)."""
    if mode == "resize":
        return resize(luma, (size, size), order=3, anti_aliasing=True)[None].clip(0, 1)
    luma = shrink(luma, max_side)
    rows, cols = luma.shape[0] // size, luma.shape[1] // size
    tiles = luma[: rows * size, : cols * size, 0]
    tiles = tiles.reshape(rows, size, cols, size).swapaxes(1, 2).reshape(-1, size, size, 1)
    return tiles[tiles.std(axis=(1, 2, 3)) >= MIN_CROP_STD]


def usable_patches(path, mode, size=HR_SIZE, max_side=MAX_SIDE):
    """(uint8 HR patches of one file, None) or (None, why it is skipped)."""
    try:
        image = read_image(path)
    except DataError as error:
        return None, f"skipped {error}"
    if min(image.shape[:2]) < size:
        return None, f"skipped {path}: {image.shape[1]}x{image.shape[0]} is smaller than {size}x{size}"
    patches = hr_patches(to_luma(image), mode, size, max_side)
    if not len(patches):
        return None, f"skipped {path}: no {size}x{size} crop with enough detail"
    return np.round(patches * 255).astype(np.uint8), None


def patches_per_file(files, mode="crops", progress=True, spill=None, size=HR_SIZE, max_side=MAX_SIDE):
    """{file: uint8 HR patches (n, size, size, 1)} for the usable files, decoded on parallel threads;
    each unusable one is skipped with a warning. With `spill` (a folder), the patches are written to
    one file there and the dict holds views of it: memory stays bounded however many files there are."""
    if mode not in ("crops", "resize"):
        raise ValueError(f"mode must be 'crops' or 'resize', not {mode!r}")
    kept, spilled, count = {}, spill and open(Path(spill) / "patches.u8", "wb"), 0
    with (
        ThreadPoolExecutor(os.cpu_count()) as pool,
        tqdm(total=len(files), desc="images", unit="file", disable=not progress) as bar,
    ):
        for start in range(0, len(files), 64):  # a few files in flight at a time: bounded memory
            chunk = files[start : start + 64]
            for path, ((patches, problem), _, warnings) in zip(
                chunk, pool.map(lambda path: in_worker(usable_patches, path, mode, size, max_side), chunk)
            ):
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
    tiles = np.memmap(spilled.name, np.uint8, "r", shape=(count, size, size, 1)) if count else None
    return {path: tiles[first : first + n] for path, (first, n) in kept.items()}


def uint8_array(spill, name, shape):
    """A zeroed uint8 array: a file `name` in the folder `spill`, memory-mapped, when given, else in memory."""
    if spill and shape[0]:
        return np.lib.format.open_memmap(Path(spill) / name, "w+", np.uint8, shape)
    return np.zeros(shape, np.uint8)


def test_sources(patches, test_fraction, seed=SEED):
    """The source images whose patches make the test split: about `test_fraction` of the patches,
    drawn whole image by whole image."""
    files = list(patches)
    np.random.default_rng(seed).shuffle(files)
    wanted = test_fraction * sum(len(p) for p in patches.values())
    test, count = [], 0
    for path in files:
        if count >= wanted or len(test) == len(files) - 1:
            break
        test.append(path)
        count += len(patches[path])
    return test


def split_by_source(patches, test_fraction, seed=SEED, spill=None, test=None):
    """(train HR, test HR): whole source images go to the test split (those of `test` when given,
    e.g. the bundled split's photographs cut into other tiles), so no test crop has a training
    crop from the same photograph."""
    files = list(patches)
    test = [path for path in (test_sources(patches, test_fraction, seed) if test is None else test) if path in patches]
    train = [p for p in files if p not in test]

    def stack(chosen, name):
        tile = patches[files[0]].shape[1:]
        stacked = uint8_array(spill, name, (sum(len(patches[p]) for p in chosen), *tile))
        position = 0
        for path in sorted(chosen, key=str):
            stacked[position : position + len(patches[path])] = patches[path]
            position += len(patches[path])
        return stacked

    return stack(train, "y_train.npy"), stack(test, "y_test.npy")


# ---------------------------------------------------------------------------------------------
# The training input pipeline: NumPy and Pillow on producer threads, the same for every Keras
# backend (no TensorFlow), the degradations on top of degrade()

TILES_PER_IMAGE = 32  # random 128x128 tiles cut from each decoded image, so decoding is not the bottleneck
SHUFFLE_TILES = 1024  # the shuffle buffer of streamed tiles: bounded memory (16 MB) whatever the folder holds
# Compressed-input training: each LR tile JPEG'd whole (so the 8x8 grid falls where a real file's does) by
# Pillow, or left clean, or ("compressed") one of its versions encoded by libx264 beforehand at H264_CRFS.
JPEG_QUALITIES, H264_CRFS = (30, 95), (18, 23, 28, 33)
CLEAN_SHARE, H264_SHARE = 0.2, 0.3  # the default shares of clean and H.264 tiles
VALIDATION_QUALITIES = (None, 30, 40, 50, 60, 75, 90)  # JPEG, cycled over the test split; None = clean
VALIDATION_CRFS = (23, 28)  # "compressed": H.264 test pairs too


def dihedral(image, choice):
    """One of the 8 flips/rotations (choice 0-7) of (..., H, W, C)."""
    image = np.rot90(image, choice % 4, axes=(-3, -2))
    return image[..., ::-1, :] if choice >= 4 else image


def compress(lr, rng, h264=None, shares=(CLEAN_SHARE, H264_SHARE), qualities=JPEG_QUALITIES):
    """The training degradation on top of degrade(): the whole LR tile JPEG'd by Pillow at a random
    quality in `qualities` (jpeg_luma()), left clean, or, given its `h264` versions (uint8, one per
    H264_CRFS), one of them: by `shares` (clean, H.264; JPEG the rest)."""
    draw = rng.random()
    if draw < shares[0]:
        return lr
    if h264 is not None and draw < sum(shares):
        return h264[rng.integers(len(h264))].astype(np.float32) / 255
    return jpeg_luma(lr, int(rng.integers(qualities[0], qualities[1] + 1)))


def h264_versions(x):
    """Each LR tile of `x` as libx264 leaves it at each of H264_CRFS: uint8 (N, len(H264_CRFS), h, w, 1)."""
    return np.stack([np.round(h264_luma(x, crf) * 255).astype(np.uint8) for crf in H264_CRFS], axis=1)


def compressed_validation(x_test, crfs=(), qualities=JPEG_QUALITIES):
    """The test split's LR as the compressed-input model is validated: the luma of a Pillow JPEG at the
    VALIDATION_QUALITIES within `qualities` in turn, some left clean, with `crfs` some H.264-encoded at those."""
    kinds = [kind for kind in VALIDATION_QUALITIES if kind is None or qualities[0] <= kind <= qualities[1]]
    kinds += [f"crf{crf}" for crf in crfs]
    chosen = [kinds[i % len(kinds)] for i in range(len(x_test))]
    lr = np.stack(
        [lr if kind is None or isinstance(kind, str) else jpeg_luma(lr, kind) for lr, kind in zip(x_test, chosen)]
    )
    for crf in crfs:
        encoded = [i for i, kind in enumerate(chosen) if kind == f"crf{crf}"]
        lr[encoded] = h264_luma(x_test[encoded], crf)
    return lr


def image_files(folders, report=True):
    """The streamable image files below `folders`; each other file skipped with one warning (when
    `report`: the chief of a cluster reports them, once)."""
    files = [path for folder in folders for path in list_files(folder)]
    with ThreadPoolExecutor() as pool:
        problems = list(
            tqdm(
                pool.map(stream_problem, files),
                total=len(files),
                desc="checking images",
                unit="file",
                disable=len(files) < 1000,
            )
        )
    for path, problem in zip(files, problems):
        if problem and report:
            warn(f"skipped {path}: {problem}")
    usable = [path for path, problem in zip(files, problems) if problem is None]
    if not usable:
        raise DataError(f"{', '.join(map(str, folders))}: no images to train on")
    return usable


def random_tiles(path, rng):
    """Up to TILES_PER_IMAGE random HR tiles (n, 128, 128, 1) uint8 of one file's luma (shrunk to
    MAX_SIDE, as the bundled tiles were made), the flat ones left out; none if it cannot be read."""
    try:
        luma = to_uint8(shrink(to_luma(read_image(path))))
    except DataError:  # broken past its header (which was checked): skipped
        return np.empty((0, HR_SIZE, HR_SIZE, 1), np.uint8)
    tops = rng.integers(luma.shape[0] - HR_SIZE + 1, size=TILES_PER_IMAGE)
    lefts = rng.integers(luma.shape[1] - HR_SIZE + 1, size=TILES_PER_IMAGE)
    tiles = np.stack([luma[top : top + HR_SIZE, left : left + HR_SIZE] for top, left in zip(tops, lefts)])
    return tiles[tiles.std(axis=(1, 2, 3)) >= MIN_CROP_STD * 255]


class TileStream:
    """Endless random HR tiles from image files, decoded ahead on `workers` threads, a new order each
    pass, shuffled in a buffer of SHUFFLE_TILES: memory does not grow with the number of files."""

    def __init__(self, files, seed=0, workers=None):
        self.files, self.rng = list(files), np.random.default_rng(seed)
        self.workers = workers or os.cpu_count()
        self.pool = ThreadPoolExecutor(self.workers)
        self.decoding, self.buffer, self.lock = collections.deque(), [], threading.Lock()
        self.order = iter(())

    def next_file(self):
        path = next(self.order, None)
        if path is None:
            self.order = iter([self.files[i] for i in self.rng.permutation(len(self.files))])
            path = next(self.order)
        return path

    def take(self, count):
        """`count` tiles (count, 128, 128, 1) uint8, drawn at random from the buffer."""
        with self.lock:
            while len(self.buffer) < max(count, SHUFFLE_TILES):
                while len(self.decoding) < self.workers:
                    seed = self.rng.integers(2**63)
                    self.decoding.append(self.pool.submit(random_tiles, self.next_file(), np.random.default_rng(seed)))
                self.buffer.extend(self.decoding.popleft().result())
            picks = set(self.rng.choice(len(self.buffer), count, replace=False).tolist())
            taken = [tile for i, tile in enumerate(self.buffer) if i in picks]
            self.buffer = [tile for i, tile in enumerate(self.buffer) if i not in picks]
        return np.stack(taken)

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)


def training_pair(
    lr,
    hr,
    rng,
    patch=None,
    augment=True,
    degradation="none",
    h264=None,
    shares=(CLEAN_SHARE, H264_SHARE),
    qualities=JPEG_QUALITIES,
    scale=SCALE,
):
    """One (LR, HR) training pair from a tile pair (HR `scale` times the LR): the LR degraded further
    (`degradation`), a random LR patch of `patch` pixels (at most the tile) and the HR patch under
    it, one of the 8 flips/rotations."""
    if degradation in ("jpeg", "compressed"):
        lr = compress(lr, rng, h264, shares, qualities)
    if patch:
        patch = min(patch, *lr.shape[:2])
        top, left = rng.integers(lr.shape[0] - patch + 1), rng.integers(lr.shape[1] - patch + 1)
        lr = lr[top : top + patch, left : left + patch]
        hr = hr[scale * top : scale * (top + patch), scale * left : scale * (left + patch)]
    if augment:
        choice = rng.integers(8)
        lr, hr = dihedral(lr, choice), dihedral(hr, choice)
    return lr, hr


class TrainingBatches:
    """Endless training batches (LR, HR), float32 NumPy, from the .npz pairs `x`, `y` (with their
    `h264` versions) or streamed from image `files`, made ahead on `workers` threads.

    From arrays, batch(step) depends on (seed, step) alone: a run resumed at any step sees exactly
    the batches the uninterrupted run saw."""

    def __init__(self, batch_size, x=None, y=None, h264=None, files=None, seed=0, workers=None, **recipe):
        self.batch_size, self.x, self.y, self.h264, self.seed, self.recipe = batch_size, x, y, h264, seed, recipe
        self.workers = workers or os.cpu_count()
        self.stream = TileStream(files, seed, self.workers) if files else None

    def batch(self, step):
        rng = np.random.default_rng([self.seed, step])
        if self.stream is not None:
            scale = self.recipe.get("scale", SCALE)
            hr = modcrop(self.stream.take(self.batch_size).astype(np.float32) / 255, scale)
            lr, h264 = degrade(hr, scale), [None] * len(hr)
        else:
            per_pass = len(self.x) // self.batch_size  # each pass over the pairs in its own order
            order = np.random.default_rng([self.seed, step // per_pass]).permutation(len(self.x))
            chosen = np.sort(order[step % per_pass * self.batch_size :][: self.batch_size])
            lr, hr = self.x[chosen], self.y[chosen]
            h264 = [None] * len(chosen) if self.h264 is None else self.h264[chosen]
        pairs = [training_pair(*pair, rng, h264=versions, **self.recipe) for *pair, versions in zip(lr, hr, h264)]
        return tuple(np.ascontiguousarray(np.stack(side), np.float32) for side in zip(*pairs))

    def __call__(self, start=0):
        """The batches of steps start, start + 1, ..., computed ahead on the worker threads."""
        with ThreadPoolExecutor(self.workers) as pool:
            ahead = collections.deque()
            try:
                for step in itertools.count(start):
                    ahead.append(pool.submit(self.batch, step))
                    if len(ahead) > 2 * self.workers:
                        yield ahead.popleft().result()
            finally:
                for future in ahead:
                    future.cancel()
                if self.stream is not None:
                    self.stream.close()


# ---------------------------------------------------------------------------------------------
# .npz datasets


def to_uint8(images):
    """Images in [0, 1] as uint8 (clipped, rounded); in place on one float copy (2x faster, for video)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    scaled = np.multiply(images, 255, dtype=np.result_type(images.dtype, np.float32))
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.uint8)


def save_dataset(path, x_train, y_train, x_test, y_test):
    """Write a compressed .npz of uint8 arrays (x = LR, y = HR); atomic.

    The members are bzip2-compressed (np.load reads any zip compression): 17 % smaller than
    np.savez_compressed's deflate on photographs, so more crops fit in data/."""
    arrays = dict(zip(KEYS, map(to_uint8, (x_train, y_train, x_test, y_test))))

    with atomic_output(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_BZIP2) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load_dataset(paths=DEFAULT_DATASET, scale=SCALE):
    """(x_train, y_train, x_test, y_test) as float32 in [0, 1]; several files are concatenated. At
    a scale other than the files' own (the bundled pairs are x2), the LR is made anew from the HR
    by degrade(), the HR cropped to a multiple of the scale: one .npz serves every scale."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    parts = []
    for path in paths:
        try:
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as file:
                missing = [key for key in KEYS if key not in file]
                if missing:
                    raise DataError(f"{path}: not a dataset, missing {', '.join(missing)}")
                parts.append([file[key] for key in KEYS])
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: cannot read dataset ({error})") from None
        for key, array in zip(KEYS, parts[-1]):
            if array.ndim != 4 or array.shape[-1] != 1:
                raise DataError(f"{path}: {key} has shape {array.shape}, expected (N, H, W, 1)")
        parts[-1] = at_scale(*parts[-1], scale=scale)
    try:
        return tuple(to_unit_range(np.concatenate([part[i] for part in parts]), paths) for i in range(len(KEYS)))
    except ValueError:
        raise DataError(f"{', '.join(map(str, paths))}: image sizes differ between files") from None


def at_scale(x_train, y_train, x_test, y_test, scale):
    """The pairs as they are when their HR is `scale` times their LR; else the HR cropped to a
    multiple of `scale` and the LR made from it by degrade()."""
    if y_train.shape[1] == scale * x_train.shape[1] and y_train.shape[2] == scale * x_train.shape[2]:
        return x_train, y_train, x_test, y_test
    y_train, y_test = modcrop(y_train, scale), modcrop(y_test, scale)
    return degrade_uint8(y_train, scale=scale), y_train, degrade_uint8(y_test, scale=scale), y_test


def dataset_from_patches(patches, test_fraction, seed=SEED, max_train=None, spill=None, test=None):
    """(x_train, y_train, x_test, y_test) from {source: HR patches}, split by source (see
    split_by_source); the arrays are files in `spill` when it is given (see patches_per_file)."""
    y_train, y_test = split_by_source(patches, test_fraction, seed, spill, test)
    if max_train is not None and len(y_train) > max_train:
        keep = np.sort(np.random.default_rng(seed).choice(len(y_train), max_train, replace=False))
        y_train = y_train[keep]
    return degrade_uint8(y_train, spill, "x_train.npy"), y_train, degrade_uint8(y_test, spill, "x_test.npy"), y_test


def degrade_uint8(hr, spill=None, name="x.npy", scale=SCALE):
    """degrade() of uint8 HR images, as uint8, a few at a time (bounded memory; into a file in
    `spill` when given)."""
    lr = uint8_array(spill, name, (len(hr), hr.shape[1] // scale, hr.shape[2] // scale, hr.shape[3]))
    for start in range(0, len(hr), 256):
        lr[start : start + 256] = to_uint8(degrade(hr[start : start + 256].astype(np.float32) / 255, scale))
    return lr


def video_dataset(path, test_fraction, progress=True):
    """Each frame resized to 128x128 grey (the original repo's experiment); the last frames test."""
    hr = [
        hr_patches(to_luma(frame), "resize")[0]
        for frame in tqdm(read_video(path), desc="frames", unit="frame", disable=not progress)
    ]
    if not hr:
        raise DataError(f"{path}: the video has no frames")
    hr = to_uint8(np.stack(hr))
    n_test = int(round(len(hr) * test_fraction))
    y_train, y_test = hr[: len(hr) - n_test], hr[len(hr) - n_test :]
    return degrade_uint8(y_train), y_train, degrade_uint8(y_test), y_test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="ingest every image below DIR (recursively)")
    source.add_argument("--video", metavar="FILE", help="ingest every frame of a video")
    parser.add_argument(
        "--mode",
        choices=["crops", "resize"],
        default="crops",
        help="crops: 128x128 crops of large photos, flat ones skipped; resize: each whole "
        "image resized to 128x128, the original repo's way for faces (default: crops)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="share of pairs held out for testing, by whole source image "
        "(by the last frames for a video) (default: 0.1)",
    )
    parser.add_argument("--out", metavar="FILE.npz", help="output dataset (required with --images/--video)")
    args = parser.parse_args(argv)
    try:
        if not 0 <= args.test_fraction < 1:
            raise DataError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
        if args.images is None and args.video is None:  # the bundled data's provenance lives beside it
            sys.exit(subprocess.run([sys.executable, str(DATA_DIR / "build_bundled.py")]).returncode)
        if not args.out:
            parser.error("--out FILE.npz is required with --images or --video")
        output_folder(args.out)
        try:
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
