"""data_preparation.py: the degradation, the colour convention, image and video ingestion, datasets.

Flags: --images, --out: test_cli_ingests_a_messy_folder; --video: test_read_video_streams_frames; --mode (resize;
crops is the default): test_cli_resize_mode_and_test_fraction; --test-fraction: test_cli_resize_mode_and_test_fraction
(images), test_read_video_streams_frames (video, the last frames test),
test_a_test_fraction_of_one_is_refused_and_the_split_keeps_a_training_photograph; no flag (data/ rebuilt):
test_rebuild_with_every_crop_keeps_the_test_split.
Rows/columns of the .npz: y_* (whole image resized / video frames) and x_* = degrade(y_*):
test_cli_resize_mode_and_test_fraction, test_read_video_streams_frames; the bundled one: test_bundled_dataset_layout.
"""

import io
import struct
import sys
import types
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import skimage.transform
from conftest import BENCHMARKS, REPO, make_video, natural_image
from PIL import Image

import data_preparation as dp

sys.path.insert(0, str(REPO / "data"))
import build_bundled  # noqa: E402  (data/build_bundled.py: the bundled data's provenance)

# --- degrade and to_luma ----------------------------------------------------------------------


def test_degrade_halves_size_and_rounds_to_8_bits():
    hr = np.stack([natural_image(64, 96, seed) for seed in range(2)])
    lr = dp.degrade(hr)
    assert lr.shape == (2, 32, 48, 3) and lr.dtype == np.float32
    assert 0 <= lr.min() and lr.max() <= 1
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    # Antialiased bicubic keeps a flat image flat and the mean of a smooth one.
    assert np.allclose(dp.degrade(np.full((1, 8, 8, 1), 100 / 255, np.float32)), 100 / 255)
    assert abs(lr.mean() - hr.mean()) < 0.01


@pytest.mark.slow
def test_degrade_is_tensorflows_antialiased_bicubic_within_one_grey_level_on_0_1_percent():
    """degrade() is NumPy and Pillow now (every backend); the LR it makes is the one TensorFlow's
    tf.image.resize(antialias=True) made, but for at most 0.1 % of the pixels, by one grey level."""
    import tensorflow as tf

    _, y_train, _, y_test = dp.load_dataset()
    hr = np.concatenate([y_test, y_train[:700]])
    before = np.round(np.clip(tf.image.resize(hr, (64, 64), "bicubic", antialias=True).numpy(), 0, 1) * 255)
    now = np.round(dp.degrade(hr) * 255)
    assert np.abs(now - before).max() <= 1 and np.mean(now != before) <= 0.001
    odd = natural_image(90, 122, 4)  # not square, colour, not a multiple of 64
    before = np.round(np.clip(tf.image.resize(odd, (45, 61), "bicubic", antialias=True).numpy(), 0, 1) * 255)
    assert np.mean(np.round(dp.degrade(odd) * 255) != before) <= 0.001


def test_degrade_refuses_sizes_not_a_multiple_of_the_scale():
    with pytest.raises(ValueError, match="multiples of 2"):
        dp.degrade(np.zeros((1, 9, 8, 1), np.float32))
    with pytest.raises(ValueError, match="multiples of 4"):
        dp.degrade(np.zeros((1, 12, 10, 1), np.float32), 4)
    assert dp.modcrop(np.zeros((9, 11, 3))).shape == (8, 10, 3)
    assert dp.modcrop(np.zeros((9, 11, 3)), 3).shape == (9, 9, 3)


def test_to_luma_is_bt601_like_matlab():
    white, black = np.ones((1, 1, 3), np.float32), np.zeros((1, 1, 3), np.float32)
    assert dp.to_luma(white)[0, 0, 0] == pytest.approx(235 / 255, abs=1e-5)
    assert dp.to_luma(black)[0, 0, 0] == pytest.approx(16 / 255, abs=1e-5)
    red = np.array([[[1, 0, 0]]], np.float32)
    assert dp.to_luma(red)[0, 0, 0] == pytest.approx((16 + 65.481) / 255, abs=1e-5)
    grey = np.random.default_rng(0).random((4, 5, 1)).astype(np.float32)
    np.testing.assert_array_equal(dp.to_luma(grey), grey)
    rgba = np.concatenate([white, np.zeros((1, 1, 1), np.float32)], -1)
    assert dp.to_luma(rgba)[0, 0, 0] == pytest.approx(235 / 255, abs=1e-5)


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="../shared/benchmarks is not beside the checkout")
@pytest.mark.parametrize("name, published, tolerance", [("Set5", 33.66, 0.1), ("Set14", 30.24, 0.15)])
def test_degrade_reproduces_published_bicubic(name, published, tolerance):
    from testing import benchmark_images, interpolate, measure

    psnrs = []
    for _, hr in benchmark_images(BENCHMARKS / name):
        lr = dp.to_luma(dp.degrade(hr))
        psnrs.append(measure(dp.to_luma(hr), interpolate(lr[None], "bicubic")[0])[0])
    assert abs(np.mean(psnrs) - published) <= tolerance, np.mean(psnrs)


# --- reading images: every kind of bad input --------------------------------------------------


@pytest.fixture
def messy_folder(tmp_path):
    """Good images of every format beside broken and odd files, in nested folders."""
    folder = tmp_path / "photos"
    (folder / "nested" / "deeper").mkdir(parents=True)
    rgb = (natural_image(300, 260, 1) * 255).astype(np.uint8)
    iio.imwrite(folder / "rgb.jpg", rgb)
    iio.imwrite(folder / "nested" / "grey.png", rgb[..., 0])
    iio.imwrite(folder / "nested" / "deeper" / "rgba.png", np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    iio.imwrite(folder / "sixteen.png", (natural_image(256, 256, 2)[..., 0] * 65535).astype(np.uint16))
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    iio.imwrite(folder / "grey_alpha.png", np.dstack([rgb[:256, :256, 0], np.full((256, 256), 99, np.uint8)]))
    iio.imwrite(folder / "small.png", rgb[:50, :70])
    iio.imwrite(folder / "narrow.png", rgb[:100])
    png = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(png[: len(png) // 3])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image\n")
    return folder


GOOD = {"rgb.jpg", "grey.png", "rgba.png", "sixteen.png", "palette.png", "grey_alpha.png"}
BAD = {"small.png", "narrow.png", "truncated.jpg", "empty.png", "notes.txt"}


def test_read_image_normalises_formats(messy_folder):
    sixteen = dp.read_image(messy_folder / "sixteen.png")
    assert sixteen.shape == (256, 256, 1) and sixteen.dtype == np.float32 and 0 <= sixteen.min() <= sixteen.max() <= 1
    assert len(np.unique(sixteen)) > 256  # the 16 bits were kept, not cut to 8
    assert dp.read_image(messy_folder / "nested" / "deeper" / "rgba.png").shape == (300, 260, 4)
    assert dp.read_image(messy_folder / "palette.png").shape[-1] in (3, 4)
    grey_alpha = dp.read_image(messy_folder / "grey_alpha.png")  # grey + alpha: grey as RGB, its alpha kept
    assert grey_alpha.shape == (256, 256, 4) and np.all(grey_alpha[..., 3] == np.float32(99 / 255))
    assert np.all(grey_alpha[..., 0] == grey_alpha[..., 1]) and np.all(grey_alpha[..., 0] == grey_alpha[..., 2])
    beyond = np.linspace(-0.5, 1.5, 64 * 48, dtype=np.float32).reshape(64, 48)  # a float TIFF past [0, 1]
    Image.fromarray(beyond, mode="F").save(messy_folder / "float.tif")
    np.testing.assert_array_equal(dp.read_image(messy_folder / "float.tif")[..., 0], beyond.clip(0, 1))
    for name in ["truncated.jpg", "empty.png", "notes.txt", "missing.png"]:
        with pytest.raises(dp.DataError, match=name):
            dp.read_image(messy_folder / name)


@pytest.mark.parametrize("mode", ["crops", "resize"])
def test_load_images_takes_good_files_and_warns_about_bad_ones(messy_folder, capsys, mode):
    half_flat = (natural_image(256, 256, 9) * 255).astype(np.uint8)
    half_flat[:, :128] = 128  # a wall beside the picture: its two crops teach nothing
    iio.imwrite(messy_folder / "half_flat.png", half_flat)
    patches = dp.patches_per_file(dp.list_files(messy_folder), mode=mode, progress=False)
    hr = np.concatenate(list(patches.values()))
    assert hr.shape[1:] == (128, 128, 1) and hr.dtype == np.uint8  # stored as the bundled data is
    if mode == "resize":
        assert len(hr) == len(GOOD) + 1
    else:
        assert len(patches[messy_folder / "half_flat.png"]) == 2  # the flat crops are left out
        assert hr.reshape(len(hr), -1).std(axis=1).min() >= dp.MIN_CROP_STD * 255 - 1e-3
        assert len(hr) >= len(GOOD) * 2  # 256-300 px images hold two or four 128 crops
    warnings = capsys.readouterr().err.strip().splitlines()
    warned = {name for name in BAD | GOOD if any(name in line for line in warnings)}
    assert warned == BAD
    assert all(line.startswith("warning: ") for line in warnings)


def test_a_workers_warnings_are_printed_by_the_main_thread(tmp_path, capsys):
    """in_worker() holds a worker thread's warnings (a worker's tqdm.write once hung a run) and
    its DataError; patches_per_file and testing.py --upscale print them from the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    frames = [Image.fromarray((natural_image(140, 150, seed) * 255).astype(np.uint8)) for seed in (1, 2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    said = f"{tmp_path / 'anim.gif'}: 2 frames, only the first is used"
    with ThreadPoolExecutor(1) as pool:
        image, error, warnings = pool.submit(dp.in_worker, dp.read_image, tmp_path / "anim.gif").result()
        missing = pool.submit(dp.in_worker, dp.read_image, tmp_path / "none.png").result()
    assert capsys.readouterr().err == ""
    assert image.shape[:2] == (140, 150) and error is None and warnings == [said]
    assert missing == (None, f"{tmp_path / 'none.png'}: no such file", [])
    assert len(dp.patches_per_file([tmp_path / "anim.gif"], progress=False)[tmp_path / "anim.gif"]) == 1
    assert capsys.readouterr().err == f"warning: {said}\n"


def run_main(main, args, capsys):
    """(exit code, stderr) of a script's main() as the interpreter would show them: sys.exit("msg")
    prints msg to stderr and exits 1."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    code, err = exit_info.value.code, capsys.readouterr().err
    return (1, err + code + "\n") if isinstance(code, str) else (code, err)


def test_cli_ingests_a_messy_folder(messy_folder, tmp_path, capsys):
    out = tmp_path / "out.npz"
    assert dp.main(["--images", str(messy_folder), "--out", str(out), "--test-fraction", "0.3"]) is None
    x_train, y_train, x_test, y_test = dp.load_dataset(out)
    assert len(x_train) > 0 and len(x_test) > 0 and y_train.shape[1:] == (128, 128, 1)
    assert "truncated.jpg" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "photos"]  # the spill folder is gone


def test_a_big_folder_waits_on_disk_not_in_memory(messy_folder, tmp_path, capsys):
    """With a spill folder, the crops and the dataset's arrays are files mapped from disk, and the
    dataset is the one the in-memory path makes."""
    files = dp.list_files(messy_folder)
    in_memory = dp.dataset_from_patches(dp.patches_per_file(files, progress=False), 0.3)
    spill = tmp_path / "spill"
    spill.mkdir()
    patches = dp.patches_per_file(files, progress=False, spill=spill)
    assert all(isinstance(crops, np.memmap) for crops in patches.values())
    on_disk = dp.dataset_from_patches(patches, 0.3, spill=spill)
    assert all(isinstance(array, np.memmap) for array in on_disk)
    for spilled, kept in zip(on_disk, in_memory):
        np.testing.assert_array_equal(spilled, kept)


def test_cli_resize_mode_and_test_fraction(tmp_path):
    """--mode resize: each whole image resized to 128x128 (not a crop of it), one pair per image;
    --test-fraction 0.3 of 10 images: 3 held out; every LR is degrade() of its HR."""
    (tmp_path / "photos").mkdir()
    expected = set()
    for seed in range(10):
        image = dp.to_uint8(natural_image(150, 200, seed))
        iio.imwrite(tmp_path / "photos" / f"{seed}.png", image)
        expected.add(dp.to_uint8(dp.hr_patches(dp.to_luma(image / np.float32(255)), "resize")).tobytes())
    out = tmp_path / "out.npz"
    dp.main(["--images", str(tmp_path / "photos"), "--out", str(out), "--mode", "resize", "--test-fraction", "0.3"])
    x_train, y_train, x_test, y_test = dp.load_dataset(out)
    assert (len(y_train), len(y_test)) == (7, 3)
    assert {dp.to_uint8(hr[None]).tobytes() for hr in np.concatenate([y_train, y_test])} == expected
    np.testing.assert_array_equal(np.concatenate([x_train, x_test]), dp.degrade(np.concatenate([y_train, y_test])))


@pytest.mark.parametrize("case", ["missing folder", "no usable image", "unreadable video"])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    (tmp_path / "video.mp4").write_bytes(b"\x00" * 1000)
    args = {
        "missing folder": ["--images", str(tmp_path / "nowhere")],
        "no usable image": ["--images", str(empty)],
        "unreadable video": ["--video", str(tmp_path / "video.mp4")],
    }[case]
    out = tmp_path / "out.npz"
    code, err = run_main(dp.main, args + ["--out", str(out)], capsys)
    assert code != 0
    assert [line for line in err.splitlines() if line.startswith("error")] == [err.splitlines()[-1]]
    assert not out.exists()


# --- video ----------------------------------------------------------------------------------


def test_read_video_streams_frames(tmp_path):
    video = make_video(tmp_path / "clip.mp4", 96, 64, frames=12)
    frames = dp.read_video(video)
    assert isinstance(frames, types.GeneratorType)  # frames come one at a time, never all at once
    first = next(frames)
    assert first.shape == (64, 96, 3) and first.dtype == np.float32 and 0 <= first.min() <= first.max() <= 1
    assert 1 + sum(1 for _ in frames) == 12
    out = tmp_path / "video.npz"
    dp.main(["--video", str(video), "--out", str(out), "--test-fraction", "0.25"])
    x_train, y_train, x_test, y_test = dp.load_dataset(out)
    assert (len(x_train), len(x_test)) == (9, 3) and x_test.shape[1:] == (64, 64, 1)
    last = [dp.hr_patches(dp.to_luma(frame), "resize")[0] for frame in list(dp.read_video(video))[-3:]]
    np.testing.assert_array_equal(y_test, dp.to_uint8(np.stack(last)) / np.float32(255))  # the last frames test
    np.testing.assert_array_equal(np.concatenate([x_train, x_test]), dp.degrade(np.concatenate([y_train, y_test])))


def test_a_variable_rate_video_gives_each_frame_once(tmp_path):
    """A phone's variable frame rate (here a pause of 0.7 s after the fifth frame): its 10 frames are
    read as 10, none doubled to fill the pause (ffmpeg's default for raw output would give 20)."""
    video = make_video(tmp_path / "vfr.mp4", 64, 48, frames=10, times=r"(N+gt(N\,4)*7)/10/TB")
    assert sum(1 for _ in dp.read_video(video)) == 10


# --- datasets ---------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [
        np.round(rng.random(shape) * 255).astype(np.float32) / 255
        for shape in [(5, 64, 64, 1), (5, 128, 128, 1), (2, 64, 64, 1), (2, 128, 128, 1)]
    ]
    dp.save_dataset(tmp_path / "a.npz", *arrays)
    dp.save_dataset(tmp_path / "b.npz", *arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as stored:
        assert sorted(stored.files) == sorted(dp.KEYS) and all(stored[k].dtype == np.uint8 for k in dp.KEYS)
    loaded = dp.load_dataset(tmp_path / "a.npz")
    for original, back in zip(arrays, loaded):
        assert back.dtype == np.float32
        np.testing.assert_allclose(back, original, atol=1e-6)
    both = dp.load_dataset([tmp_path / "a.npz", tmp_path / "b.npz"])
    assert [len(a) for a in both] == [10, 10, 4, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temp file left


def test_load_dataset_rejects_bad_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 broken")
    np.savez(
        tmp_path / "objects.npz",
        x_train=np.array([{}], dtype=object),
        y_train=np.zeros(1),
        x_test=np.zeros(1),
        y_test=np.zeros(1),
    )
    np.savez(tmp_path / "colour.npz", **{key: np.zeros((2, 8, 8, 3), np.uint8) for key in dp.KEYS})
    for name, message in [
        ("colour.npz", r"x_train has shape \(2, 8, 8, 3\), expected \(N, H, W, 1\)"),
        ("other.npz", "missing"),
        ("broken.npz", "cannot read"),
        ("objects.npz", "cannot read"),
        ("absent.npz", "cannot read"),
    ]:
        with pytest.raises(dp.DataError, match=message):
            dp.load_dataset(tmp_path / name)


def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    arrays = [np.zeros((1, 4, 4, 1), np.float32)] * 4
    dp.save_dataset(path, *arrays)
    before = path.read_bytes()

    write_array = np.lib.format.write_array
    written = []

    def crash_on_second_array(*args, **kwargs):  # interrupted mid-file, one array already out
        if written:
            raise KeyboardInterrupt
        written.append(write_array(*args, **kwargs))

    monkeypatch.setattr(np.lib.format, "write_array", crash_on_second_array)
    with pytest.raises(KeyboardInterrupt):
        dp.save_dataset(path, *arrays)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["data.npz"]


# --- the bundled data -------------------------------------------------------------------------


def test_bundled_dataset_layout():
    with np.load(dp.DEFAULT_DATASET, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in dp.KEYS}
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert arrays["x_train"].shape[1:] == arrays["x_test"].shape[1:] == (64, 64, 1)
    assert arrays["y_train"].shape[1:] == arrays["y_test"].shape[1:] == (128, 128, 1)
    assert len(arrays["x_train"]) == len(arrays["y_train"]) >= 2000
    assert len(arrays["x_test"]) == len(arrays["y_test"]) >= 200
    for lr, hr in (("x_train", "y_train"), ("x_test", "y_test")):  # every LR is degrade() of its HR
        np.testing.assert_array_equal(dp.degrade_uint8(arrays[hr]), arrays[lr])
    assert sum(p.stat().st_size for p in (REPO / "data").iterdir()) < 40e6
    assert (REPO / "data" / "SOURCES.md").is_file()
    frame = next(dp.read_video(dp.SAMPLE_VIDEO))
    assert frame.ndim == 3 and frame.shape[-1] == 3


BLOCK, GRID, STRIDE = 16, 8, 4  # 8x8 blocks of 16x16 pixels describe a 128x128 crop: robust to small shifts


def normalised(blocks):
    blocks = blocks.reshape(len(blocks), -1)
    blocks = blocks - blocks.mean(1, keepdims=True)
    return blocks / (np.linalg.norm(blocks, axis=1, keepdims=True) + 1e-8)


def crop_descriptors(crops):
    n = len(crops)
    return normalised(crops.reshape(n, GRID, BLOCK, GRID, BLOCK).mean((2, 4)))


def window_descriptors(image):
    """Descriptors of every 128x128 window of a (H, W) image at STRIDE, from one box filter."""
    sums = np.pad(image.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    box = (sums[BLOCK:, BLOCK:] - sums[:-BLOCK, BLOCK:] - sums[BLOCK:, :-BLOCK] + sums[:-BLOCK, :-BLOCK]) / BLOCK**2
    span = BLOCK * (GRID - 1) + 1
    views = np.lib.stride_tricks.sliding_window_view(box, (span, span))[::STRIDE, ::STRIDE, ::BLOCK, ::BLOCK]
    return normalised(views.reshape(-1, GRID, GRID)), views.shape[1]


def benchmark_matches(crops, threshold=0.97):
    """(crop index, benchmark image) pairs where a crop is a window of a benchmark image: the
    block pattern correlates above `threshold` and the pixels agree within 4 grey levels (RMS)."""
    wanted = crop_descriptors(crops)
    matches = set()
    for path in sorted(BENCHMARKS.glob("Set*/*.png")):
        luma = dp.to_luma(dp.read_image(path)[..., :3])[..., 0]
        windows, columns = window_descriptors(luma)
        for crop, window in zip(*np.nonzero(wanted @ windows.T > threshold)):
            top, left = STRIDE * (window // columns), STRIDE * (window % columns)
            # The crop may sit up to STRIDE - 1 pixels off the window grid: try those offsets.
            for dy in range(STRIDE):
                for dx in range(STRIDE):
                    candidate = luma[top + dy : top + dy + 128, left + dx : left + dx + 128]
                    if (
                        candidate.shape == crops[crop].shape
                        and np.sqrt(np.mean((crops[crop] - candidate) ** 2)) < 4 / 255
                    ):
                        matches.add((int(crop), path.name))
    return sorted(matches)


@pytest.mark.slow
@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="../shared/benchmarks is not beside the checkout")
def test_bundled_data_holds_no_benchmark_image():
    _, y_train, _, y_test = dp.load_dataset(dp.DEFAULT_DATASET)
    crops = np.concatenate([y_train, y_test])[..., 0]
    # The check works: a crop of Set14's baboon slipped in (shifted by 2 pixels) is found.
    baboon = dp.to_luma(dp.read_image(BENCHMARKS / "Set14" / "baboon.png"))[..., 0]
    planted = baboon[102:230, 50:178] + np.random.default_rng(0).normal(0, 1 / 255, (128, 128))
    assert (0, "baboon.png") in benchmark_matches(planted[None].astype(np.float32))
    assert benchmark_matches(crops) == []


def test_sources_exclude_benchmark_files(tmp_path, monkeypatch):
    """opencv-doc ships Set14's baboon and lenna: a source folder holding them yields everything else."""
    for name in ["baboon.jpg", "lena.jpg", "fruits.jpg"]:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(
        build_bundled, "SOURCES", [("opencv-doc", "apt-get install opencv-doc", str(tmp_path), ["*.jpg"])]
    )
    assert [path.name for path in build_bundled.source_files()] == ["fruits.jpg"]


def test_missing_source_is_named_with_its_install_line(monkeypatch, capsys):
    missing = ("nothing-here", "apt-get install nothing-here", "/nonexistent/folder", ["*.jpg"])
    monkeypatch.setattr(build_bundled, "SOURCES", [missing, build_bundled.SOURCES[0]])
    files = build_bundled.source_files()
    assert "apt-get install nothing-here" in capsys.readouterr().err
    assert files and all("skimage" in str(p) for p in files)  # the others are still used


def test_rebuild_with_every_crop_keeps_the_test_split(tmp_path, monkeypatch):
    """--all writes every training crop (a superset of the bundled ones) with the same test split,
    to --out alone: data/ is left as it is."""
    monkeypatch.setattr(build_bundled, "SOURCES", [build_bundled.SOURCES[0]])  # scikit-image's photographs
    monkeypatch.setattr(build_bundled, "GCOMPRIS", ("none", "apt-get install none", str(tmp_path / "no"), []))
    monkeypatch.setattr(build_bundled, "BUNDLED_MAX_TRAIN", 20)
    bundled_before = dp.DEFAULT_DATASET.stat().st_mtime_ns
    build_bundled.main(["--out", str(tmp_path / "capped.npz")])
    build_bundled.main(["--out", str(tmp_path / "all.npz"), "--all"])
    capped, every = dp.load_dataset(tmp_path / "capped.npz"), dp.load_dataset(tmp_path / "all.npz")
    assert len(capped[0]) == 20 < len(every[0])
    np.testing.assert_array_equal(capped[3], every[3])
    assert {y.tobytes() for y in capped[1]} <= {y.tobytes() for y in every[1]}
    assert dp.DEFAULT_DATASET.stat().st_mtime_ns == bundled_before


def test_every_crop_never_replaces_the_bundled_data(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_bundled.main(["--all"])
    assert exit_.value.code == 2
    assert "error: --all needs --out elsewhere than data/images.npz" in capsys.readouterr().err


# --- GCompris: photographs inside Qt resource bundles ------------------------------------------


def qt_bundle(folder, files):
    """Bytes of a Qt .rcc (format version 3) with `files` {name: (data, zlib?)} in one folder."""
    names, data = b"", b""

    def name_offset(name):
        nonlocal names
        offset = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        return offset

    entries = [
        struct.pack(">IHII", 0, 2, 1, 1) + bytes(8),  # root: one child, entry 1
        struct.pack(">IHII", name_offset(folder), 2, len(files), 2) + bytes(8),
    ]
    for name, (payload, compressed) in files.items():
        stored = struct.pack(">I", len(payload)) + zlib.compress(payload) if compressed else payload
        entries.append(struct.pack(">IHHHI", name_offset(name), int(compressed), 0, 0, len(data)) + bytes(8))
        data += struct.pack(">I", len(stored)) + stored
    tree = b"".join(entries)
    return struct.pack(">4sIIIII", b"qres", 3, 24, 24 + len(tree), 24 + len(tree) + len(data), 0) + tree + data + names


def png_bytes(seed):
    buffer = io.BytesIO()
    Image.fromarray(np.round(natural_image(160, 200, seed=seed)[..., 0] * 255).astype(np.uint8)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def test_qt_resources_reads_raw_and_compressed_files(tmp_path):
    photo = png_bytes(1)
    bundle = tmp_path / "animals.rcc"
    bundle.write_bytes(qt_bundle("resource", {"cat.webp": (photo, False), "README": (b"hello " * 50, True)}))
    files = {f.name: f for f in build_bundled.qt_resources(bundle)}
    assert sorted(files) == ["resource/README", "resource/cat.webp"]
    assert files["resource/README"].data == b"hello " * 50
    assert str(files["resource/cat.webp"]) == f"{bundle}:resource/cat.webp"
    image = dp.read_image(files["resource/cat.webp"])
    assert image.shape == (160, 200, 1) and image.dtype == np.float32


def test_qt_resources_rejects_other_files(tmp_path):
    (tmp_path / "fake.rcc").write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(dp.DataError, match="fake.rcc: not a Qt resource bundle"):
        build_bundled.qt_resources(tmp_path / "fake.rcc")


def test_readme_credits_reads_both_layouts():
    readme = (
        "Copyright: Someone\nLicense: CC0-1.0\nSource: https://example.org/a\nFiles:\na.webp\nb.webp\n\n"
        "Copyright: Other\nFiles: c.webp\nSource: https://example.org/c\nLicense: CC-BY-SA-4.0\n"
    )
    credits = build_bundled.readme_credits(readme)
    assert sorted(credits) == ["a.webp", "b.webp", "c.webp"]
    assert credits["b.webp"]["License"] == "CC0-1.0"
    assert credits["c.webp"] == {"Copyright": "Other", "Source": "https://example.org/c", "License": "CC-BY-SA-4.0"}


def test_gcompris_photos_keep_free_licences_once(tmp_path, monkeypatch, capsys):
    free, other = png_bytes(2), png_bytes(3)
    readme = (
        "Copyright: A\nLicense: CC-BY-SA-4.0\nFiles: free.webp copy.webp\n\n"
        "Copyright: B\nLicense: GPLv3\nFiles: gpl.webp\n"
    )
    (tmp_path / "one.rcc").write_bytes(
        qt_bundle(
            "resource",
            {
                "README": (readme.encode(), False),
                "free.webp": (free, False),
                "copy.webp": (free, False),
                "gpl.webp": (other, False),
                "uncredited.webp": (other, False),
            },
        )
    )
    monkeypatch.setattr(
        build_bundled, "GCOMPRIS", ("gcompris-qt-data", "apt-get install x", str(tmp_path), ["one.rcc"])
    )
    credits = build_bundled.gcompris_photos()
    assert [photo.name for photo, _ in credits] == ["resource/free.webp"]
    assert credits[0][1]["Copyright"] == "A"

    monkeypatch.setattr(
        build_bundled, "GCOMPRIS", ("gcompris-qt-data", "apt-get install x", str(tmp_path / "no"), ["one.rcc"])
    )
    assert build_bundled.gcompris_photos() == []
    assert "apt-get install x" in capsys.readouterr().err


def test_jpeg_is_pillows_round_trip():
    """The compressed track's LR is exactly what Pillow writes and reads at that quality (4:2:0 for colour)."""
    import testing

    rgb = np.round(natural_image(48, 64, 4) * 255) / 255
    for quality in (30, 75, 95):
        buffer = io.BytesIO()
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
        expected = np.asarray(Image.open(buffer)).astype(np.float32) / 255
        np.testing.assert_array_equal(dp.jpeg(rgb, quality), expected)
        # what matters: a file at that quality (its quantization tables say so), decoded
        assert testing.describe(buffer)[1] == quality
    errors = [np.abs(dp.jpeg(rgb, quality) - rgb).mean() for quality in (30, 75, 95)]
    assert errors[0] > errors[1] > errors[2] > 0
    assert np.abs(dp.jpeg(rgb, 100) - rgb).mean() < errors[2] < np.abs(dp.jpeg(rgb, 1) - rgb).mean()  # both ends
    for quality in (0, 101):
        with pytest.raises(ValueError, match="1-100"):
            dp.jpeg(rgb, quality)


def test_jpeg_luma_is_the_luma_of_a_colour_jpeg():
    """jpeg_luma() of a photo's luma compresses it as the colour JPEG compresses its Y (within 2 % of
    the error), where a grey JPEG of the luma itself is over 5 % coarser."""
    rgb = skimage.data.astronaut()[:256, :256] / 255
    luma = dp.to_luma(rgb)
    rms = lambda image: np.sqrt(np.mean((image - luma) ** 2))  # noqa: E731
    for quality in (50, 75, 90):
        colour = rms(dp.to_luma(dp.jpeg(rgb, quality)))
        assert abs(rms(dp.jpeg_luma(luma, quality)) / colour - 1) < 0.02
        assert rms(dp.jpeg(luma, quality)) / colour > 1.05


def test_a_test_fraction_of_one_is_refused_and_the_split_keeps_a_training_photograph(tmp_path, capsys):
    code, err = run_main(dp.main, ["--images", str(tmp_path), "--out", str(tmp_path / "o.npz"), "--test-fraction", "1"],
                         capsys)  # fmt: skip
    assert (code, err.strip().splitlines()[-1]) == (1, "error: --test-fraction must be in [0, 1), got 1.0")
    patches = {f"{name}.png": np.zeros((1, 4, 4, 1), np.uint8) for name in "abc"}
    assert len(dp.test_sources(patches, 0.99)) == 2


def test_a_capped_training_set_samples_every_photograph():
    """max_train keeps a random subset of the crops, from across the photographs, not the first ones."""
    patches = {f"{source}.png": np.full((10, 4, 4, 1), source, np.uint8) for source in range(10)}
    _, y_train, _, _ = dp.dataset_from_patches(patches, 0, max_train=20)
    assert len(y_train) == 20 and len(np.unique(y_train)) > 5


def test_files_are_listed_in_sorted_order(tmp_path):
    names = [f"{value:x}.png" for value in np.random.default_rng(0).integers(2**32, size=30)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [path.name for path in dp.list_files(tmp_path)] == sorted(names)


def test_large_photos_shrink_without_overshoot():
    """Sharp black and white shrunk to MAX_SIDE: bicubic's overshoot is clipped to [0, 1] (unclipped,
    a crop's black would wrap round to 253 in uint8)."""
    blocks = np.kron(np.indices((140, 140)).sum(0) % 2, np.ones((8, 8)))[..., None].astype(np.float32)
    shrunk = dp.shrink(blocks)
    assert shrunk.shape == (dp.MAX_SIDE, dp.MAX_SIDE, 1) and shrunk.min() == 0 and shrunk.max() == 1


def test_resize_mode_is_the_whole_image_by_antialiased_bicubic():
    """--mode resize: scikit-image's antialiased bicubic (order 3) of the whole image to 128x128;
    antialiased, so fine stripes become grey instead of aliasing into false patterns."""
    stripes = np.tile(np.float32([0, 1]), (300, 150))[..., None]
    assert dp.hr_patches(stripes, "resize")[0].std() < 0.1
    luma = dp.to_luma(natural_image(200, 150, 3))
    expected = skimage.transform.resize(luma, (128, 128, 1), order=3, anti_aliasing=True).clip(0, 1)
    np.testing.assert_allclose(dp.hr_patches(luma, "resize")[0], expected, atol=1e-6)


def test_the_augmentation_draws_all_eight_flips_and_rotations():
    lr = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    hr = lr.repeat(2, 0).repeat(2, 1)
    rng = np.random.default_rng(0)
    drawn = set()
    for _ in range(200):
        lr_out, hr_out = dp.training_pair(lr, hr, rng)
        np.testing.assert_array_equal(hr_out, lr_out.repeat(2, 0).repeat(2, 1))  # the same one on both
        drawn.add(lr_out.tobytes())
    assert len(drawn) == 8


def test_streamed_tiles_leave_out_flat_ones_and_take_images_of_exactly_128(tmp_path):
    half_flat = natural_image(128, 400, 1)
    half_flat[:, :200] = 0.5  # tiles starting in the first 73 columns are all wall
    iio.imwrite(tmp_path / "half_flat.png", dp.to_uint8(half_flat))
    tiles = dp.random_tiles(tmp_path / "half_flat.png", np.random.default_rng(0))
    assert 0 < len(tiles) < dp.TILES_PER_IMAGE and tiles.std(axis=(1, 2, 3)).min() >= dp.MIN_CROP_STD * 255
    iio.imwrite(tmp_path / "exact.png", dp.to_uint8(natural_image(128, 128, 2)))
    assert dp.stream_problem(tmp_path / "exact.png") is None
    tiles = dp.random_tiles(tmp_path / "exact.png", np.random.default_rng(0))
    assert len(tiles) == dp.TILES_PER_IMAGE and np.all(
        tiles == dp.to_uint8(dp.to_luma(dp.read_image(tmp_path / "exact.png")))
    )


def test_streamed_batches_at_x3_are_cropped_to_a_multiple_of_three(tmp_path):
    iio.imwrite(tmp_path / "photo.png", dp.to_uint8(natural_image(200, 260, 4)))
    batches = dp.TrainingBatches(4, files=[tmp_path / "photo.png"], workers=1, scale=3)
    lr, hr = batches.batch(0)
    batches.stream.close()
    assert lr.shape == (4, 42, 42, 1) and hr.shape == (4, 126, 126, 1)
    np.testing.assert_array_equal(lr, dp.degrade(hr, 3))
