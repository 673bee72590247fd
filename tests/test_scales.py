"""Every scale: x3 and x4 through degrade(), the bundled data, the input pipeline, the network,
loading, upscale() and its tiles, the benchmark, and --size / --width for photos and videos."""

import csv

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import skimage.transform
from conftest import ffprobe_streams, make_video, mean_psnr, natural_image
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from test_data import build_bundled, run_main

import data_preparation as dp
import model
import testing
import testing_video
import training

# ---------------------------------------------------------------------------------------------
# degrade() against MATLAB's imresize, written here from its definition


def keys_cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * (x**3 - 5 * x**2 + 8 * x - 4), 0))


def imresize_matrix(size, scale):
    """(size // scale, size) weights of MATLAB's imresize shrinking by `scale`: the cubic kernel
    stretched by the factor (antialiasing), centres at (i + 0.5) * scale - 0.5, indices mirrored."""
    out = np.arange(size // scale)
    centres = (out + 0.5) * scale - 0.5
    taps = np.arange(-2 * scale - 1, 2 * scale + 2)
    matrix = np.zeros((len(out), size))
    for i, centre in enumerate(centres):
        sources = np.floor(centre).astype(int) + taps
        weights = keys_cubic((centre - sources) / scale)
        mirrored = np.where(sources < 0, -sources - 1, np.where(sources >= size, 2 * size - sources - 1, sources))
        np.add.at(matrix[i], mirrored, weights / weights.sum())
    return matrix


def matlab_degrade(hr, scale):
    rows, cols = imresize_matrix(hr.shape[0], scale), imresize_matrix(hr.shape[1], scale)
    return np.round(np.clip(rows @ hr[..., 0].astype(np.float64) @ cols.T, 0, 1) * 255)[..., None] / 255


@pytest.mark.parametrize("scale", [3, 4])
def test_degrade_at_3_and_4_is_matlabs_antialiased_bicubic(scale):
    hr = dp.to_luma(natural_image(96, 120, scale))
    lr = dp.degrade(hr, scale)
    assert lr.shape == (96 // scale, 120 // scale, 1) and lr.dtype == np.float32
    levels, reference = np.round(lr * 255), np.round(matlab_degrade(hr, scale) * 255)
    inner = (slice(2, -2), slice(2, -2))  # at the edges MATLAB mirrors, Pillow renormalises its weights
    assert np.abs(levels[inner] - reference[inner]).max() <= 1
    assert np.mean(levels[inner] != reference[inner]) < 0.02
    assert np.abs(levels - reference).mean() < 0.3  # the edges too, nearly
    assert np.array_equal(np.round(lr * 255), lr * 255)  # 8 bits


# ---------------------------------------------------------------------------------------------
# The data and the input pipeline


def test_the_bundled_pairs_serve_every_scale(tiny_dataset):
    x2 = dp.load_dataset(tiny_dataset)
    with np.load(tiny_dataset, allow_pickle=False) as stored:
        np.testing.assert_array_equal(x2[0], stored["x_train"] / np.float32(255))  # x2: as stored
    x_train, y_train, x_test, y_test = dp.load_dataset(tiny_dataset, 3)
    assert x_train.shape[1:] == (42, 42, 1) and y_train.shape[1:] == (126, 126, 1) and len(x_test) == len(x2[2])
    np.testing.assert_array_equal(y_train, x2[1][:, :126, :126])  # the HR cropped, not resized
    np.testing.assert_array_equal(x_test, dp.degrade(y_test, 3))
    x4 = dp.load_dataset(tiny_dataset, 4)
    assert x4[0].shape[1:] == (32, 32, 1) and np.array_equal(x4[0], dp.degrade(x4[1], 4))


def photographs_as_the_only_source(folder, monkeypatch, sizes):
    """build_bundled's sources replaced by photographs of these (height, width) in `folder`, 30 % for testing."""
    for seed, (height, width) in enumerate(sizes):
        iio.imwrite(folder / f"p{seed}.png", (natural_image(height, width, seed) * 255).astype(np.uint8))
    monkeypatch.setattr(build_bundled, "SOURCES", [("photos", "make them", str(folder), ["*.png"])])
    monkeypatch.setattr(build_bundled, "GCOMPRIS", ("none", "apt-get install none", str(folder / "no"), []))
    monkeypatch.setattr(build_bundled, "BUNDLED_TEST_FRACTION", 0.3)


def test_larger_tiles_come_from_the_bundled_splits_photographs(tmp_path, monkeypatch):
    """build_bundled --tile 192 (48-pixel LR at x4): 192-pixel crops of the same photographs, the
    test ones from the photographs of the 128-pixel split's test crops, not from a split of its own
    (which, for these photographs, would take one fewer)."""
    photographs_as_the_only_source(
        tmp_path, monkeypatch, [(400, 400), (260, 260), (200, 520), (390, 200), (590, 200), (200, 200)]
    )
    build_bundled.main(["--out", str(tmp_path / "large.npz"), "--all", "--tile", "192"])
    x_train, y_train, x_test, y_test = dp.load_dataset(tmp_path / "large.npz")
    assert y_train.shape[1:] == y_test.shape[1:] == (192, 192, 1) and x_train.shape[1:] == (96, 96, 1)
    files = build_bundled.source_files()
    test = dp.test_sources(dp.patches_per_file(files, progress=False), 0.3)
    large = dp.patches_per_file(files, progress=False, size=192)
    assert len(dp.test_sources(large, 0.3)) < len(test)
    expected = np.concatenate([large[path] for path in sorted(test, key=str)])
    np.testing.assert_array_equal(y_test, expected / np.float32(255))
    assert len(y_train) == sum(map(len, large.values())) - len(expected)
    with pytest.raises(SystemExit):  # data/images.npz stays 128-pixel crops
        build_bundled.main(["--tile", "192"])


def test_max_side_adds_finer_crops_of_the_large_photographs_only(tmp_path, monkeypatch):
    """build_bundled --max-side 2048: crops of only the photographs over 1024 px (the others' crops
    are the bundled ones already), shrunk to at most 2048 instead of 1024; the test crops are those
    of the bundled split's test photographs."""
    photographs_as_the_only_source(
        tmp_path, monkeypatch, [(700, 1300), (1200, 500), (2400, 600), (400, 400), (300, 500), (360, 360)]
    )
    build_bundled.main(["--out", str(tmp_path / "fine.npz"), "--all", "--max-side", "2048"])
    _, y_train, _, y_test = dp.load_dataset(tmp_path / "fine.npz")
    files = build_bundled.source_files()
    test = dp.test_sources(dp.patches_per_file(files, progress=False), 0.3)
    large = dp.patches_per_file(files[:3], progress=False, max_side=2048)
    whole = dp.to_luma(dp.read_image(files[0]))[:640, :1280, 0]  # 1300 px: not shrunk, cut into 5 x 10 tiles
    tiles = whole.reshape(5, 128, 10, 128).swapaxes(1, 2).reshape(-1, 128, 128, 1)
    np.testing.assert_array_equal(large[files[0]], dp.to_uint8(tiles[tiles.std(axis=(1, 2, 3)) >= 12 / 255]))
    in_test = [path for path in sorted(test, key=str) if path in large]
    expected = np.concatenate([large[path] for path in in_test]) if in_test else np.zeros((0, 128, 128, 1))
    np.testing.assert_array_equal(y_test, expected / np.float32(255))
    assert len(y_train) == sum(map(len, large.values())) - len(expected) > 0
    for wrong in (["--out", str(tmp_path / "x.npz"), "--max-side", "512"], ["--max-side", "2048"]):
        with pytest.raises(SystemExit):
            build_bundled.main(wrong)


@pytest.mark.parametrize("scale", [3, 4])
def test_training_patches_at_a_scale_are_pairs(tiny_dataset, scale):
    """Each LR patch is degrade() of its HR patch (the same crop, flip and rotation), away from the
    patch edges where a crop of the LR and the LR of a crop differ."""
    x, y, _, _ = dp.load_dataset(tiny_dataset, scale)
    batches = dp.TrainingBatches(6, x, y, seed=3, workers=1, patch=12, scale=scale)
    lr, hr = batches.batch(5)
    assert lr.shape == (6, 12, 12, 1) and hr.shape == (6, 12 * scale, 12 * scale, 1)
    for small, large in zip(lr, hr):
        np.testing.assert_allclose(dp.degrade(large, scale)[3:-3, 3:-3], small[3:-3, 3:-3], atol=1.01 / 255)
    whole = dp.TrainingBatches(2, x, y, seed=0, workers=1, patch=48, scale=scale).batch(0)
    assert whole[0].shape[1:3] == x.shape[1:3]  # a patch larger than the tile: the whole tile


# ---------------------------------------------------------------------------------------------
# The network at each scale


@pytest.fixture(scope="module")
def photo_tiles(tmp_path_factory):
    """A few real photographs' tiles: 96 training and 24 test pairs of the bundled split (x2; the
    other scales' LR is made from the HR when loaded)."""
    x_train, y_train, x_test, y_test = dp.load_dataset()
    path = tmp_path_factory.mktemp("photos") / "tiles.npz"
    dp.save_dataset(path, x_train[::31][:96], y_train[::31][:96], x_test[::12][:24], y_test[::12][:24])
    return path


@pytest.mark.parametrize("scale", [3, 4])
def test_a_tiny_network_learns_and_beats_bicubic_at_its_scale(photo_tiles, tmp_path, scale):
    out = tmp_path / f"x{scale}.h5"
    config = training.Config(new=True, scale=scale, width=16, blocks=2, epochs=12, steps_per_epoch=25, batch_size=8,
                             patch=16, lr=2e-3, precision="float32", out=out, data=(str(photo_tiles),))  # fmt: skip
    training.run(config)
    net = model.load_model(out, scale)
    assert model.model_scale(net) == scale and out.with_name(f"history_x{scale}.csv").is_file()
    _, _, x_test, y_test = dp.load_dataset(photo_tiles, scale)
    sr = model.upscale(net, x_test, precision="float32")
    assert sr.shape == y_test.shape
    assert mean_psnr(y_test, sr) > mean_psnr(y_test, model.interpolate(x_test, "bicubic", scale)) + 0.3


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_is_resizes_antialiased_bicubic_eagerly_and_in_a_graph_of_any_size(scale):
    """The skip's bicubic, a convolution, is keras.ops.image.resize's antialiased bicubic, borders
    included, for several channels, and so in a network traced for any size; interpolate()'s
    (Pillow's, the chroma's and the baselines') is the same, clipped to [0, 1]."""
    images = np.stack([natural_image(23, 30, seed) for seed in range(2)])
    reference = keras.ops.image.resize(images, (23 * scale, 30 * scale), "bicubic", antialias=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.bicubic(images, scale)), reference, atol=1e-5)
    np.testing.assert_allclose(model.interpolate(images, "bicubic", scale), np.clip(reference, 0, 1), atol=1e-5)
    inputs = keras.Input((None, None, 1))
    skip = keras.Model(inputs, model.Bicubic(scale)(inputs))
    np.testing.assert_allclose(skip.predict_on_batch(images[..., :1]), reference[..., :1], atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3])
def test_the_scikit_image_baselines_are_its_resize_of_order_0_1_and_3(scale):
    """The original repo's baselines: scikit-image's resize, nearest (each pixel repeated), bilinear
    (order 1) and bicubic (order 3: cubic splines, not the field's bicubic), not clipped."""
    images = np.stack([natural_image(9, 7, seed) for seed in range(2)])
    nearest = model.interpolate(images, "skimage_nearest", scale)
    np.testing.assert_array_equal(nearest, images.repeat(scale, 1).repeat(scale, 2))
    for method, order in (("skimage_bilinear", 1), ("skimage_bicubic", 3)):
        expected = [skimage.transform.resize(image, (9 * scale, 7 * scale, 3), order=order) for image in images]
        np.testing.assert_allclose(model.interpolate(images, method, scale), expected, atol=1e-6)


def test_a_x2_model_starts_a_x4_one(tmp_path):
    """--init: the body of model.h5, the upsampling of x4 at zero, so it starts as bicubic."""
    config = training.parse_config(["--new", "--scale", "4", "--init", str(model.DEFAULT_MODEL), "--blocks", "9"])
    net = training.builder(config)()
    x2 = model.load_model(model.DEFAULT_MODEL)
    assert model.model_scale(net) == 4 and net.get_layer("to_subpixels").filters == 16
    for name in ("head", "block8_conv1", "body_end"):
        for new, old in zip(net.get_layer(name).get_weights(), x2.get_layer(name).get_weights()):
            np.testing.assert_array_equal(new, old)
    lr = dp.to_luma(natural_image(20, 24))[None]
    np.testing.assert_allclose(net.predict_on_batch(lr), model.interpolate(lr, "bicubic", 4), atol=1e-5)
    assert training.model_paths(config)[0] == model.CLEAN_MODELS[4]  # never model.h5


def test_a_model_of_another_scale_is_a_one_line_error(tmp_path, capsys, tiny_dataset):
    with pytest.raises(dp.DataError, match=r"model.h5: a x2 model, not x4$"):
        model.load_model(model.DEFAULT_MODEL, 4)
    photo = tmp_path / "photo.png"
    iio.imwrite(photo, (natural_image(20, 20) * 255).astype(np.uint8))
    code, err = run_main(testing.main, ["--upscale", str(photo), "--model", str(model.DEFAULT_MODEL), "--scale", "4",
                                        "--out", str(tmp_path / "o")], capsys)  # fmt: skip
    assert code == 1 and err.strip().splitlines()[-1] == f"error: {model.DEFAULT_MODEL}: a x2 model, not x4"
    assert not (tmp_path / "o").exists()
    code, err = run_main(training.main, ["--scale", "3", "--model", str(model.DEFAULT_MODEL), "--data",
                                         str(tiny_dataset), "--out", str(tmp_path / "m.h5")], capsys)  # fmt: skip
    assert code == 1 and err.strip().splitlines()[-1] == f"error: {model.DEFAULT_MODEL}: a x2 model, not x3"
    with pytest.raises(SystemExit):
        training.parse_config(["--init", str(model.DEFAULT_MODEL)])  # --init is for a new network
    assert "use it with --new" in capsys.readouterr().err


def far_seeing_model(scale, blocks=16):
    """A network whose output at (y, x) is its input at (y - 35, x - 35) (16 blocks) added to bicubic:
    each convolution moves the image one pixel down and right (S), each block's second one is S
    minus S's inverse, so that x + S(Sx) - S^-1(Sx) = S^2 x. Too little context shows at once."""
    net = model.build_model(width=4, blocks=blocks, scale=scale)
    for layer in net.layers:
        if not layer.weights or layer.name == "bicubic":
            continue
        kernel, bias = (np.zeros_like(w) for w in layer.get_weights())
        kernel[0, 0, 0, :] = 1 / 4 if layer.name == "to_subpixels" else 1  # from (y - 1, x - 1)
        if layer.name.endswith("_conv2"):
            kernel[2, 2, 0, 0] = -1  # from (y + 1, x + 1)
        if layer.name != "to_subpixels":
            kernel[..., 1:] = 0  # one channel carries the image
        layer.set_weights([kernel, bias])
    return net


@pytest.mark.parametrize("scale", [3, 4])
def test_tiles_and_strips_at_a_scale_give_the_whole_images_result(scale):
    net = far_seeing_model(scale)
    assert model.margin(net) == 40  # 35 convolutions + the bicubic skip: more than TILE_MARGIN
    lr = dp.to_luma(natural_image(100, 190, scale))[None]
    whole = model.upscale(net, lr, precision="float32")
    assert model.tiling(190, 40, model.margin(net))[0] < 190  # really cut into tiles
    tiled = model.upscale(net, lr, tile=40, precision="float32")
    assert tiled.shape == whole.shape == (1, 100 * scale, 190 * scale, 1)
    np.testing.assert_allclose(tiled, whole, atol=1e-3)  # too little context: off by ~0.2
    rgb = natural_image(100, 60, 2)
    strips = model.upscale_image(net, rgb, precision="float32", rows=24)  # five strips
    at_once = np.round(model.upscale_color(net, rgb[None], tile=None, precision="float32")[0] * 255)
    assert strips.shape == (100 * scale, 60 * scale, 3)
    assert np.abs(strips.astype(int) - at_once).max() <= 1 and np.mean(strips != at_once) < 1e-3


# ---------------------------------------------------------------------------------------------
# The benchmark at x3 and x4


def test_the_benchmark_at_x4_crops_the_hr_and_a_4_pixel_border(tmp_path):
    folder = tmp_path / "Set"
    folder.mkdir()
    image = (natural_image(53, 70, 4) * 255).astype(np.uint8)
    iio.imwrite(folder / "a.png", image)
    rows = testing.benchmark({}, [folder], scale=4)
    hr = dp.modcrop(image / np.float32(255), 4)
    assert hr.shape[:2] == (52, 68)
    hr_y = dp.to_luma(hr)
    bicubic = model.interpolate(dp.to_luma(dp.degrade(hr, 4))[None], "bicubic", 4)[0]

    def psnr(border):
        inner = (slice(border, -border), slice(border, -border))
        return peak_signal_noise_ratio(hr_y[inner].astype(np.float64), bicubic[inner].astype(np.float64), data_range=1)

    assert [row["method"] for row in rows] == ["bicubic"]
    assert rows[0]["psnr"] == pytest.approx(psnr(4), abs=1e-6)
    assert abs(psnr(4) - psnr(2)) > 0.01  # so the border it crops is seen


PUBLISHED = """# Benchmarks

| method | params | Set5 | Set14 |
| --- | --- | --- | --- |
| Bicubic | - | 33.66 / 0.9299 | 30.24 / 0.8688 |
| VDSR | 665 K | 37.53 / 0.9587 | 33.03 / 0.9124 |

| method | Set5 clean | q90 |
| --- | --- | --- |
| bicubic | 33.68 | 32.99 |

| method | params | x3 Set5 | x3 Set14 | x4 Set5 | x4 Set14 |
| --- | --- | --- | --- | --- | --- |
| Bicubic | - | 30.39 / 0.8682 | 27.55 / 0.7742 | 28.42 / 0.8104 | 26.00 / 0.7027 |
| VDSR | 665 K | 33.66 / 0.9213 | 29.77 / 0.8314 | 31.35 / 0.8838 | 28.01 / 0.7674 |
"""


def test_published_rows_are_read_at_each_scale(tmp_path):
    (tmp_path / "README.md").write_text(PUBLISHED)
    (tmp_path / "Set5").mkdir()
    folders = [tmp_path / "Set5"]
    assert testing.published_numbers(folders, 2)["Bicubic"] == {"Set5": "33.66 / 0.9299", "Set14": "30.24 / 0.8688"}
    assert testing.published_numbers(folders, 3)["VDSR"] == {"Set5": "33.66 / 0.9213", "Set14": "29.77 / 0.8314"}
    assert testing.published_numbers(folders, 4)["VDSR"] == {"Set5": "31.35 / 0.8838", "Set14": "28.01 / 0.7674"}
    rows = [dict(input="clean", dataset="Set5", image="a", method="bicubic", psnr=28.0, ssim=0.8)]
    testing.write_benchmark(rows, folders, tmp_path, "benchmark_x4", scale=4)
    text = (tmp_path / "benchmark_x4.md").read_text()
    assert text.startswith("# Benchmark, x4") and "4 border pixels" in text
    assert "| VDSR | 31.35 / 0.8838 |" in text and "| bicubic (ours) | **28.00 / 0.8000** |" in text


# ---------------------------------------------------------------------------------------------
# Any output size: photos


def test_output_size_and_the_scale_that_reaches_it():
    assert testing.output_size(270, 480, (1920, 1080)) == (1920, 1080)
    assert testing.output_size(270, 480, width_only=1000) == (1000, 562)
    assert testing.output_size(270, 480) is None
    assert testing.scale_for(270, 480, (1920, 1080), (2, 3, 4)) == 4
    assert testing.scale_for(270, 480, (1440, 800), (2, 3, 4)) == 3
    assert testing.scale_for(270, 480, (700, 400), (4, 2, 3)) == 2
    with pytest.raises(dp.DataError, match="1921x1080 is more than x4 of 480x270"):
        testing.scale_for(270, 480, (1921, 1080), (2, 3, 4))
    with pytest.raises(SystemExit):
        testing.main(["--upscale", "x.png", "--size", "19x"])


def test_size_gives_exactly_that_size_from_the_smallest_scale_that_reaches_it(tmp_path, capsys):
    """700x400 from 480x270: model.h5 (x2 reaches it), then resized: the very pixels of x2 then fit()."""
    photo = tmp_path / "photo.png"
    image = (natural_image(270, 480, 9) * 255).astype(np.uint8)
    iio.imwrite(photo, image)
    testing.main(["--upscale", str(photo), "--size", "700x400", "--out", str(tmp_path / "a")])
    written = iio.imread(tmp_path / "a" / "photo.png")
    assert written.shape == (400, 700, 3)
    x2 = model.upscale_image(model.load_model(model.DEFAULT_MODEL), image / np.float32(255))
    np.testing.assert_array_equal(written, testing.fit(x2, 700, 400))
    assert "x2 then resized to 700x400" in capsys.readouterr().out
    testing.main(["--upscale", str(photo), "--width", "300", "--out", str(tmp_path / "b")])
    assert iio.imread(tmp_path / "b" / "photo.png").shape == (169, 300, 3)  # 270 * 300 / 480 = 168.75
    code, err = run_main(testing.main, ["--upscale", str(photo), "--size", "2000x1000", "--out",
                                        str(tmp_path / "c")], capsys)  # fmt: skip
    assert code == 1 and "2000x1000 is more than x4 of 480x270" in err.strip().splitlines()[-1]
    assert not (tmp_path / "c" / "photo.png").exists()


@pytest.mark.slow
def test_size_1920x1080_from_a_480x270_photo_uses_the_x4_model(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    image = (natural_image(270, 480, 3) * 255).astype(np.uint8)
    iio.imwrite(photo, image)
    testing.main(["--upscale", str(photo), "--size", "1920x1080", "--out", str(tmp_path / "o")])
    written = iio.imread(tmp_path / "o" / "photo.png")
    assert written.shape == (1080, 1920, 3)
    x4 = model.upscale_image(model.load_model(model.CLEAN_MODELS[4], 4), image / np.float32(255))
    np.testing.assert_array_equal(written, x4)  # x4 is exactly the size: no resize
    assert "x4" in capsys.readouterr().out


def test_fit_is_an_antialiased_resize_of_the_integers():
    pixels = (natural_image(80, 120, 1) * 65535).astype(np.uint16)
    fitted = testing.fit(pixels, 37, 29)
    assert fitted.shape == (29, 37, 3) and fitted.dtype == np.uint16
    expected = dp.resize_bicubic(pixels.astype(np.float32), 29, 37)
    np.testing.assert_allclose(fitted, np.clip(np.round(expected), 0, 65535), atol=0)
    assert testing.fit(pixels, 120, 80) is pixels


# ---------------------------------------------------------------------------------------------
# Video at x4 and any output size


def test_video_upscale_at_x4_keeps_frames_rate_and_sound(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", 48, 32, frames=5, audio=True)
    out = tmp_path / "out"
    testing_video.main(["--video", str(clip), "--out", str(out), "--mode", "upscale", "--scale", "4"])
    written = out / "output_video.mp4"
    assert sum(1 for _ in dp.raw_frames(written)) == 5 and dp.video_info(written)["size"] == (192, 128)
    assert dp.video_info(written)["fps"] == pytest.approx(10)
    assert any("Audio" in line for line in ffprobe_streams(written))


def test_video_size_and_width_give_exactly_that_size(tmp_path, capsys):
    clip = make_video(tmp_path / "clip.mp4", 64, 36, frames=3, audio=True)
    testing_video.main(["--video", str(clip), "--out", str(tmp_path / "a"), "--mode", "upscale", "--size", "250x140"])
    assert dp.video_info(tmp_path / "a" / "output_video.mp4")["size"] == (250, 140)
    assert "x4 of 64x36" in capsys.readouterr().out  # 3 x 64 = 192 < 250: x4
    testing_video.main(["--video", str(clip), "--out", str(tmp_path / "b"), "--mode", "upscale", "--width", "100"])
    info = dp.video_info(tmp_path / "b" / "output_video.mp4")
    assert info["size"] == (100, 56) and info["audio"]  # 36 * 100 / 64 = 56.25
    assert "x2 of 64x36" in capsys.readouterr().out
    code, err = run_main(testing_video.main, ["--video", str(clip), "--out", str(tmp_path / "c"), "--mode",
                                              "upscale", "--size", "301x140"], capsys)  # fmt: skip
    assert (
        code == 1 and err.strip().splitlines()[-1] == "error: --size 301x140: a video's width and height must be even"
    )
    code, err = run_main(testing_video.main, ["--video", str(clip), "--out", str(tmp_path / "c"), "--mode",
                                              "upscale", "--size", "400x140"], capsys)  # fmt: skip
    assert code == 1 and err.strip().splitlines()[-1] == "error: 400x140 is more than x4 of 64x36"


def test_video_track_at_x4(tmp_path, capsys):
    clip = make_video(tmp_path / "clip.mp4", 100, 52, frames=4)  # neither side a multiple of 8: cropped to 96x48
    means = testing_video.video_track(far_seeing_model(4, blocks=1), clip, crf=23, batch_size=2, precision="float32")
    assert set(means["psnr"]) == {"bicubic", "model"} and all(np.isfinite(list(means["psnr"].values())))
    assert "video track x4, LR at CRF 23, 4 frames" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# The default run, self-ensemble and ONNX export at a scale


def test_the_test_split_at_x4_is_measured_with_the_x4_model(tmp_path, capsys):
    """testing.py --scale 4: the committed x4 model on the test split made x4, its rows computed
    by the model itself (and beating bicubic), 4 border pixels cropped; x2's files untouched."""
    x_train, y_train, x_test, y_test = dp.load_dataset()
    dp.save_dataset(tmp_path / "some.npz", x_train[:8], y_train[:8], x_test[::20], y_test[::20])
    testing.main(["--results", str(tmp_path), "--data", str(tmp_path / "some.npz"), "--scale", "4"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison_x4.png", "metrics_x4.csv", "metrics_x4.md",
                                                          "some.npz"]  # fmt: skip
    rows = [line.split(",") for line in (tmp_path / "metrics_x4.csv").read_text().splitlines()[1:]]
    psnr = {(method, int(i)): float(value) for i, method, value, _ in rows}
    _, _, x4, y4 = dp.load_dataset(tmp_path / "some.npz", 4)
    sr = model.upscale(model.load_model(model.CLEAN_MODELS[4], 4), x4)
    for i in (0, len(x4) - 1):
        assert psnr["model", i] == pytest.approx(testing.measure(y4[i], sr[i], 4)[0], abs=1e-3)
    bicubic = [psnr["skimage_bicubic", i] for i in range(len(x4))]
    assert np.mean([psnr["model", i] for i in range(len(x4))]) > np.mean(bicubic) + 1
    assert "32x32 -> 128x128 (x4)" in (tmp_path / "metrics_x4.md").read_text()


def test_self_ensemble_and_onnx_export_at_x3(tmp_path):
    import onnxruntime

    net = far_seeing_model(3, blocks=1)
    lr = dp.to_luma(natural_image(20, 26))[None]
    ensemble = model.upscale(net, lr, self_ensemble=True, precision="float32")
    assert ensemble.shape == (1, 60, 78, 1)
    turned = np.rot90(
        model.upscale(net, np.ascontiguousarray(np.rot90(lr, 1, (1, 2))), precision="float32"), -1, (1, 2)
    )
    assert np.abs(turned - model.upscale(net, lr, precision="float32")).max() > 0.01  # the views differ...
    assert np.abs(ensemble - model.upscale(net, lr, precision="float32")).max() > 1e-3  # ...and are averaged
    training.save_model(net, tmp_path / "x3.h5")
    model.main(["--export", "onnx", "--model", str(tmp_path / "x3.h5"), "--out", str(tmp_path / "x3.onnx")])
    session = onnxruntime.InferenceSession(tmp_path / "x3.onnx", providers=["CPUExecutionProvider"])
    out = session.run(None, {"lr": lr})[0]
    assert out.shape == (1, 60, 78, 1)
    np.testing.assert_allclose(out, net.predict_on_batch(lr), atol=1e-4)


@pytest.mark.parametrize("scale", [3, 4])
def test_each_scale_picks_its_committed_models_by_file_type(tmp_path, capsys, scale):
    """--scale 4: a JPEG gets the x4 compressed-input model, a PNG the x4 clean one (the very pixels
    each gives); x3, with no compressed-input model, gives both to its clean one."""
    image = Image.fromarray((natural_image(40, 48, 5) * 255).astype(np.uint8))
    image.save(tmp_path / "photo.jpg", quality=60)
    image.save(tmp_path / "scan.png")
    testing.main(["--upscale", str(tmp_path / "photo.jpg"), str(tmp_path / "scan.png"), "--scale", str(scale),
                  "--out", str(tmp_path / "o")])  # fmt: skip
    printed = capsys.readouterr().out
    compressed = model.COMPRESSED_MODELS.get(scale) or model.CLEAN_MODELS[scale]
    for name, path in (("photo", compressed), ("scan", model.CLEAN_MODELS[scale])):
        source = tmp_path / f"{name}.{'jpg' if name == 'photo' else 'png'}"
        expected = model.upscale_image(model.load_model(path, scale), dp.read_image(source))
        np.testing.assert_array_equal(iio.imread(tmp_path / "o" / f"{name}.png"), expected)
        assert expected.shape == (40 * scale, 48 * scale, 3)
    picked = "compressed-input model" if scale in model.COMPRESSED_MODELS else f"model_x{scale}.h5 (clean input)"
    assert f"photo.jpg: JPEG, quality ~60 -> {picked}, x{scale}" in printed
    assert f"scan.png: PNG -> model_x{scale}.h5 (clean input), x{scale}" in printed


@pytest.mark.slow
def test_size_1920x1080_from_a_480x270_clip_keeps_frames_rate_and_sound(tmp_path, capsys):
    clip = make_video(tmp_path / "clip.mp4", 480, 270, frames=3, audio=True)
    testing_video.main(["--video", str(clip), "--out", str(tmp_path / "o"), "--mode", "upscale", "--size", "1920x1080"])
    written = tmp_path / "o" / "output_video.mp4"
    info = dp.video_info(written)
    assert info["size"] == (1920, 1080) and info["audio"] and info["fps"] == pytest.approx(10)
    assert sum(1 for _ in dp.raw_frames(written)) == 3
    assert "model_compressed_x4.h5" in capsys.readouterr().out  # x4 reaches it exactly: the x4 video model


SIZE_FORMAT = "argument --size: expected WIDTHxHEIGHT such as 1920x1080, got"


@pytest.mark.parametrize(
    "script, argv, message",
    [
        (testing, ["--upscale", "x.png", "--size", "0x100"], f"{SIZE_FORMAT} '0x100'"),
        (testing, ["--upscale", "x.png", "--size", "100by50"], f"{SIZE_FORMAT} '100by50'"),
        (testing, ["--upscale", "x.png", "--width", "0"], "--width must be at least 1, got 0"),
        (testing, ["--size", "100x50"], "--size and --width go with --upscale"),
        (testing_video, ["--size", "100x50"], "--size and --width go with --mode upscale"),
        (testing_video, ["--mode", "track", "--width", "100"], "--size and --width go with --mode upscale"),
        (testing_video, ["--scale", "4"],
         "--mode experiment is the original x2 experiment: --scale goes with upscale and track"),
    ],
)  # fmt: skip
def test_sizes_and_scales_that_do_not_fit_are_a_one_line_usage_error(script, argv, message, capsys):
    code, err = run_main(script.main, argv, capsys)
    assert code == 2 and err.strip().splitlines()[-1].endswith(f"error: {message}")


def test_size_accepts_a_capital_x(tmp_path):
    photo = tmp_path / "photo.png"
    iio.imwrite(photo, (natural_image(20, 30, 1) * 255).astype(np.uint8))
    testing.main(["--upscale", str(photo), "--size", "50X40", "--out", str(tmp_path / "o")])
    assert iio.imread(tmp_path / "o" / "photo.png").shape == (40, 50, 3)


def test_width_alone_chooses_among_every_committed_scale(tmp_path, capsys):
    """--width 4x the photo's (no --size, no --scale): the x4 model, not x2 then an enlarging resize."""
    photo = tmp_path / "photo.png"
    image = (natural_image(30, 40, 2) * 255).astype(np.uint8)
    iio.imwrite(photo, image)
    testing.main(["--upscale", str(photo), "--width", "160", "--out", str(tmp_path / "o")])
    x4 = model.upscale_image(model.load_model(model.CLEAN_MODELS[4], 4), image / np.float32(255))
    np.testing.assert_array_equal(iio.imread(tmp_path / "o" / "photo.png"), x4)


def test_benchmark_at_x3_from_the_command_line(tmp_path):
    """--benchmark DIR --scale 3: benchmark_x3.csv / .md, whose rows are the protocol at x3 (HR cropped
    to a multiple of 3, LR by degrade(hr, 3), 3 border pixels cropped), computed here apart."""
    folder = tmp_path / "Mine"
    folder.mkdir()
    hrs = [(natural_image(50, 61, seed) * 255).astype(np.uint8) for seed in range(2)]
    for index, hr in enumerate(hrs):
        iio.imwrite(folder / f"{index}.png", hr)
    testing.main(
        ["--benchmark", str(folder), "--scale", "3", "--results", str(tmp_path / "r"), "--precision", "float32"]
    )
    with open(tmp_path / "r" / "benchmark_x3.csv") as table:
        rows = {row["method"]: row for row in csv.DictReader(table)}
    net = model.load_model(model.CLEAN_MODELS[3], 3)
    expected = {"bicubic": [], "model": []}
    for hr in hrs:
        cropped = hr[:48, :60] / np.float32(255)
        hr_y, lr_y = dp.to_luma(cropped), dp.to_luma(dp.degrade(cropped, 3))[None]
        expected["bicubic"].append(testing.measure(hr_y, model.interpolate(lr_y, "bicubic", 3)[0], 3)[0])
        expected["model"].append(testing.measure(hr_y, model.upscale(net, lr_y, precision="float32")[0], 3)[0])
    for method, psnrs in expected.items():
        assert float(rows[method]["psnr"]) == pytest.approx(np.mean(psnrs), abs=1e-3), method
    assert "# Benchmark, x3" in (tmp_path / "r" / "benchmark_x3.md").read_text()


def test_published_numbers_go_with_the_clean_track_only(tmp_path):
    """The peers' published rows (from the README beside the folders, at the scale's own columns) are
    of clean input: the JPEG tables show ours alone."""
    (tmp_path / "README.md").write_text("| method | x4 Set5 |\n| --- | --- |\n| VDSR | 31.35 / 0.8838 |\n")
    rows = [dict(input=track, dataset="Set5", image="a.png", method="model", psnr=30.0, ssim=0.9)
            for track in ("clean", "jpeg50")]  # fmt: skip
    testing.write_benchmark(rows, [tmp_path / "Set5"], tmp_path, "benchmark_x4", 4)
    clean, compressed = (tmp_path / "benchmark_x4.md").read_text().split("## Input: jpeg50")
    assert "| VDSR | 31.35 / 0.8838 |" in clean and "VDSR" not in compressed and "**30.00 / 0.9000**" in compressed
