"""Shared fixtures: the repo on sys.path, two logical CPU devices (for MirroredStrategy), and small
generated images, datasets and videos."""

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow touches a device: MirroredStrategy then has two CPU replicas.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import imageio_ffmpeg  # noqa: E402

import data_preparation  # noqa: E402

BENCHMARKS = REPO.parent / "shared" / "benchmarks"
if os.environ.get("CI") and not BENCHMARKS.is_dir():  # CI always has them: no test may skip for their lack
    raise RuntimeError(f"{BENCHMARKS} is missing: CI runs the benchmark tests on it")


def pytest_configure(config):
    """The settings a pytest.ini would hold (the repo keeps its top level to the scripts)."""
    config.addinivalue_line("markers", "slow: over a few seconds; -m 'not slow' runs the rest")
    for warning in ("ResourceWarning", "pytest.PytestUnraisableExceptionWarning"):  # an unclosed file is a bug
        config.addinivalue_line("filterwarnings", f"error::{warning}")
    # Known and harmless, from the pinned libraries themselves (so that a new warning shows): Keras'
    # TensorFlow backend converts tensors with np.array(x, copy=False), which NumPy 2 warns about;
    # imageio, trying its plugins on a file that is no image, imports its deprecated DICOM reader.
    for known in (
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras.src.backend",
        "ignore:The legacy `DICOM` plugin is deprecated:DeprecationWarning",
        "ignore:Corrupt EXIF data:UserWarning:PIL",  # the broken TIFF that a test reads on purpose
    ):
        config.addinivalue_line("filterwarnings", known)


def natural_image(height, width, seed=0):
    """A smooth random image with edges, in [0, 1], (H, W, 3): something like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.5 + 0.4 * np.sin(6 * x + 3 * y + k) * np.cos(4 * y - k) for k in range(3)], -1)
    image += ((x > 0.5) ^ (y > 0.4))[..., None] * 0.2 + rng.normal(0, 0.02, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def write_tiny_dataset(path):
    """A small .npz dataset at `path` (48 training and 8 test pairs) of generated images, made by degrade()."""
    hr = np.stack([data_preparation.to_luma(natural_image(128, 128, seed)) for seed in range(56)])
    lr = data_preparation.degrade(hr)
    data_preparation.save_dataset(path, lr[:48], hr[:48], lr[48:], hr[48:])
    return path


@pytest.fixture
def tiny_dataset(tmp_path):
    return write_tiny_dataset(tmp_path / "tiny.npz")


def make_video(path, width, height, frames, audio=False, codec="libx264", sar="1/1", audio_codec="aac", times=None):
    """A generated test video (ffmpeg's test pattern), optionally with a sine sound track; `times`:
    an ffmpeg setpts expression for the frames' time stamps (a variable frame rate)."""
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={width}x{height}:rate=10,setsar={sar}" + (f",setpts={times}" if times else ""),
    ]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440", "-c:a", audio_codec]
    pixel_format = ["-pix_fmt", "yuv420p"] if codec == "libx264" else []
    command += ["-frames:v", str(frames), "-c:v", codec, *pixel_format, "-shortest", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def ffprobe_streams(path):
    """The 'Stream' lines ffmpeg prints for a file."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return [line.strip() for line in result.stderr.splitlines() if "Stream #" in line]


def peak_rss_mb(command):
    """Peak resident memory of a command, in MB, measured by a fresh Python process that runs only
    it (pytest's own RUSAGE_CHILDREN would count every earlier child too)."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout) / 1024


def mean_psnr(hr, sr):
    """Mean PSNR (dB) over a batch of images in [0, 1], each image's own MSE."""
    mse = np.mean((np.asarray(hr, np.float64) - np.clip(sr, 0, 1)) ** 2, axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(1 / mse)))


# ---------------------------------------------------------------------------------------------
# Jobs of child processes started with the session, beside the tests, for the tests that read
# them: most of a child's time is a single-threaded start-up, which the other core can share.

BACKGROUND = {}  # job -> the names of the tests that read its result


def in_background(*test_names):
    """Decorator: run this job (a function of an empty folder) when the session starts, if one of
    `test_names` was collected; those tests get its result from the `background` fixture."""

    def register(job):
        BACKGROUND[job] = set(test_names)
        return job

    return register


def pytest_collection_finish(session):
    wanted = {item.originalname or item.name for item in session.items}
    jobs = [job for job, names in BACKGROUND.items() if names & wanted]
    session.config.background_folder = Path(tempfile.mkdtemp(prefix="sr-background-"))
    session.config.background_pool = pool = concurrent.futures.ThreadPoolExecutor(2)
    session.config.background = {job: pool.submit(job, session.config.background_folder / job.__name__)
                                 for job in jobs}  # fmt: skip


def pytest_sessionfinish(session):
    if hasattr(session.config, "background_pool"):
        session.config.background_pool.shutdown(cancel_futures=True)
        shutil.rmtree(session.config.background_folder, ignore_errors=True)


@pytest.fixture
def background(request):
    """The result of a background job: background(job), waiting for it if it is still running."""
    return lambda job: request.config.background[job].result(timeout=1800)
