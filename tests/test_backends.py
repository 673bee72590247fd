"""The same scripts on every Keras backend: JAX (and PyTorch where it is installed) with TensorFlow
made unimportable, against TensorFlow in this process."""

import importlib.util
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REPO, natural_image

import data_preparation as dp
import model

pytestmark = pytest.mark.slow  # child processes on other backends, each ~5 s

OTHER_BACKENDS = [
    "jax",
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("torch") is None, reason="PyTorch is not installed here (pip install torch)"
        ),
    ),
]
WITHOUT_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; sys.path.insert(0, sys.argv.pop(1))\n"


def run_without_tensorflow(backend, code_or_script, *args, cwd=None):
    """A child process on `backend`, TensorFlow unimportable: `code_or_script` is Python code, or a
    script of the repo run as __main__. Returns the CompletedProcess (it must succeed)."""
    if code_or_script.endswith(".py"):
        code = WITHOUT_TENSORFLOW + (
            "import runpy; sys.argv[0] = sys.argv[0]\n"
            f"runpy.run_path({str(REPO / code_or_script)!r}, run_name='__main__')"
        )
    else:
        code = WITHOUT_TENSORFLOW + code_or_script
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", code, str(REPO), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


TRAIN_BOTH = """
import model, numpy as np, pathlib, training
folder, common = pathlib.Path(sys.argv[1]), sys.argv[2:]
for name, source in (("npz", []), ("folder", ["--images", str(folder / "photos")])):
    training.main([*common, *source, "--out", str(folder / f"{name}.h5")])
    net = model.load_model(folder / f"{name}.h5")
    np.save(folder / f"{name}.npy", model.upscale(net, np.load(folder / "lr.npy"), precision="float32"))
"""


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_training_without_tensorflow_saves_a_model_tensorflow_runs_alike(backend, tiny_dataset, tmp_path):
    """training.py on `backend`, from the bundled-format .npz and from a folder of images: each
    model it saves loads in TensorFlow and gives the output it gave there (within 1e-5)."""
    (tmp_path / "photos").mkdir()
    for seed in range(3):
        iio.imwrite(tmp_path / "photos" / f"{seed}.png", dp.to_uint8(natural_image(160, 200, seed)))
    lr = dp.to_luma(natural_image(37, 53, 3))[None]
    np.save(tmp_path / "lr.npy", lr)
    common = "--new --width 8 --blocks 1 --epochs 1 --steps-per-epoch 4 --batch-size 8 --patch 24 --precision float32"
    result = run_without_tensorflow(backend, TRAIN_BOTH, tmp_path, *common.split(), "--data", tiny_dataset)
    assert result.stdout.startswith(f"Keras 3.15.1, {backend} backend, computing on the cpu in float32")
    assert result.stdout.count("best validation PSNR") == 2
    for name in ("npz", "folder"):
        ours = model.upscale(model.load_model(tmp_path / f"{name}.h5"), lr, precision="float32")
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), ours, atol=1e-5)


UPSCALE_BOTH = """
import model, numpy as np, pathlib
folder = pathlib.Path(sys.argv[1])
grey, colour = np.load(folder / "grey.npy"), np.load(folder / "colour.npy")
for path in (model.DEFAULT_MODEL, model.COMPRESSED_MODEL):
    net = model.load_model(path)
    outputs = {"grey": model.upscale(net, grey, precision="float32"),
               "tiled": model.upscale(net, grey, tile=16, precision="float32"),
               "colour": model.upscale_color(net, colour, tile=16, precision="float32")}
    np.savez(folder / f"{path.stem}.npz", **outputs)
"""


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_upscale_equals_tensorflows_on_odd_sizes_colour_and_tiles(backend, tmp_path):
    grey = np.stack([dp.to_luma(natural_image(37, 53, seed)) for seed in range(2)])
    colour = np.stack([natural_image(37, 53, 7), natural_image(37, 53, 8)])
    np.save(tmp_path / "grey.npy", grey)
    np.save(tmp_path / "colour.npy", colour)
    run_without_tensorflow(backend, UPSCALE_BOTH, tmp_path)
    for path in (model.DEFAULT_MODEL, model.COMPRESSED_MODEL):
        net, theirs = model.load_model(path), np.load(tmp_path / f"{path.stem}.npz")
        assert theirs["grey"].shape == (2, 74, 106, 1) and theirs["colour"].shape == (2, 74, 106, 3)
        np.testing.assert_allclose(theirs["grey"], model.upscale(net, grey, precision="float32"), atol=1e-5)
        np.testing.assert_allclose(theirs["tiled"], theirs["grey"], atol=1e-5)
        np.testing.assert_allclose(theirs["colour"], model.upscale_color(net, colour, precision="float32"), atol=1e-5)


def test_testing_upscale_writes_the_same_images_under_jax(tmp_path):
    """testing.py --upscale DIR (a PNG and a JPEG, so both committed models) under JAX writes the
    images TensorFlow writes."""
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "a.png", dp.to_uint8(natural_image(45, 61, 1)))
    iio.imwrite(folder / "b.jpg", dp.to_uint8(natural_image(64, 48, 2)), quality=70)
    run_without_tensorflow(
        "jax", "testing.py", "--upscale", folder, "--out", tmp_path / "jax", "--precision", "float32"
    )
    subprocess.run(
        [
            sys.executable,
            str(REPO / "testing.py"),
            "--upscale",
            str(folder),
            "--out",
            str(tmp_path / "tf"),
            "--precision",
            "float32",
        ],
        check=True,
        capture_output=True,
    )
    for name in ("a.png", "b.png"):
        ours, theirs = (iio.imread(tmp_path / side / name).astype(np.float64) for side in ("tf", "jax"))
        assert ours.shape == theirs.shape
        assert np.mean(np.abs(dp.to_luma(ours / 255) - dp.to_luma(theirs / 255))) <= 1e-4


def test_mirrored_under_jax_spreads_each_batch_over_the_devices(tiny_dataset, tmp_path):
    """--strategy mirrored is keras.distribution.DataParallel under JAX: two (CPU) devices, two
    replicas, as the run itself reports."""
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    try:
        result = run_without_tensorflow(
            "jax",
            "training.py",
            "--new",
            "--width",
            "8",
            "--blocks",
            "1",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "3",
            "--batch-size",
            "8",
            "--patch",
            "24",
            "--strategy",
            "mirrored",
            "--precision",
            "float32",
            "--data",
            tiny_dataset,
            "--out",
            tmp_path / "m.h5",
        )
    finally:
        del os.environ["XLA_FLAGS"]
    assert "training on 2 replicas" in result.stdout
    model.load_model(tmp_path / "m.h5")
