"""testing.py: metrics, the benchmark protocol, the colour path, user images, the default run."""
import csv
import resource
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import BENCHMARKS, REPO, natural_image
from skimage.color import rgb2hsv
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from test_data import run_main

import data_preparation as dp
import model
import testing


@pytest.fixture(scope="module")
def net():
    return model.load_model(REPO / "model.h5")


def test_measure_agrees_with_known_values():
    rng = np.random.default_rng(0)
    hr = rng.random((40, 40, 1)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    psnr, ssim = testing.measure(hr, sr)
    inner = (slice(2, -2), slice(2, -2), 0)
    mse = np.mean((hr[inner].astype(np.float64) - sr[inner]) ** 2)
    assert psnr == pytest.approx(10 * np.log10(1 / mse), abs=1e-6)
    assert psnr == pytest.approx(peak_signal_noise_ratio(hr[inner], sr[inner], data_range=1), abs=1e-4)
    assert ssim == pytest.approx(structural_similarity(hr[inner], sr[inner], data_range=1, gaussian_weights=True,
                                                       sigma=1.5, use_sample_covariance=False), abs=1e-6)
    assert testing.measure(hr, hr)[1] == pytest.approx(1.0)
    assert 0 < ssim < 1


def test_interpolations_have_the_right_size():
    lr = dp.to_luma(natural_image(20, 30))[None]
    for method in ["skimage_nearest", "skimage_bilinear", "skimage_bicubic", "bicubic"]:
        out = testing.interpolate(lr, method)
        assert out.shape == (1, 40, 60, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(testing.interpolate(lr, "skimage_nearest")[0, ::2, ::2], lr[0])


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="../shared/benchmarks is not beside the checkout")
def test_benchmark_reproduces_published_bicubic_and_writes_tables(net, tmp_path):
    testing.main(["--benchmark", str(BENCHMARKS / "Set5"), str(BENCHMARKS / "Set14"), "--results", str(tmp_path)])
    with open(tmp_path / "benchmark.csv") as file:
        rows = {(r["dataset"], r["method"]): float(r["psnr"]) for r in csv.DictReader(file)}
    assert abs(rows["Set5", "bicubic"] - 33.66) <= 0.1
    assert abs(rows["Set14", "bicubic"] - 30.24) <= 0.15
    assert rows["Set5", "model"] > rows["Set5", "bicubic"] + 2  # a trained model, not an interpolation
    table = (tmp_path / "benchmark.md").read_text()
    assert "FSRCNN" in table and "37.00 / 0.9558" in table and "model (ours)" in table


def test_colour_path_keeps_grey_grey_and_hue(net):
    grey = np.repeat(dp.to_luma(natural_image(40, 48))[..., :1], 3, -1)[None]
    out = testing.upscale_color(net, grey)
    assert out.shape == (1, 80, 96, 3)
    assert np.abs(out[..., 0] - out[..., 1]).max() < 1 / 255 and np.abs(out[..., 1] - out[..., 2]).max() < 1 / 255
    colour = natural_image(40, 48, 3)[None]
    out = testing.upscale_color(net, colour)
    reference = testing.interpolate(colour, "bicubic")
    hue, reference_hue = rgb2hsv(out[0])[..., 0], rgb2hsv(reference[0])[..., 0]
    difference = np.minimum(np.abs(hue - reference_hue), 1 - np.abs(hue - reference_hue))
    assert np.median(difference) < 0.02


def test_upscale_users_images_of_every_kind(net, tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    rgb = (natural_image(60, 70) * 255).astype(np.uint8)
    iio.imwrite(images / "photo.jpg", rgb)
    iio.imwrite(images / "grey.png", rgb[..., 0])
    iio.imwrite(images / "alpha.png", np.dstack([rgb, np.linspace(0, 255, 70, dtype=np.uint8)[None].repeat(60, 0)]))
    iio.imwrite(images / "deep.png", (natural_image(50, 40)[..., 0] * 65535).astype(np.uint16))
    (images / "broken.png").write_bytes(b"\x89PNG broken")
    files = [str(images / name) for name in ["photo.jpg", "grey.png", "missing.png", "alpha.png", "broken.png",
                                              "deep.png"]]
    code, err = run_main(testing.main, ["--upscale", *files, "--out", str(tmp_path / "out")], capsys)
    assert code != 0 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 2 of 6") and "missing.png" in last and "broken.png" in last
    out = tmp_path / "out"
    assert iio.imread(out / "photo.png").shape == (120, 140, 3)
    assert iio.imread(out / "grey.png").shape == (120, 140)
    alpha = iio.imread(out / "alpha.png")
    assert alpha.shape == (120, 140, 4) and abs(int(alpha[0, -1, 3]) - 255) <= 3 and alpha[0, 0, 3] <= 3
    deep = iio.imread(out / "deep.png")
    assert deep.shape == (100, 80) and deep.dtype == np.uint16
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "deep.png", "grey.png", "photo.png"]


def test_missing_model_says_how_to_make_it(tmp_path, capsys):
    code, err = run_main(testing.main, ["--model", str(tmp_path / "none.h5"), "--results", str(tmp_path)], capsys)
    assert code != 0 and "python model.py" in err.strip().splitlines()[-1] and "Traceback" not in err


def test_default_run_writes_metrics_and_figures(tmp_path, capsys):
    testing.main(["--results", str(tmp_path)])
    for name in ["metrics.csv", "metrics.md", "comparison.png", "zoom.png", "scatter.png"]:
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    methods = {row["method"] for row in rows}
    assert {"skimage_nearest", "skimage_bilinear", "skimage_bicubic", "model"} <= methods
    mean = {m: np.mean([float(r["psnr"]) for r in rows if r["method"] == m]) for m in methods}
    assert mean["model"] > mean["skimage_bicubic"] > mean["skimage_bilinear"] > mean["skimage_nearest"]
    assert "| model |" in (tmp_path / "metrics.md").read_text()


def test_large_photo_is_tiled_within_4_gb(tmp_path):
    """A 3072x2048 photo goes through in tiles: peak memory stays bounded (the tiles' equality
    with an untiled run is test_model.py's test_tiled_upscale_equals_untiled)."""
    photo = tmp_path / "large.png"
    iio.imwrite(photo, (natural_image(2048, 3072, 7) * 255).astype(np.uint8))
    command = [sys.executable, str(REPO / "testing.py"), "--upscale", str(photo), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert iio.improps(tmp_path / "out" / "large.png").shape == (4096, 6144, 3)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30  # Linux: kB
    assert peak_gb < 4, f"peak RSS {peak_gb:.2f} GB"
