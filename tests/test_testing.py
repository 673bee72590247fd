"""testing.py: metrics, the benchmark protocol (clean and JPEG), the colour path, users' files, the default run.

Flags: --benchmark, --jpeg: test_benchmark_clean_and_jpeg_tracks_write_tables,
test_sweep_rows_are_each_method_run_directly_and_its_figure_is_shown; --sweep, --show: the latter; --upscale, --out:
test_upscale_users_images_of_every_kind; --scale:
test_scales.py::test_the_test_split_at_x4_is_measured_with_the_x4_model,
test_scales.py::test_each_scale_picks_its_committed_models_by_file_type; --size, --width:
test_scales.py::test_size_gives_exactly_that_size_from_the_smallest_scale_that_reaches_it; --model:
test_missing_model_says_how_to_make_it, test_upscale_runs_the_model_chosen_for_each_file,
test_scales.py::test_a_model_of_another_scale_is_a_one_line_error; --data, --results:
test_metrics_rows_are_each_method_run_directly; --self-ensemble, --precision: test_sweep_rows_... (benchmark),
test_metrics_rows_... (test split), test_upscale_self_ensemble_precision_and_16_bits (--upscale); --verbose:
test_verbose_shows_the_backends_start_up_log.
Rows/columns: metrics.csv (image, method, psnr, ssim; each skimage method, model, model_compressed) and metrics.md
(mean ± std): test_metrics_rows_are_each_method_run_directly (x4: test_scales.py::test_the_test_split_at_x4_...);
benchmark.* / robustness.* (input clean | jpegQ, dataset, method incl. "+", psnr, ssim):
test_sweep_rows_are_each_method_run_directly_and_its_figure_is_shown (every row by value),
test_benchmark_clean_and_jpeg_tracks_write_tables (Set5: bicubic as published, the models beat it, published rows);
upscaled PNGs: test_upscale_self_ensemble_precision_and_16_bits (the model's pixels; 16 bits = 8 bits scaled),
test_upscale_runs_the_model_chosen_for_each_file (beats bicubic; the compressed-input model on a JPEG).
Model by file type: test_each_file_gets_the_model_for_its_type (JPEG, PNG),
test_a_phones_multi_picture_jpeg_gets_the_compressed_input_model (a phone's MPO).
"""

import csv
import functools
import io
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.ndimage
from conftest import BENCHMARKS, REPO, in_background, natural_image, peak_rss_mb
from PIL import Image, ImageCms
from skimage.color import rgb2hsv
from test_data import run_main

import data_preparation as dp
import model
import testing


@pytest.fixture(scope="module")
def net():
    return model.load_model(REPO / "model.h5")


@in_background("test_a_tall_photo_goes_in_strips_and_a_wide_one_in_tiles")
def photo_peaks(folder):
    """testing.py --upscale, each in a fresh process, on a 512x384 colour photo, the same 16 times
    taller (colour converted in strips) and 8 times wider in grey (the network in tiles): {name:
    (output folder, peak MB)}."""
    folder.mkdir(parents=True)
    small = (natural_image(384, 512, 7) * 255).astype(np.uint8)
    iio.imwrite(folder / "small.png", small)
    iio.imwrite(folder / "tall.png", np.tile(small, (16, 1, 1)))
    iio.imwrite(folder / "wide.png", np.tile(small[..., 0], (1, 8)))
    runs = {}
    for name in ("small", "tall", "wide"):
        command = [sys.executable, str(REPO / "testing.py"), "--upscale", str(folder / f"{name}.png"), "--out",
                   str(folder / f"out_{name}")]  # fmt: skip
        runs[name] = folder / f"out_{name}", peak_rss_mb(command)
    return runs


def run_cli(*args):
    """(exit code, stderr lines) of testing.py run as a user runs it."""
    result = subprocess.run(
        [sys.executable, str(REPO / "testing.py"), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    return result.returncode, result.stderr.strip().splitlines()


def test_measure_is_the_psnr_formula_on_the_inner_pixels():
    rng = np.random.default_rng(0)
    hr = rng.random((40, 40, 1)).astype(np.float32)
    sr = hr.copy()
    sr[:2] = 1 - sr[:2]  # a wrong border is cropped away, not measured
    sr[2:-2, 2:-2] += rng.normal(0, 0.05, (36, 36, 1)).astype(np.float32)
    psnr, ssim = testing.measure(hr, sr)
    mse = np.mean((hr[2:-2, 2:-2].astype(np.float64) - sr[2:-2, 2:-2]) ** 2)
    assert psnr == pytest.approx(10 * np.log10(1 / mse), abs=1e-6)
    with np.errstate(divide="ignore"):  # an exact copy: infinite PSNR
        assert testing.measure(hr, hr)[1] == pytest.approx(1.0)
    assert ssim == pytest.approx(reference_ssim(hr[2:-2, 2:-2, 0], sr[2:-2, 2:-2, 0]), abs=1e-6)


def reference_ssim(x, y, c1=0.01**2, c2=0.03**2):
    """SSIM as Wang et al. (2004) define it, written apart: 11x11 Gaussian window of sigma 1.5
    (radius 5), the mean of the map over the pixels the whole window sees."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    blur = functools.partial(scipy.ndimage.gaussian_filter, sigma=1.5, truncate=3.5)
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    ssim_map = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return ssim_map[5:-5, 5:-5].mean()


def test_interpolations_have_the_right_size():
    lr = dp.to_luma(natural_image(20, 30))[None]
    for method in ["skimage_nearest", "skimage_bilinear", "skimage_bicubic", "bicubic"]:
        out = model.interpolate(lr, method)
        assert out.shape == (1, 40, 60, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(model.interpolate(lr, "skimage_nearest")[0, ::2, ::2], lr[0])


def test_benchmark_reads_grey_as_rgb_cropped_to_even_size(tmp_path):
    """The protocol's Y is BT.601 of R, G, B: a grey image (Set14's bridge) is R = G = B, so its Y
    is studio-range (16-235), as the peers on ../shared/benchmarks were measured."""
    grey = (natural_image(31, 20)[..., 0] * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    (name_grey, hr_grey), (name_rgb, hr_rgb) = testing.benchmark_images(tmp_path)
    assert (name_grey, name_rgb) == ("grey.png", "rgb.png") and hr_grey.shape == hr_rgb.shape == (30, 20, 3)
    np.testing.assert_array_equal(hr_grey, hr_rgb)
    np.testing.assert_allclose(dp.to_luma(hr_grey)[..., 0], (16 + 219 * (grey[:30] / 255)) / 255, atol=1e-5)


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="../shared/benchmarks is not beside the checkout")
def test_benchmark_clean_and_jpeg_tracks_write_tables(tmp_path):
    testing.main(["--benchmark", str(BENCHMARKS / "Set5"), "--jpeg", "75", "--results", str(tmp_path)])
    with open(tmp_path / "benchmark.csv") as file:
        rows = {(r["input"], r["dataset"], r["method"]): float(r["psnr"]) for r in csv.DictReader(file)}
    assert abs(rows["clean", "Set5", "bicubic"] - 33.66) <= 0.1
    assert rows["clean", "Set5", "model"] > rows["clean", "Set5", "bicubic"] + 2  # a trained model
    assert rows["jpeg75", "Set5", "bicubic"] < rows["clean", "Set5", "bicubic"] - 1  # the track compresses
    # On compressed input the compressed-input model is the better one, and still good on clean input.
    assert rows["jpeg75", "Set5", "model_compressed"] > rows["jpeg75", "Set5", "model"] + 0.3
    assert rows["clean", "Set5", "model_compressed"] > rows["clean", "Set5", "bicubic"] + 2
    table = (tmp_path / "benchmark.md").read_text()
    assert "## Input: jpeg75" in table and "37.00 / 0.9558" in table and "model_compressed (ours)" in table


def test_sweep_rows_are_each_method_run_directly_and_its_figure_is_shown(tmp_path, monkeypatch):
    """--benchmark --jpeg --sweep --self-ensemble --show: robustness.csv/.md/.png instead of benchmark.*,
    each row the mean over the images of the method run directly (float32, as --precision says) on the
    clean or JPEG'd LR, "+" rows (clean only) the self-ensemble; the figure goes to plt.show()."""
    shown = []
    monkeypatch.setattr(testing.plt, "show", lambda: shown.append(1))
    monkeypatch.setattr(testing.plt, "switch_backend", lambda name: None)  # no window from a test
    (tmp_path / "Set").mkdir()
    images = [natural_image(48, 64, seed) for seed in range(2)]
    for seed, image in enumerate(images):
        iio.imwrite(tmp_path / "Set" / f"{seed}.png", dp.to_uint8(image))
    testing.main(["--benchmark", str(tmp_path / "Set"), "--jpeg", "50", "90", "--sweep", "--self-ensemble", "--show",
                  "--precision", "float32", "--results", str(tmp_path)])  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Set", "robustness.csv", "robustness.md", "robustness.png"]
    assert shown == [1]
    with open(tmp_path / "robustness.csv") as file:
        rows = {
            (r["input"], r["dataset"], r["method"]): (float(r["psnr"]), float(r["ssim"])) for r in csv.DictReader(file)
        }
    nets = model.load_models()
    expected = {}
    for image in images:
        hr = dp.to_uint8(image) / np.float32(255)
        for quality in (None, 50, 90):
            lr = dp.to_luma(dp.degrade(hr) if quality is None else dp.jpeg(dp.degrade(hr), quality))[None]
            outputs = {"bicubic": model.interpolate(lr, "bicubic")}
            for name, net in nets.items():
                outputs[name] = model.upscale(net, lr, precision="float32")
                if quality is None:
                    outputs[f"{name}+"] = model.upscale(net, lr, self_ensemble=True, precision="float32")
            for method, sr in outputs.items():
                key = ("clean" if quality is None else f"jpeg{quality}", "Set", method)
                expected.setdefault(key, []).append(testing.measure(dp.to_luma(hr), sr[0]))
    assert rows.keys() == expected.keys()
    for key, values in expected.items():
        np.testing.assert_allclose(rows[key], np.mean(values, 0), atol=2e-4, err_msg=str(key))
    assert rows["clean", "Set", "model"][0] > rows["clean", "Set", "bicubic"][0]
    assert "## Input: jpeg50" in (tmp_path / "robustness.md").read_text()


@pytest.mark.slow
def test_bad_benchmark_arguments_are_one_line_errors(tmp_path, capsys):
    code, lines = run_cli("--benchmark", tmp_path, "--jpeg", "0", "75")
    assert (code, lines[-1]) == (1, "error: --jpeg: qualities must be in 1-100, got 0 75")
    assert not any("Traceback" in line for line in lines)
    for args, message in [
        (["--benchmark", "nowhere", "--jpeg", "75"], "nowhere: no such folder"),
        (["--benchmark", str(tmp_path), "--jpeg", "101"], "--jpeg: qualities must be in 1-100, got 101"),
    ]:
        code, err = run_main(testing.main, args, capsys)
        assert (code, err.strip().splitlines()[-1]) == (1, f"error: {message}")


def test_colour_path_keeps_grey_grey_and_hue(net):
    grey = np.repeat(dp.to_luma(natural_image(40, 48))[..., :1], 3, -1)[None]
    out = model.upscale_color(net, grey)
    assert out.shape == (1, 80, 96, 3)
    assert np.abs(out[..., 0] - out[..., 1]).max() < 1 / 255 and np.abs(out[..., 1] - out[..., 2]).max() < 1 / 255
    colour = natural_image(40, 48, 3)[None]
    out = model.upscale_color(net, colour)
    reference = model.interpolate(colour, "bicubic")
    hue, reference_hue = rgb2hsv(out[0])[..., 0], rgb2hsv(reference[0])[..., 0]
    difference = np.minimum(np.abs(hue - reference_hue), 1 - np.abs(hue - reference_hue))
    assert np.median(difference) < 0.02


def test_upscale_users_images_of_every_kind(tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    rgb = (natural_image(60, 70) * 255).astype(np.uint8)
    iio.imwrite(images / "photo.jpg", rgb)
    iio.imwrite(images / "grey.png", rgb[..., 0])
    iio.imwrite(images / "alpha.png", np.dstack([rgb, np.linspace(0, 255, 70, dtype=np.uint8)[None].repeat(60, 0)]))
    iio.imwrite(images / "deep.png", (natural_image(50, 40)[..., 0] * 65535).astype(np.uint16))
    (images / "broken.png").write_bytes(b"\x89PNG broken")
    files = [images / name for name in ["photo.jpg", "grey.png", "missing.png", "alpha.png", "broken.png", "deep.png"]]
    code, err = run_main(testing.main, ["--upscale", *map(str, files), "--out", str(tmp_path / "out")], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("error: 2 of 6") and "missing.png" in last and "broken.png" in last
    out = tmp_path / "out"
    assert iio.imread(out / "photo.png").shape == (120, 140, 3)
    assert iio.imread(out / "grey.png").shape == (120, 140)
    alpha = iio.imread(out / "alpha.png")
    assert alpha.shape == (120, 140, 4) and abs(int(alpha[0, -1, 3]) - 255) <= 3 and alpha[0, 0, 3] <= 3
    deep = iio.imread(out / "deep.png")
    assert deep.shape == (100, 80) and deep.dtype == np.uint16
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "deep.png", "grey.png", "photo.png"]


def test_upscale_self_ensemble_precision_and_16_bits(tmp_path):
    """--upscale --self-ensemble --precision float32 writes the very pixels model.upscale_image() makes
    so; a 16-bit PNG comes out as the same image in 8 bits does, scaled (within rounding)."""
    grey = dp.to_uint8(natural_image(30, 40)[..., 0])
    iio.imwrite(tmp_path / "grey.png", grey)
    iio.imwrite(tmp_path / "deep.png", grey.astype(np.uint16) * 257)  # the same values, in 16 bits
    testing.main(["--upscale", str(tmp_path / "grey.png"), str(tmp_path / "deep.png"), "--out", str(tmp_path / "o"),
                  "--self-ensemble", "--precision", "float32"])  # fmt: skip
    written, deep = iio.imread(tmp_path / "o" / "grey.png"), iio.imread(tmp_path / "o" / "deep.png")
    net = model.load_model(model.DEFAULT_MODEL)
    expected = model.upscale_image(net, grey[..., None] / np.float32(255), self_ensemble=True, precision="float32")
    np.testing.assert_array_equal(written, expected[..., 0])
    assert deep.dtype == np.uint16 and np.abs(deep / 65535 - written / 255).max() <= 0.51 / 255


@pytest.mark.slow
def test_upscale_runs_the_model_chosen_for_each_file(tmp_path):
    """--upscale on a real photo (four bundled test tiles): from a PNG the output beats bicubic by
    over 2 dB (the model is run), and from a JPEG q50 the compressed-input model, which it picks,
    beats model.h5 on the same file by over 0.5 dB."""
    _, _, _, y_test = dp.load_dataset()
    rows = [np.concatenate([y_test[10], y_test[60]], 1), np.concatenate([y_test[110], y_test[200]], 1)]
    hr = np.repeat(np.concatenate(rows, 0), 3, -1)  # 256x256, grey as RGB
    lr = dp.to_uint8(dp.degrade(hr))
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "clean.png", lr)
    Image.fromarray(lr).save(tmp_path / "in" / "photo.jpg", quality=50)
    testing.main(["--upscale", str(tmp_path / "in"), "--out", str(tmp_path / "picked")])
    testing.main(["--upscale", str(tmp_path / "in" / "photo.jpg"), "--out", str(tmp_path / "h5"),
                  "--model", str(model.DEFAULT_MODEL)])  # fmt: skip

    def psnr(path):
        return testing.measure(dp.to_luma(hr), dp.to_luma(iio.imread(path) / 255))[0]

    bicubic = testing.measure(dp.to_luma(hr), dp.to_luma(model.interpolate(lr[None] / 255, "bicubic")[0]))[0]
    assert psnr(tmp_path / "picked" / "clean.png") > bicubic + 2
    assert psnr(tmp_path / "picked" / "photo.png") > psnr(tmp_path / "h5" / "photo.png") + 0.5


def test_each_file_gets_the_model_for_its_type(tmp_path, capsys):
    rgb = Image.fromarray((natural_image(64, 80) * 255).astype(np.uint8))
    rgb.save(tmp_path / "photo.jpg", quality=72)
    rgb.save(tmp_path / "scan.png")
    models = {"model": "clean", "model_compressed": "compressed"}
    assert testing.choose_model(tmp_path / "photo.jpg", models, None) == (
        "compressed",
        f"{tmp_path / 'photo.jpg'}: JPEG, quality ~72 -> compressed-input model",
    )
    assert testing.choose_model(tmp_path / "scan.png", models, None) == (
        "clean",
        f"{tmp_path / 'scan.png'}: PNG -> model.h5 (clean input)",
    )
    assert testing.choose_model(tmp_path / "photo.jpg", {"override": "mine"}, "mine.h5")[0] == "mine"
    for quality in (35, 90):  # the estimate from the quantization tables is the quality it was saved at
        rgb.save(tmp_path / "q.jpg", quality=quality)
        assert testing.describe(tmp_path / "q.jpg")[1] == quality
    testing.main(["--upscale", str(tmp_path / "photo.jpg"), str(tmp_path / "scan.png"), "--out", str(tmp_path / "o")])
    printed = capsys.readouterr().out
    assert "photo.jpg: JPEG, quality ~72 -> compressed-input model" in printed and "PNG -> model.h5" in printed


def test_files_as_phones_and_printers_make_them(tmp_path, capsys):
    """EXIF orientation applied, CMYK converted, ICC profile and EXIF carried, extra frames named."""
    folder = tmp_path / "in"
    (folder / "trip").mkdir(parents=True)
    pixels = (natural_image(40, 60) * 255).astype(np.uint8)
    pixels[:10, :10] = [255, 0, 0]  # a red corner, top left as the camera saw it
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "PhoneMaker"  # rotate 90 degrees clockwise to view; the make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(folder / "trip" / "phone.jpg", quality=95, exif=exif, icc_profile=icc)
    Image.fromarray(pixels).convert("CMYK").save(folder / "print.jpg", quality=95)
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (50, 200)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    testing.main(["--upscale", str(folder), "--out", str(tmp_path / "out")])
    phone = Image.open(tmp_path / "out" / "trip" / "phone.png")  # the folder tree is mirrored
    assert phone.size == (80, 120)  # upright: 40x60 turned a quarter
    red = np.asarray(phone)[:20, -20:]  # the red corner is now top right
    assert red[..., 0].mean() > 180 and red[..., 1].mean() < 80
    assert phone.info.get("icc_profile") == icc
    assert phone.getexif().get(0x010F) == "PhoneMaker" and 0x0112 not in phone.getexif()
    printed = np.asarray(Image.open(tmp_path / "out" / "print.png"))
    assert printed.shape == (80, 120, 3)  # and not colour-inverted, as CMYK read as RGBA would be:
    assert np.abs(printed.astype(np.float32) - pixels.repeat(2, 0).repeat(2, 1)).mean() < 12
    assert "anim.gif: 2 frames, only the first is used" in capsys.readouterr().err
    # A rerun after an interruption continues: files already done are skipped, a missing one is made.
    (tmp_path / "out" / "print.png").unlink()
    testing.main(["--upscale", str(folder), "--out", str(tmp_path / "out")])
    assert "2 of 3 files already upscaled" in capsys.readouterr().out
    assert (tmp_path / "out" / "print.png").is_file()


def test_missing_model_says_how_to_make_it(tmp_path, capsys):
    code, err = run_main(testing.main, ["--model", str(tmp_path / "none.h5"), "--results", str(tmp_path)], capsys)
    assert code == 1 and "python model.py" in err.strip().splitlines()[-1]


@pytest.mark.slow
def test_default_run_writes_metrics_and_figures(tmp_path, capsys):
    x_train, y_train, x_test, y_test = dp.load_dataset()
    dp.save_dataset(tmp_path / "some.npz", x_train[:8], y_train[:8], x_test[::6], y_test[::6])  # 52 test pairs
    testing.main(["--results", str(tmp_path), "--data", str(tmp_path / "some.npz")])
    for name in ["metrics.csv", "metrics.md", "comparison.png", "zoom.png", "scatter.png", "compressed.png"]:
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    methods = {row["method"] for row in rows}
    assert {"skimage_nearest", "skimage_bilinear", "skimage_bicubic", "model", "model_compressed"} <= methods
    mean = {m: np.mean([float(r["psnr"]) for r in rows if r["method"] == m]) for m in methods}
    assert mean["model"] > mean["skimage_bicubic"] > mean["skimage_bilinear"] > mean["skimage_nearest"]
    assert "| model |" in (tmp_path / "metrics.md").read_text()


@pytest.mark.slow
def test_metrics_rows_are_each_method_run_directly(tmp_path):
    """The default run on --data's test split with --self-ensemble --precision float32: each row of
    metrics.csv is (PSNR, SSIM) of its method run directly on that pair, the model's with the
    self-ensemble; metrics.md is their mean ± std; the model beats bicubic."""
    x_train, y_train, x_test, y_test = dp.load_dataset()
    dp.save_dataset(tmp_path / "some.npz", x_train[:8], y_train[:8], x_test[::100], y_test[::100])  # 4 test pairs
    testing.main(["--results", str(tmp_path), "--data", str(tmp_path / "some.npz"), "--self-ensemble",
                  "--precision", "float32"])  # fmt: skip
    x, y = x_test[::100], y_test[::100]
    outputs = {method: model.interpolate(x, method) for method in model.SKIMAGE_ORDERS}
    for name, net in model.load_models().items():
        outputs[name] = model.upscale(net, x, self_ensemble=True, precision="float32")
    with open(tmp_path / "metrics.csv") as file:
        rows = {(r["method"], int(r["image"])): (float(r["psnr"]), float(r["ssim"])) for r in csv.DictReader(file)}
    assert rows.keys() == {(method, i) for method in outputs for i in range(len(x))}
    table = (tmp_path / "metrics.md").read_text()
    for method, sr in outputs.items():
        scores = np.array([testing.measure(hr, out) for hr, out in zip(y, sr)])
        np.testing.assert_allclose([rows[method, i] for i in range(len(x))], scores, atol=1e-4, err_msg=method)
        (mean_psnr, mean_ssim), (std_psnr, std_ssim) = scores.mean(0), scores.std(0)
        assert f"| {method} | {mean_psnr:.2f} ± {std_psnr:.2f} | {mean_ssim:.4f} ± {std_ssim:.4f} |" in table
    assert np.mean([rows["model", i][0] - rows["skimage_bicubic", i][0] for i in range(len(x))]) > 1


@pytest.mark.slow
def test_verbose_shows_the_backends_start_up_log():
    """Without --verbose the backend's C++ start-up log is hidden; with it, shown (every script that runs a
    model reads it from the command line before importing the backend)."""
    quiet, verbose = (
        subprocess.run([sys.executable, str(REPO / "testing.py"), *flags, "--help"], capture_output=True, text=True,
                       timeout=600)
        for flags in ([], ["--verbose"])
    )  # fmt: skip
    assert quiet.returncode == verbose.returncode == 0
    assert quiet.stderr == "" and verbose.stderr != ""


@pytest.mark.slow
def test_a_tall_photo_goes_in_strips_and_a_wide_one_in_tiles(background):
    """Memory follows a strip, not the photo. Peaks above the 512x384 photo's, measured here: the
    16x taller one (12.6 MP out) +95 MB in strips, +856 MB with its colour converted whole; the 8x
    wider grey one +68 MB in tiles, +358 MB with its strips through the network untiled. The limits
    sit between, a factor from each."""
    runs = background(photo_peaks)
    small_mb = runs["small"][1]
    assert iio.improps(runs["tall"][0] / "tall.png").shape == (12288, 1024, 3)
    assert iio.improps(runs["wide"][0] / "wide.png").shape == (768, 8192)
    assert runs["tall"][1] - small_mb < 300, f"peak RSS {small_mb:.0f} MB -> {runs['tall'][1]:.0f} MB"
    assert runs["wide"][1] - small_mb < 180, f"peak RSS {small_mb:.0f} MB -> {runs['wide'][1]:.0f} MB"


def broken_files(folder):
    """{name: why Pillow fails on it}: bad files of the kinds a reader can raise for, beyond OSError."""
    rgb = (natural_image(40, 48) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(buffer := io.BytesIO(), "PNG")
    png = bytearray(buffer.getvalue())
    data = png.index(b"IDAT") + 10
    png[data] ^= 0xFF  # a pixel byte changed, its chunk's CRC not
    (folder / "crc.png").write_bytes(bytes(png))
    Image.fromarray(rgb).convert("P").save(buffer := io.BytesIO(), "GIF")
    (folder / "truncated.gif").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "broken.gif").write_bytes(b"GIF89a" + bytes(range(7)) + b"\x2c" + b"\xff" * 30)
    (folder / "short.tif").write_bytes(b"II*\x00\x08\x00\x00\x00\x01")  # a TIFF cut inside its first tag
    header = png[: png.index(b"IHDR") + 4] + (0).to_bytes(4, "big") + (0).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    (folder / "empty.png").write_bytes(bytes(header) + b"\x00" * 4)  # a 0x0 image
    return sorted(path.name for path in folder.iterdir())


def test_every_kind_of_broken_image_is_one_line_and_the_rest_go_on(tmp_path, capsys):
    """CRC errors, truncated and broken GIFs, files Pillow fails on with SyntaxError, ValueError or
    struct.error, not only OSError: each is named in the one error line, the good file still done."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = broken_files(folder)
    iio.imwrite(folder / "good.png", (natural_image(20, 24) * 255).astype(np.uint8))
    for name in names:
        with pytest.raises(dp.DataError, match=f"{name}: "):
            dp.read_image(folder / name)
    code, err = run_main(testing.main, ["--upscale", str(folder), "--out", str(tmp_path / "out")], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith(f"error: {len(names)} of {len(names) + 1} files failed")
    assert all(name in last for name in names) and "Traceback" not in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_a_phones_multi_picture_jpeg_gets_the_compressed_input_model(tmp_path, capsys):
    """A phone's multi-picture JPEG (MPO, which Pillow names apart from JPEG: the plain JPEGs of the
    other tests do not reach it) is lossy: --upscale gives it the compressed-input model."""
    pictures = [Image.fromarray(dp.to_uint8(natural_image(40, 48, seed))) for seed in (0, 1)]
    pictures[0].save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=pictures[1:], quality=80)
    assert testing.describe(tmp_path / "phone.jpg")[:2] == ("MPO", 80)
    models = {"model": "clean", "model_compressed": "compressed"}
    assert testing.choose_model(tmp_path / "phone.jpg", models)[0] == "compressed"
    testing.main(["--upscale", str(tmp_path / "phone.jpg"), "--out", str(tmp_path / "o")])
    assert "phone.jpg: MPO, quality ~80 -> compressed-input model" in capsys.readouterr().out
    assert iio.imread(tmp_path / "o" / "phone.png").shape == (80, 96, 3)
