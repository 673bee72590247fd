"""The same scripts on every Keras backend: JAX (and PyTorch where it is installed) with TensorFlow
made unimportable, against TensorFlow in this process. The child processes all start together
when the module does (each takes seconds, mostly importing) and each test checks what one made."""

import concurrent.futures
import functools
import importlib.util
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REPO, in_background, natural_image, write_tiny_dataset

import data_preparation as dp
import model
import testing

pytestmark = pytest.mark.slow

HAS_TORCH = importlib.util.find_spec("torch") is not None
OTHER_BACKENDS = ["jax", pytest.param("torch", marks=pytest.mark.skipif(
    not HAS_TORCH, reason="PyTorch is not installed here (pip install torch): its tests are skipped"))]  # fmt: skip
WITHOUT_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; sys.path.insert(0, sys.argv.pop(1))\n"
load = functools.partial(np.load, allow_pickle=False)  # arrays only: a pickle in a file could run code
RUN_SCRIPT = "import runpy; sys.argv.pop(0); runpy.run_path(sys.argv[0], run_name='__main__')"

TRAIN_AND_UPSCALE = """
import functools, model, numpy as np, pathlib, training
load = functools.partial(np.load, allow_pickle=False)
folder, common = pathlib.Path(sys.argv[1]), sys.argv[2:]
for name, source in (("npz", []), ("folder", ["--images", str(folder / "photos")])):
    training.main([*common, *source, "--out", str(folder / f"{name}.h5")])
    net = model.load_model(folder / f"{name}.h5")
    np.save(folder / f"{name}.npy", model.upscale(net, load(folder / "grey.npy")[:1], precision="float32"))
grey, colour = load(folder / "grey.npy"), load(folder / "colour.npy")
for path in (model.DEFAULT_MODEL, model.COMPRESSED_MODEL):
    net = model.load_model(path)
    np.savez(folder / f"{path.stem}.npz", grey=model.upscale(net, grey, precision="float32"),
             tiled=model.upscale(net, grey, tile=16, precision="float32"),
             colour=model.upscale_color(net, colour, tile=16, precision="float32"))
"""


def child(backend, code, *args, env=None):
    """A child process on `backend`, TensorFlow unimportable, running `code` (Python, or a script of
    the repo as __main__) with `args`."""
    if code.endswith(".py"):
        args, code = (str(REPO / code), *args), RUN_SCRIPT
    environment = {**os.environ, "KERAS_BACKEND": backend, **(env or {})}
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW + code, str(REPO), *map(str, args)],
                          capture_output=True, text=True, env=environment, timeout=600)  # fmt: skip


TINY_RUN = "--new --width 8 --blocks 1 --epochs 1 --steps-per-epoch 4 --batch-size 8 --patch 24 --precision float32"


@in_background(
    "test_training_without_tensorflow_saves_a_model_tensorflow_runs_alike",
    "test_upscale_equals_tensorflows_on_odd_sizes_colour_and_tiles",
    "test_testing_upscale_writes_the_same_images_under_jax",
    "test_mirrored_under_jax_spreads_each_batch_over_the_devices",
)
def children(root):
    """{name: (folder, CompletedProcess)} of every child process, run side by side."""
    (root / "in").mkdir(parents=True)
    iio.imwrite(root / "in" / "a.png", dp.to_uint8(natural_image(45, 61, 1)))
    iio.imwrite(root / "in" / "b.jpg", dp.to_uint8(natural_image(64, 48, 2)), quality=70)
    tiny = write_tiny_dataset(root / "tiny.npz")
    jobs = {"upscale_dir": ("jax", "testing.py", "--upscale", root / "in", "--out", root / "jax",
                            "--precision", "float32"),
            "mirrored": ("jax", "training.py", *TINY_RUN.split(), "--strategy", "mirrored", "--data",
                         tiny, "--out", root / "mirrored.h5")}  # fmt: skip
    for backend in ["jax"] + ["torch"] * HAS_TORCH:
        folder = root / backend
        (folder / "photos").mkdir(parents=True)
        for seed in range(3):
            iio.imwrite(folder / "photos" / f"{seed}.png", dp.to_uint8(natural_image(160, 200, seed)))
        np.save(folder / "grey.npy", np.stack([dp.to_luma(natural_image(37, 53, seed)) for seed in range(2)]))
        np.save(folder / "colour.npy", np.stack([natural_image(37, 53, 7), natural_image(37, 53, 8)]))
        jobs[backend] = (backend, TRAIN_AND_UPSCALE, folder, *TINY_RUN.split(), "--data", tiny)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        env = {"mirrored": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}}
        runs = {name: pool.submit(child, *job, env=env.get(name)) for name, job in jobs.items()}
        return {name: (root / name if name in ("jax", "torch") else root, run.result()) for name, run in runs.items()}


def finished(background, name):
    folder, result = background(children)[name]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return folder, result


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_training_without_tensorflow_saves_a_model_tensorflow_runs_alike(backend, background):
    """training.py on `backend`, from the bundled-format .npz and from a folder of images: each
    model it saves loads in TensorFlow and gives the output it gave there (within 1e-5)."""
    folder, result = finished(background, backend)
    assert result.stdout.startswith(f"Keras 3.15.1, {backend} backend, computing on the cpu in float32")
    assert result.stdout.count("best validation PSNR") == 2
    lr = load(folder / "grey.npy")[:1]
    for name in ("npz", "folder"):
        ours = model.upscale(model.load_model(folder / f"{name}.h5"), lr, precision="float32")
        np.testing.assert_allclose(load(folder / f"{name}.npy"), ours, atol=1e-5)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_upscale_equals_tensorflows_on_odd_sizes_colour_and_tiles(backend, background):
    folder, _ = finished(background, backend)
    grey, colour = load(folder / "grey.npy"), load(folder / "colour.npy")
    for path in (model.DEFAULT_MODEL, model.COMPRESSED_MODEL):
        with load(folder / f"{path.stem}.npz") as stored:
            net, theirs = model.load_model(path), dict(stored)
        assert theirs["grey"].shape == (2, 74, 106, 1) and theirs["colour"].shape == (2, 74, 106, 3)
        np.testing.assert_allclose(theirs["grey"], model.upscale(net, grey, precision="float32"), atol=1e-5)
        np.testing.assert_allclose(theirs["tiled"], theirs["grey"], atol=1e-5)
        ours = model.upscale_color(net, colour, precision="float32")
        np.testing.assert_allclose(theirs["colour"], ours, atol=1e-5)


def test_testing_upscale_writes_the_same_images_under_jax(background):
    """testing.py --upscale DIR (a PNG and a JPEG, so both committed models) under JAX writes the
    images TensorFlow writes."""
    root, _ = finished(background, "upscale_dir")
    testing.main(["--upscale", str(root / "in"), "--out", str(root / "tf"), "--precision", "float32"])
    for name in ("a.png", "b.png"):
        ours, theirs = (iio.imread(root / side / name).astype(np.float64) for side in ("tf", "jax"))
        assert ours.shape == theirs.shape
        assert np.mean(np.abs(dp.to_luma(ours / 255) - dp.to_luma(theirs / 255))) <= 1e-4


def test_mirrored_under_jax_spreads_each_batch_over_the_devices(background):
    """--strategy mirrored is keras.distribution.DataParallel under JAX: two (CPU) devices, two
    replicas, as the run itself reports."""
    root, result = finished(background, "mirrored")
    assert "training on 2 replicas" in result.stdout
    model.load_model(root / "mirrored.h5")
